"""Mixture-of-Gaussians facet prior p(c_j) p(z_j | c_j) (MFCVAE.md §1.2, §1.3).

Every quantity is batched over the K clusters; nothing loops over clusters in Python.

Storage (K clusters, D latent dims):

==========  ===================================================================
``logits``  (K,) -- pi = softmax(logits); a parameter, or a buffer when fixed
``means``   (K, D)
diag        ``raw_var`` (K, D): variance = softplus_beta(raw_var) + min_variance
full        ``raw_diag`` (K, D): Cholesky diagonal = softplus_beta(raw_diag) + sqrt(min_variance);
            ``raw_lower`` (K, D(D-1)/2): the strictly lower triangle, used raw
==========  ===================================================================

The full covariance is Sigma = L L^T with L lower triangular; only its D(D+1)/2 free entries
per cluster are stored (MFCVAE.md §9 D6, D23: no upper triangle).
"""

from __future__ import annotations

import dataclasses
import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from mfcf.api import FacetPrior, GaussianPosterior
from mfcf.config import positive
from mfcf.errors import ConfigError

_LOG_2PI = math.log(2 * math.pi)
_COVARIANCES = ("diag", "full")


def inverse_softplus(value: Tensor, beta: float) -> Tensor:
    """The raw u with softplus_beta(u) = value (value > 0), stable for small and large values."""
    return value + torch.log(-torch.expm1(-beta * value)) / beta


@dataclasses.dataclass
class MoGPriorConfig:
    """``prior: {name: mog, ...}`` of one facet.

    * ``covariance`` -- ``diag`` (paper: MNIST) or ``full`` (paper: SVHN, 3DShapes);
    * ``learn_weights`` -- learn pi (paper: MNIST) or keep it uniform and out of the optimiser
      (paper: SVHN, 3DShapes); chosen per facet (fixes §9 D5);
    * ``init_variance`` -- initial variance of every cluster and dimension (paper: 0.01);
    * ``init_mean_std`` -- means start as N(0, init_mean_std^2) draws (global RNG) so that the
      clusters differ before :meth:`MoGPrior.initialise` replaces them with GMM means; 0 gives
      all-zero means, which no gradient can ever tell apart;
    * ``softplus_beta`` -- sharpness beta of softplus_beta(u) = log(1 + exp(beta u)) / beta (paper: 10);
    * ``min_variance`` -- added to every variance (diag) or, as its square root, to every
      Cholesky diagonal entry (full), so log-densities stay finite when a cluster collapses.
      0 reproduces the official code (the paper configs: softplus alone keeps every variance
      positive until the raw value falls below about -10, §1.3). The default 1e-6 is a guard,
      not a no-op: it adds 1e-3 to every Cholesky diagonal entry (1 % of the initial std 0.1)
      and on the paper's MNIST prior moves KL_z by ~1e-4 and the prior-variance gradients by
      ~2e-4 (relative);
    * ``legacy_variance_as_std`` -- reproduce §9 D1 in :meth:`MoGPrior.sample` for ``diag``:
      std = temperature * variance instead of temperature * sqrt(variance).
    """

    covariance: str = "diag"
    learn_weights: bool = True
    init_variance: float = 0.01
    init_mean_std: float = 1.0
    softplus_beta: float = 10.0
    min_variance: float = 1e-6
    legacy_variance_as_std: bool = False

    def __post_init__(self) -> None:
        if self.covariance not in _COVARIANCES:
            raise ConfigError(f"must be one of {', '.join(_COVARIANCES)}, got {self.covariance!r}", key="covariance")
        positive(self.softplus_beta, "softplus_beta")
        positive(self.min_variance, "min_variance", allow_zero=True)
        positive(self.init_mean_std, "init_mean_std", allow_zero=True)
        if not self.init_variance > self.min_variance:
            raise ConfigError(
                f"must exceed min_variance ({self.min_variance}), got {self.init_variance}; "
                "raise init_variance or lower min_variance", key="init_variance")


