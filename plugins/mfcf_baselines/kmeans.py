"""k-means on raw pixels (Lloyd, 1982; k-means++ seeding of Arthur & Vassilvitskii, 2007).

The floor every deep clustering method must clear: scikit-learn's ``KMeans`` on the flattened
images of the training split, no learning of features at all.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence

import torch
from sklearn.cluster import KMeans
from torch import Tensor

from mfcf.api import DataInfo, DataSplit, FacetSpec, Model
from mfcf.config import positive
from mfcf.errors import ConfigError

from .common import as_numpy, check_enough_examples, nearest_one_hot, require, sklearn_threads

INITS = ("k-means++", "random")


@dataclasses.dataclass
class KMeansConfig:
    """``model: {name: kmeans, ...}`` -- scikit-learn ``KMeans`` options.

    * ``n_init`` -- restarts; the one with the lowest inertia is kept;
    * ``max_iter`` / ``tol`` -- Lloyd iterations per restart and the convergence tolerance;
    * ``init`` -- ``k-means++`` or ``random``.

    The facet's ``n_clusters`` is K. Its ``latent_dim`` is not used: the clustered space is the
    pixels. The random state is the trainer's seed.
    """

    n_init: int = 10
    max_iter: int = 300
    tol: float = 1e-4
    init: str = "k-means++"

    def __post_init__(self) -> None:
        positive(self.n_init, "n_init")
        positive(self.max_iter, "max_iter")
        positive(self.tol, "tol", allow_zero=True)
        if self.init not in INITS:
            raise ConfigError(f"must be one of {', '.join(INITS)}, got {self.init!r}", key="init")


class KMeansModel(Model):
    """k-means on flattened pixels; ``cluster_probs`` is one-hot on the nearest centre.

    Fitted once by the trainer (``trains_by_gradient = False``); the centres live in the
    buffer ``centres`` (K, pixels), float64, so they are saved with ``state_dict()``.

    Example config::

        data: {name: digits}
        model: {name: kmeans, n_init: 10}
        facets: [{latent_dim: 1, n_clusters: 10}]   # latent_dim unused
    """

    name = "kmeans"
    Config = KMeansConfig
    trains_by_gradient = False
    supported_facets = (1, 1)

    def __init__(self, config: KMeansConfig, *, info: DataInfo, facets: Sequence[FacetSpec]):
        super().__init__(config, info=info, facets=facets)
        self.register_buffer("centres", torch.zeros(facets[0].n_clusters, math.prod(info.shape), dtype=torch.float64))
        self.register_buffer("fitted", torch.tensor(False))

    def fit(self, train: DataSplit, *, seed: int) -> None:
        K = self.facets[0].n_clusters
        check_enough_examples(len(train), K)
        cfg = self.config
        kmeans = KMeans(K, init=cfg.init, n_init=cfg.n_init, max_iter=cfg.max_iter, tol=cfg.tol, random_state=seed)
        with sklearn_threads():
            kmeans.fit(as_numpy(train.images))
        self.centres.copy_(torch.from_numpy(kmeans.cluster_centers_))
        self.fitted.fill_(True)

    @torch.no_grad()
    def cluster_probs(self, x: Tensor) -> list[Tensor]:
        require(self.fitted, "kmeans", "fit() has not run (train the run first)")
        return [nearest_one_hot(x.flatten(1), self.centres)]
