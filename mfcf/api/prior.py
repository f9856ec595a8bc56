"""Facet priors: p(c_j) p(z_j | c_j), a mixture over the facet's clusters."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from .component import Component
from .types import GaussianPosterior


class FacetPrior(Component, nn.Module):
    """The prior of one facet: categorical ``p(c)`` and a component density ``p(z | c)``.

    Constructed as ``MyPrior(config, latent_dim=D, n_clusters=K)``. Subclasses implement the
    four abstract methods; the mixture quantities below follow from them.

    Example -- responsibilities of a batch of latents::

        prior = registry.get("prior", "mog")(config, latent_dim=5, n_clusters=10)
        gamma = prior.responsibilities(z)     # (B, 10), rows sum to 1
    """

    kind = "prior"

    def __init__(self, config=None, *, latent_dim: int = 1, n_clusters: int = 1):
        super().__init__(config)
        self.latent_dim = latent_dim
        self.n_clusters = n_clusters

    # -- to implement ----------------------------------------------------------------------
    def log_weights(self) -> Tensor:
        """log p(c): (K,)."""
        raise NotImplementedError

    def component_log_prob(self, z: Tensor) -> Tensor:
        """log p(z | c) for every cluster: (..., D) -> (..., K)."""
        raise NotImplementedError

    def expected_component_log_prob(self, q: GaussianPosterior) -> Tensor:
        """E_{q(z|x)}[log p(z | c)] in closed form for a diagonal Gaussian q: (B, K)."""
        raise NotImplementedError

    def sample(self, clusters: Tensor, *, temperature: float = 1.0, generator: torch.Generator | None = None) -> Tensor:
        """Draw z ~ p(z | c) for each cluster id in ``clusters`` (N,) -> (N, D).

        ``temperature`` scales the standard deviation (the covariance by its square).
        """
        raise NotImplementedError

    def initialise(self, means: Tensor, variances: Tensor | None = None, weights: Tensor | None = None) -> None:
        """Set the mixture from a fitted Gaussian mixture: means (K, D), optional diagonal
        variances (K, D) and weights (K,)."""
        raise NotImplementedError

    # -- derived ---------------------------------------------------------------------------
    def joint_log_prob(self, z: Tensor) -> Tensor:
        """log p(c) + log p(z | c): (..., K)."""
        return self.log_weights() + self.component_log_prob(z)

    def responsibilities(self, z: Tensor) -> Tensor:
        """p(c | z): (..., K)."""
        return torch.softmax(self.joint_log_prob(z), dim=-1)

    def marginal_log_prob(self, z: Tensor) -> Tensor:
        """log p(z) = log sum_c p(c) p(z | c): (...)."""
        return torch.logsumexp(self.joint_log_prob(z), dim=-1)

    def sample_clusters(self, n: int, *, generator: torch.Generator | None = None) -> Tensor:
        """Draw n cluster ids from p(c)."""
        probs = self.log_weights().detach().exp()
        return torch.multinomial(probs, n, replacement=True, generator=generator)
