"""The official five-term single-sample estimator (MFCVAE.md §3.1)."""

from __future__ import annotations

import dataclasses
from typing import NamedTuple

import torch
from torch import Tensor

from mfcf.api import FacetPrior, GaussianPosterior

from .base import FreeNatsConfig, MFCVAEELBOBase

#: Lower clamp of gamma inside the log of T5, as in the official code.
GAMMA_CLAMP = 1e-6


class FiveTerms(NamedTuple):
    """Per-sample terms of one facet (§3.1), each shaped like z without its last dim."""

    t2: Tensor  # sum_c gamma_c log N(z; mu_c, Sigma_c)
    t3: Tensor  # sum_c gamma_c log pi_c
    t4: Tensor  # log q(z | x)
    t5: Tensor  # sum_c gamma_c log max(gamma_c, 1e-6)


@dataclasses.dataclass
class MonteCarloConfig(FreeNatsConfig):
    """``elbo: {name: mfcvae_mc, ...}``.

    * ``detach_responsibilities`` -- stop gradients through gamma. With beta_z = beta_c (every
      official schedule) this changes no gradient up to the 1e-6 clamp (§3.3) and skips the
      backward pass through the softmax; the official code does not detach;
    * ``free_nats``, ``facet_independence``, ``cluster_information``, ``invariance`` (with
      ``invariance_facets``, ``invariance_transform``, ``invariance_of``) -- a floor on each
      facet's kl_z in the loss, a penalty on the dependence between facets' clusterings, a
      reward for each facet's information about x and a penalty on a facet's change under a
      nuisance transform (:class:`FreeNatsConfig`).
    """

    detach_responsibilities: bool = False


class MFCVAEMonteCarloELBO(MFCVAEELBOBase):
    """The official MFCVAE loss: one reparameterised z per example and gamma = p(c | z).

    gamma_c = softmax_c(log pi_c + log N(z; mu_c, Sigma_c)) at the sampled z stands in for
    q(c|x), and per facet

        kl_z = mean_b (T4 - T2),    kl_c = mean_b (T5 - T3)

    with the terms of :class:`FiveTerms`. With beta_z = beta_c = 1 the loss is minus the
    single-sample collapsed ELBO up to the clamp (§3.3). Unlike the official code, z is sampled
    in eval mode too (§9 D11).
    """

    name = "mfcvae_mc"
    Config = MonteCarloConfig

    def n_particles(self) -> int:
        return 1

    def facet_terms(self, prior: FacetPrior, q: GaussianPosterior, z: Tensor) -> FiveTerms:
        """T2..T5 for latents ``z`` (..., B, D) drawn from ``q``: each (..., B)."""
        log_pi = prior.log_weights()
        log_n = prior.component_log_prob(z)
        gamma = torch.softmax(log_pi + log_n, dim=-1)
        if self.config.detach_responsibilities:
            gamma = gamma.detach()
        return FiveTerms(
            t2=(gamma * log_n).sum(-1),
            t3=gamma @ log_pi,
            t4=q.log_prob(z),
            t5=(gamma * gamma.clamp_min(GAMMA_CLAMP).log()).sum(-1),
        )

    def facet_kl(self, prior, q, z, beta_z, beta_c):
        t = self.facet_terms(prior, q, z)
        return (t.t4 - t.t2).mean(), (t.t5 - t.t3).mean()
