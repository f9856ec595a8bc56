"""The collapsed ELBO, c summed out exactly, averaged over S samples (MFCVAE.md §3.3)."""

from __future__ import annotations

import torch

from .base import MFCVAEELBOBase, SamplesConfig


class MFCVAECollapsedELBO(MFCVAEELBOBase):
    """Multi-sample estimator of the collapsed ELBO, whose KL per facet is KL(q(z_j|x) || p(z_j)):

        kl_j = mean_{s,b} [log q(z_js|x) - log p_mix(z_js)],   p_mix(z) = sum_c pi_c N(z; mu_c, Sigma_c)

    How beta_z and beta_c enter: kl_j is split exactly as the official estimator splits it,
    kl_c = mean Sum_c gamma_c (log gamma_c - log pi_c) with gamma = p(c | z_s) (no clamp) and
    kl_z = kl_j - kl_c, and the loss weights them as beta_z kl_z + beta_c kl_c. When
    beta_z = beta_c = beta (every official schedule) this is beta * kl_j and the split costs
    nothing in the backward pass (kl_c is computed without gradient); otherwise it is the
    S-sample version of the official five-term loss without the 1e-6 clamp. With S = 1 the
    loss equals ``mfcvae_mc``'s up to that clamp.
    """

    name = "mfcvae_collapsed"
    Config = SamplesConfig

    def facet_kl(self, prior, q, z, beta_z, beta_c):
        joint = prior.joint_log_prob(z)  # (S, B, K)
        log_q = q.log_prob(z)
        kl = (log_q - torch.logsumexp(joint, dim=-1)).mean()
        same_beta = isinstance(beta_z, float) and beta_z == beta_c  # tensors (compiled): assume not
        with torch.set_grad_enabled(torch.is_grad_enabled() and not same_beta):
            log_gamma = torch.log_softmax(joint, dim=-1)
            kl_c = (log_gamma.exp() * (log_gamma - prior.log_weights())).sum(-1).mean()
        return kl - kl_c, kl_c
