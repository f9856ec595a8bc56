"""Particle logic shared by the MFCVAE estimators: encode, sample, decode, reduce, log."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from typing import NamedTuple

import torch
from torch import Tensor

from mfcf.api import (ELBO, Coefficients, FacetPrior, GaussianPosterior, LatentModel, Likelihood, LossOutput,
                      full_precision, scaled)
from mfcf.config import positive


@dataclasses.dataclass
class FreeNatsConfig:
    """``free_nats`` -- a floor lambda >= 0 on every facet's batch-mean ``kl_z`` in the loss:
    the loss uses max(kl_z[j], lambda) ("free bits", Kingma et al. 2016, per facet), so a facet
    may carry up to lambda nats of information about x at no cost and the optimiser gains
    nothing by collapsing it to its prior. 0 (default, faithful) is the plain objective. The
    logged ``kl_z`` and ``elbo`` stay the true values; ``loss`` is the floored one."""

    free_nats: float = 0.0

    def __post_init__(self) -> None:
        positive(self.free_nats, "free_nats", allow_zero=True)


@dataclasses.dataclass
class SamplesConfig(FreeNatsConfig):
    """``n_samples`` -- reparameterised samples of z per example (S); every term is averaged
    over them. The decoder sees one batch of S * B latents. ``free_nats``: see
    :class:`FreeNatsConfig`."""

    n_samples: int = 1

    def __post_init__(self) -> None:
        super().__post_init__()
        positive(self.n_samples, "n_samples")


class Densities(NamedTuple):
    """What :meth:`MFCVAEELBOBase.densities` returns: ``recon`` = mean log p(x|z), per-facet
    batch-mean ``kl_z`` / ``kl_c`` (with gradients), and the detached logged ``terms`` (all
    but ``loss``, which needs the schedule's betas)."""

    recon: Tensor
    kl_z: list[Tensor]
    kl_c: list[Tensor]
    terms: dict[str, Tensor]


class MFCVAEELBOBase(ELBO):
    """Negative weighted ELBO of a multi-facet model, averaged over the batch.

    One encoder call gives q(z_j|x) for every facet; S reparameterised samples per facet
    (in train *and* eval mode, so a test ELBO is a real ELBO, §9 D11) go through one decoder
    call. Subclasses only say how a facet's two KL parts are estimated (:meth:`facet_kl`).
    The loss is (§3.1)

        loss = -recon + sum_j (beta_z[j] * max(kl_z[j], free_nats) + beta_c[j] * kl_c[j])

    (``free_nats`` = 0 unless configured: the paper's objective).

    where ``recon`` is the mean of log p(x|z) over samples and batch. Logged terms (detached
    0-dim tensors on the model's device): ``loss``, ``elbo`` (recon - kl_z - kl_c, i.e. all
    beta = 1), ``recon``, ``kl_z``, ``kl_c`` and per facet ``kl_z/{j}``, ``kl_c/{j}``.
    """

    def n_particles(self) -> int:
        return self.config.n_samples

    def facet_kl(self, prior: FacetPrior, q: GaussianPosterior, z: Tensor,
                 beta_z: float, beta_c: float) -> tuple[Tensor, Tensor]:
        """Batch-mean (kl_z, kl_c) of one facet from its samples ``z`` (S, B, D)."""
        raise NotImplementedError

    def __call__(self, model: LatentModel, x: Tensor, coeffs: Coefficients) -> LossOutput:
        # Under bf16 autocast (trainer.precision) only the networks run in bfloat16: the
        # posteriors and decoder outputs are cast back, and every density and KL is float32.
        posteriors = [q.full_precision() for q in model.encoder(x, coeffs.alpha_enc)]
        if not len(posteriors) == len(model.priors) == len(coeffs.beta_z) == len(coeffs.beta_c):
            raise ValueError(
                f"facet counts disagree: encoder gave {len(posteriors)} posteriors, the model has "
                f"{len(model.priors)} priors, coefficients cover {len(coeffs.beta_z)} facets")
        zs = [q.rsample(self.n_particles()) for q in posteriors]  # (S, B, D_j)
        params = full_precision(model.decoder([z.flatten(0, 1) for z in zs], coeffs.alpha_dec))
        d = (self._compiled_densities or self.densities)(
            model.priors, model.likelihood, x, posteriors, zs, params.unflatten(0, zs[0].shape[:2]), coeffs)
        loss = -d.recon
        floor = self.config.free_nats
        for j, (kz, kc) in enumerate(zip(d.kl_z, d.kl_c)):
            if floor > 0:
                kz = torch.clamp(kz, min=floor)
            loss = loss + scaled(kz, coeffs.beta_z[j]) + scaled(kc, coeffs.beta_c[j])
        return LossOutput(loss, {"loss": loss.detach(), **d.terms})

    _compiled_densities: Callable[..., Densities] | None = None

    def compile_densities(self, mode: str) -> None:
        """Run :meth:`densities` through ``torch.compile(mode=mode)`` from now on; the networks
        stay eager. The densities do not depend on the schedule's coefficients (the betas
        weight their results outside), so one graph serves every step of a progressive fade."""
        self._compiled_densities = torch.compile(self.densities, mode=mode)

    def densities(self, priors: Sequence[FacetPrior], likelihood: Likelihood, x: Tensor,
                  posteriors: Sequence[GaussianPosterior], zs: Sequence[Tensor], params: Tensor,
                  coeffs: Coefficients) -> Densities:
        """Everything from the networks' outputs on that does not depend on the schedule: the
        mean log p(x|z) of the decoder's ``params`` (S, B, ...), every facet's batch-mean KL
        parts and the logged terms, in float32 whatever the autocast. No network runs here:
        this is what :meth:`compile_densities` compiles. ``coeffs`` only reach
        :meth:`facet_kl` (an estimator may use the betas to decide what needs gradients)."""
        with torch.autocast(x.device.type, enabled=False):
            recon = likelihood.log_prob(x, params).mean()
            kl = [self.facet_kl(prior, q, z, coeffs.beta_z[j], coeffs.beta_c[j])
                  for j, (prior, q, z) in enumerate(zip(priors, posteriors, zs))]
        kl_z, kl_c = [kz for kz, _ in kl], [kc for _, kc in kl]
        with torch.no_grad():
            kz, kc = torch.stack(kl_z), torch.stack(kl_c)
            total_z, total_c = kz.sum(), kc.sum()
            terms = {"elbo": recon - total_z - total_c, "recon": recon.detach(), "kl_z": total_z, "kl_c": total_c}
            for j in range(len(kl)):
                terms[f"kl_z/{j}"] = kz[j]
                terms[f"kl_c/{j}"] = kc[j]
        return Densities(recon, kl_z, kl_c, terms)
