"""Autoencoder + k-means: the two-stage deep baseline (e.g. the "AE+k-means" rows of Xie et al.,
2016, and Guo et al., 2017).

Pre-train an autoencoder built from the registered encoder, decoder and likelihood, then run
scikit-learn's k-means on the codes (posterior means) of the training split. Nothing is
trained after k-means.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np
import torch
from sklearn.cluster import KMeans
from torch import Tensor

from mfcf.api import DataInfo, Decoder, Encoder, FacetSpec, Likelihood, LossOutput
from mfcf.config import positive

from .autoencoder import PretrainConfig, PretrainedAutoencoder
from .common import check_enough_examples, nearest_one_hot


@dataclasses.dataclass
class AEKMeansConfig(PretrainConfig):
    """``model: {name: ae_kmeans, ...}``: the pre-training options of
    :class:`~mfcf_baselines.autoencoder.PretrainConfig` plus k-means' ``n_init`` and ``max_iter``.

    k-means runs at the start of epoch ``pretrain_epochs``; set ``trainer.epochs`` to
    ``pretrain_epochs + 1``. That last epoch changes nothing (every parameter is frozen once
    the centres exist); it is the trainer's way of running the model's epoch-start hook.
    """

    n_init: int = 10
    max_iter: int = 300

    def __post_init__(self) -> None:
        super().__post_init__()
        positive(self.n_init, "n_init")
        positive(self.max_iter, "max_iter")


class AEKMeansModel(PretrainedAutoencoder):
    """Autoencoder pre-training, then k-means on the codes; ``cluster_probs`` is one-hot on the
    nearest centre of a batch's codes.

    The facet's ``latent_dim`` is the code size, ``n_clusters`` is K. Centres are the float64
    buffer ``centres`` (K, latent_dim).

    Example config::

        model: {name: ae_kmeans, pretrain_epochs: 30}
        encoder: {name: mlp, hidden_dims: [500, 500, 2000]}
        decoder: {name: mlp, hidden_dims: [2000, 500, 500]}
        likelihood: {name: bernoulli}
        facets: [{latent_dim: 10, n_clusters: 10}]
        trainer: {epochs: 31}
    """

    name = "ae_kmeans"
    Config = AEKMeansConfig

    def __init__(self, config: AEKMeansConfig, *, info: DataInfo, facets: Sequence[FacetSpec], encoder: Encoder,
                 decoder: Decoder, likelihood: Likelihood):
        super().__init__(config, info=info, facets=facets, encoder=encoder, decoder=decoder, likelihood=likelihood)
        self.register_buffer("centres", torch.zeros(facets[0].n_clusters, facets[0].latent_dim, dtype=torch.float64))

    def initialise_clusters(self, codes: np.ndarray, seed: int) -> None:
        K = self.facets[0].n_clusters
        check_enough_examples(len(codes), K)
        kmeans = KMeans(K, n_init=self.config.n_init, max_iter=self.config.max_iter, random_state=seed).fit(codes)
        self.centres.copy_(torch.from_numpy(kmeans.cluster_centers_))

    def clustering_loss(self, x: Tensor, *, epoch: int, step: int) -> LossOutput:
        # a fresh leaf: backward() works, no parameter gets a gradient, Adam changes nothing
        return LossOutput(torch.zeros((), device=x.device, requires_grad=True))

    def clustering_probs(self, x: Tensor) -> Tensor:
        return nearest_one_hot(self.code(x), self.centres)
