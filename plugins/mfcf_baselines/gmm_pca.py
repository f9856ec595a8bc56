"""PCA followed by a Gaussian mixture (scikit-learn ``PCA`` + ``GaussianMixture``).

The classical two-stage baseline: a linear projection to ``latent_dim`` principal components,
then a K-component mixture on the projections, fitted by EM or (``mixture: umap``) taken from
N2D's partition of them (McConville et al. 2020: a GMM on a UMAP embedding; the mixture
MFCVAE's ``model.gmm_method: umap`` fits to its codes). ``cluster_probs`` is the mixture's
posterior p(c | PCA(x)), computed in float64 from buffers so it matches ``predict_proba``.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence

import numpy as np
import torch
from sklearn.decomposition import PCA
from sklearn.mixture import GaussianMixture
from torch import Tensor

from mfcf.api import DataInfo, DataSplit, FacetSpec, Model
from mfcf.config import positive
from mfcf.errors import ConfigError

from .common import as_numpy, check_enough_examples, require, sklearn_threads

COVARIANCES = ("full", "tied", "diag", "spherical")
MIXTURES = ("em", "umap")
_LOG_2PI = math.log(2 * math.pi)


@dataclasses.dataclass
class GMMPCAConfig:
    """``model: {name: gmm_pca, ...}``.

    The facet's ``latent_dim`` is the number of principal components, its ``n_clusters`` the
    number of mixture components.

    * ``whiten`` -- scale every component to unit variance before the mixture;
    * ``covariance`` -- ``full`` | ``tied`` | ``diag`` | ``spherical`` (scikit-learn's
      ``covariance_type``);
    * ``n_init`` / ``max_iter`` / ``tol`` / ``reg_covar`` -- EM restarts (k-means
      initialised), iterations, tolerance and the variance floor, as in scikit-learn;
    * ``mixture`` -- ``em`` (scikit-learn's EM on the projections) or ``umap`` (N2D: the
      projections' UMAP partition, each cluster's share, mean and ``full`` or ``diag``
      covariance a component, :func:`mfcf_ladder.gmm_init.fit_umap`; ``n_init`` restarts the
      embedding's GMM, ``max_iter`` / ``tol`` / ``reg_covar`` are not used).

    Both fits use the trainer's seed as random state.
    """

    whiten: bool = False
    covariance: str = "full"
    n_init: int = 1
    max_iter: int = 100
    tol: float = 1e-3
    reg_covar: float = 1e-6
    mixture: str = "em"

    def __post_init__(self) -> None:
        if self.covariance not in COVARIANCES:
            raise ConfigError(f"must be one of {', '.join(COVARIANCES)}, got {self.covariance!r}", key="covariance")
        if self.mixture not in MIXTURES:
            raise ConfigError(f"must be one of {', '.join(MIXTURES)}, got {self.mixture!r}", key="mixture")
        if self.mixture == "umap" and self.covariance not in ("full", "diag"):
            raise ConfigError(f"mixture: umap takes each cluster's full or diag covariance, not {self.covariance!r}; "
                              "set covariance to full or diag", key="covariance")
        positive(self.n_init, "n_init")
        positive(self.max_iter, "max_iter")
        positive(self.tol, "tol", allow_zero=True)
        positive(self.reg_covar, "reg_covar", allow_zero=True)


def precision_cholesky(gmm: GaussianMixture) -> np.ndarray:
    """scikit-learn's ``precisions_cholesky_`` of any covariance type as (K, d, d) matrices P_k,
    upper triangular, with ``(y - mu_k) @ P_k`` the whitened residual."""
    K, d = gmm.means_.shape
    chol = gmm.precisions_cholesky_
    if gmm.covariance_type == "full":
        return chol
    if gmm.covariance_type == "tied":
        return np.broadcast_to(chol, (K, d, d)).copy()
    if gmm.covariance_type == "diag":
        return np.stack([np.diag(row) for row in chol])
    return chol[:, None, None] * np.eye(d)


class GMMPCAModel(Model):
    """PCA to ``latent_dim`` components, then a ``n_clusters``-component Gaussian mixture.

    Fitted once by the trainer; projection and mixture are kept in float64 buffers
    (``pca_mean``, ``pca_components``, ``pca_scale``, ``log_weights``, ``means``,
    ``precision_chol``) so ``state_dict()`` holds the whole fitted model.

    Example config::

        model: {name: gmm_pca, covariance: diag}
        facets: [{latent_dim: 20, n_clusters: 10}]   # 20 principal components
    """

    name = "gmm_pca"
    Config = GMMPCAConfig
    trains_by_gradient = False
    supported_facets = (1, 1)

    def __init__(self, config: GMMPCAConfig, *, info: DataInfo, facets: Sequence[FacetSpec]):
        super().__init__(config, info=info, facets=facets)
        P, d, K = math.prod(info.shape), facets[0].latent_dim, facets[0].n_clusters
        if d > P:
            raise ConfigError(f"asks for {d} principal components but the images have only {P} pixels "
                              f"({'x'.join(map(str, info.shape))}); set latent_dim to at most {P}",
                              key="facets.0.latent_dim")
        f64 = dict(dtype=torch.float64)
        self.register_buffer("pca_mean", torch.zeros(P, **f64))
        self.register_buffer("pca_components", torch.zeros(d, P, **f64))
        self.register_buffer("pca_scale", torch.ones(d, **f64))
        self.register_buffer("log_weights", torch.zeros(K, **f64))
        self.register_buffer("means", torch.zeros(K, d, **f64))
        self.register_buffer("precision_chol", torch.zeros(K, d, d, **f64))
        self.register_buffer("fitted", torch.tensor(False))

    def fit(self, train: DataSplit, *, seed: int) -> None:
        cfg, facet = self.config, self.facets[0]
        check_enough_examples(len(train), facet.n_clusters)
        if facet.latent_dim > len(train):
            raise ConfigError(f"PCA cannot find {facet.latent_dim} components in {len(train)} training examples; "
                              f"set latent_dim to at most {len(train)}", key="facets.0.latent_dim")
        pca = PCA(facet.latent_dim, whiten=cfg.whiten, random_state=seed)
        with sklearn_threads():
            features = pca.fit_transform(as_numpy(train.images)).astype(np.float64)
            weights, means, precision_chol = self._fit_mixture(features, facet.n_clusters, seed)
        scale = 1.0 / np.sqrt(pca.explained_variance_) if cfg.whiten else np.ones(facet.latent_dim)
        for buffer, value in ((self.pca_mean, pca.mean_), (self.pca_components, pca.components_),
                              (self.pca_scale, scale), (self.log_weights, np.log(weights)),
                              (self.means, means), (self.precision_chol, precision_chol)):
            buffer.copy_(torch.from_numpy(np.asarray(value, dtype=np.float64)))
        self.fitted.fill_(True)

    def _fit_mixture(self, features: np.ndarray, n_clusters: int, seed: int):
        """Weights (K,), means (K, d) and precision Cholesky factors (K, d, d) of the mixture."""
        cfg = self.config
        if cfg.mixture == "umap":
            from mfcf_ladder.gmm_init import fit_umap  # the ladder plugin's N2D mixture (one implementation)

            mixture = fit_umap(features, n_clusters, np.random.RandomState(seed), cfg.n_init, cfg.covariance)
            covariances = mixture.covariances if cfg.covariance == "full" else \
                mixture.covariances[:, :, None] * np.eye(features.shape[1])  # variances -> diagonal matrices
            # Sigma = L L^T  ->  (y - mu) @ L^-T is the whitened residual, L^-T upper triangular
            chol = np.linalg.inv(np.linalg.cholesky(covariances)).transpose(0, 2, 1)
            return mixture.weights, mixture.means, chol
        gmm = GaussianMixture(n_clusters, covariance_type=cfg.covariance, n_init=cfg.n_init,
                              max_iter=cfg.max_iter, tol=cfg.tol, reg_covar=cfg.reg_covar, random_state=seed)
        gmm.fit(features)
        return gmm.weights_, gmm.means_, precision_cholesky(gmm)

    @torch.no_grad()
    def project(self, x: Tensor) -> Tensor:
        """PCA coordinates of a batch (as scikit-learn's ``transform``): (B, latent_dim), float64."""
        return ((x.flatten(1).to(torch.float64) - self.pca_mean) @ self.pca_components.T) * self.pca_scale

    @torch.no_grad()
    def cluster_probs(self, x: Tensor) -> list[Tensor]:
        require(self.fitted, "gmm_pca", "fit() has not run (train the run first)")
        y = self.project(x)
        white = torch.einsum("bkd,kde->bke", y[:, None, :] - self.means, self.precision_chol)
        log_det = torch.diagonal(self.precision_chol, dim1=-2, dim2=-1).log().sum(-1)
        log_n = -0.5 * (y.shape[-1] * _LOG_2PI + white.square().sum(-1)) + log_det
        return [torch.softmax(self.log_weights + log_n, dim=-1).to(torch.float32)]