class MoGPrior(FacetPrior):
    """Mixture of Gaussians over one facet's latent: p(z) = sum_c pi_c N(z; mu_c, Sigma_c).

    ``covariance: diag`` stores one variance per cluster and dimension; ``covariance: full``
    stores a lower-triangular Cholesky factor per cluster. Both start at Sigma = 0.01 I
    (``init_variance``) with uniform pi; the model then calls :meth:`initialise` with the
    means (and optionally variances, weights) of a Gaussian mixture fitted to the posterior
    means of the training set (MFCVAE.md §5.3).

    Example::

        prior = MoGPrior(MoGPrior.Config(covariance="full"), latent_dim=4, n_clusters=10)
        logp = prior.component_log_prob(z)            # (B, 10)
        ell = prior.expected_component_log_prob(q)    # (B, 10), E_q log N(z; mu_c, Sigma_c)
        z = prior.sample(torch.tensor([0, 3]), temperature=0.3)   # (2, 4)
    """

    name = "mog"
    Config = MoGPriorConfig

    def __init__(self, config: MoGPriorConfig | None = None, *, latent_dim: int = 1, n_clusters: int = 1):
        super().__init__(config, latent_dim=latent_dim, n_clusters=n_clusters)
        cfg = self.config
        K, D = n_clusters, latent_dim
        self.full = cfg.covariance == "full"
        self.beta = float(cfg.softplus_beta)
        self.min_variance = float(cfg.min_variance)

        logits = torch.zeros(K)
        if cfg.learn_weights:
            self.logits = nn.Parameter(logits)
        else:
            self.register_buffer("logits", logits)
        self.means = nn.Parameter(cfg.init_mean_std * torch.randn(K, D))
        if self.full:
            self.raw_diag = nn.Parameter(torch.empty(K, D))
            self.raw_lower = nn.Parameter(torch.zeros(K, D * (D - 1) // 2))
            rows, cols = torch.tril_indices(D, D, offset=-1)
            self.register_buffer("lower_index", rows * D + cols, persistent=False)
        else:
            self.raw_var = nn.Parameter(torch.empty(K, D))
        self.set_variances(torch.full((K, D), cfg.init_variance, dtype=torch.float64))

    # -- parameterisation ------------------------------------------------------------------
    def log_weights(self) -> Tensor:
        return torch.log_softmax(self.logits, dim=-1)

    def variances(self) -> Tensor:
        """Diagonal of every Sigma_c: (K, D)."""
        if self.full:
            return self.scale_tril().square().sum(-1)
        return F.softplus(self.raw_var, beta=self.beta) + self.min_variance

    def cholesky_diagonal(self) -> Tensor:
        """Diagonal of every Cholesky factor L_c: (K, D), all > 0."""
        if self.full:
            return F.softplus(self.raw_diag, beta=self.beta) + math.sqrt(self.min_variance)
        return self.variances().sqrt()

    def scale_tril(self) -> Tensor:
        """Lower Cholesky factors L_c with Sigma_c = L_c L_c^T: (K, D, D)."""
        diag = torch.diag_embed(self.cholesky_diagonal())
        if not self.full:
            return diag
        K, D = self.n_clusters, self.latent_dim
        lower = self.raw_lower.new_zeros(K, D * D).index_copy(1, self.lower_index, self.raw_lower)
        return diag + lower.view(K, D, D)

    def covariances(self) -> Tensor:
        """Sigma_c: (K, D, D)."""
        L = self.scale_tril()
        return L @ L.transpose(-1, -2)

    # -- densities -------------------------------------------------------------------------
    def component_log_prob(self, z: Tensor) -> Tensor:
        if not self.full:
            var = self.variances()
            scaled = (z.unsqueeze(-2) - self.means) * var.rsqrt()  # (..., K, D)
            return -0.5 * (scaled.square().sum(-1) + self._diag_log_norm(var))
        diff = z.unsqueeze(-2) - self.means  # (..., K, D)
        L = self.scale_tril()
        return -0.5 * (self.latent_dim * _LOG_2PI + self._log_det(L) + self._mahalanobis(L, diff))

    def expected_component_log_prob(self, q: GaussianPosterior) -> Tensor:
        # §2.2: E_q[log N(z; mu_c, Sigma_c)] for q = N(m, diag s2), closed form
        var_q = q.var
        if not self.full:
            var = self.variances()
            precision = var.reciprocal()
            scaled = (q.mean.unsqueeze(-2) - self.means) * precision.sqrt()  # (..., K, D)
            return -0.5 * (scaled.square().sum(-1) + var_q @ precision.T + self._diag_log_norm(var))
        diff = q.mean.unsqueeze(-2) - self.means  # (..., K, D)
        L = self.scale_tril()
        # tr(Sigma^-1 diag s2) = sum_d s2_d (Sigma^-1)_dd, (Sigma^-1)_dd = sum_i (L^-1)_id^2
        eye = torch.eye(self.latent_dim, dtype=L.dtype, device=L.device)
        precision_diag = torch.linalg.solve_triangular(L, eye, upper=False).square().sum(-2)  # (K, D)
        trace = var_q @ precision_diag.T
        return -0.5 * (self.latent_dim * _LOG_2PI + self._log_det(L) + trace + self._mahalanobis(L, diff))

    def _diag_log_norm(self, var: Tensor) -> Tensor:
        """D log(2 pi) + log det Sigma_c for diagonal Sigma: (K,), computed once per call, not per example."""
        return var.log().sum(-1) + self.latent_dim * _LOG_2PI

    def _log_det(self, L: Tensor) -> Tensor:
        return 2 * torch.diagonal(L, dim1=-2, dim2=-1).log().sum(-1)

    def _mahalanobis(self, L: Tensor, diff: Tensor) -> Tensor:
        """|L_c^-1 diff_c|^2 for diff (..., K, D) -> (..., K), one batched triangular solve."""
        batch = diff.shape[:-2]
        cols = diff.reshape(-1, self.n_clusters, self.latent_dim).permute(1, 2, 0)  # (K, D, N)
        y = torch.linalg.solve_triangular(L, cols, upper=False)
        return y.square().sum(-2).T.reshape(*batch, self.n_clusters)

    # -- sampling and initialisation -------------------------------------------------------
    def sample(self, clusters: Tensor, *, temperature: float = 1.0,
               generator: torch.Generator | None = None) -> Tensor:
        """z ~ N(mu_c, (temperature^2) Sigma_c) for each id c in ``clusters`` (N,) -> (N, D).

        ``temperature`` scales the standard deviation for both covariance types (§7.4). With
        ``legacy_variance_as_std`` a diag prior uses std = temperature * variance (§9 D1).
        """
        means = self.means[clusters]
        eps = torch.randn(means.shape, generator=generator, dtype=means.dtype, device=means.device)
        if self.full:
            return means + temperature * (self.scale_tril()[clusters] @ eps.unsqueeze(-1)).squeeze(-1)
        var = self.variances()[clusters]
        std = var if self.config.legacy_variance_as_std else var.sqrt()
        return means + temperature * std * eps

    @torch.no_grad()
    def initialise(self, means: Tensor, variances: Tensor | None = None, weights: Tensor | None = None) -> None:
        """Set means (K, D); optionally covariances and weights (K,).

        ``variances`` is either diagonal variances (K, D) -- a ``full`` prior then gets a
        diagonal Sigma (Cholesky diagonal sqrt(variances), zero lower triangle) -- or full
        covariance matrices (K, D, D): a ``full`` prior takes them exactly (through their
        Cholesky factors), a ``diag`` prior their diagonals. Arguments left as ``None`` keep
        their current values; variances at or below ``min_variance`` are set just above it.
        """
        self.means.copy_(self._checked(means, (self.n_clusters, self.latent_dim), "means"))
        if variances is not None and torch.as_tensor(variances).dim() == 3:
            covariances = self._checked(variances, (self.n_clusters, self.latent_dim, self.latent_dim), "covariances")
            if self.full:
                self.set_covariances(covariances)
            else:
                self.set_variances(torch.diagonal(covariances, dim1=-2, dim2=-1))
        elif variances is not None:
            self.set_variances(self._checked(variances, (self.n_clusters, self.latent_dim), "variances"))
        if weights is not None:
            weights = self._checked(weights, (self.n_clusters,), "weights")
            self.logits.copy_(weights.clamp_min(torch.finfo(weights.dtype).tiny).log())

    @torch.no_grad()
    def set_covariances(self, covariances: Tensor) -> None:
        """Make Sigma_c = covariances_c (K, D, D, symmetric positive definite) in a ``full``
        prior, through L_c = cholesky(Sigma_c) computed in float64; a Cholesky diagonal at or
        below sqrt(min_variance) is set just above it."""
        L = torch.linalg.cholesky(covariances.to(torch.float64))
        excess = (torch.diagonal(L, dim1=-2, dim2=-1) - math.sqrt(self.min_variance)).clamp_min(1e-12)
        self.raw_diag.copy_(inverse_softplus(excess, self.beta).to(self.raw_diag.dtype))
        rows, cols = torch.tril_indices(self.latent_dim, self.latent_dim, offset=-1)
        self.raw_lower.copy_(L[:, rows, cols].to(self.raw_lower.dtype))

    @torch.no_grad()
    def set_variances(self, variances: Tensor) -> None:
        """Make Sigma_c = diag(variances_c) exactly, computing the raw values in float64."""
        target = variances.to(torch.float64)
        if self.full:
            excess = target.sqrt() - math.sqrt(self.min_variance)
            self.raw_lower.zero_()
            raw = self.raw_diag
        else:
            excess = target - self.min_variance
            raw = self.raw_var
        excess = excess.clamp_min(1e-12)
        raw.copy_(inverse_softplus(excess, self.beta).to(raw.dtype))

    def _checked(self, value: Tensor, shape: tuple[int, ...], what: str) -> Tensor:
        value = torch.as_tensor(value, dtype=self.means.dtype, device=self.means.device)
        if tuple(value.shape) != shape:
            raise ValueError(f"{what} must have shape {shape} (clusters, latent dims), got {tuple(value.shape)}")
        return value
