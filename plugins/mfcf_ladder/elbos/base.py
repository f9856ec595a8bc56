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
from mfcf.errors import ConfigError

from ..augment import check_transform, transform


@dataclasses.dataclass
class FreeNatsConfig:
    """Loss options of every estimator (neither is in the paper; both default to off):

    * ``free_nats`` -- a floor lambda >= 0 on every facet's batch-mean ``kl_z`` in the loss:
      the loss uses max(kl_z[j], lambda) ("free bits", Kingma et al. 2016, per facet), so a
      facet may carry up to lambda nats of information about x at no cost and the optimiser
      gains nothing by collapsing it to its prior;
    * ``facet_independence`` -- a weight w >= 0 on the mutual information between the
      clusterings of every pair of facets, estimated on the batch from q*(c_i|x) and q*(c_j|x)
      (:func:`facet_mutual_information`) and added to the loss as w * beta_c[i] * beta_c[j] *
      I(c_i; c_j) (the betas fade it in with the facets). The generative model draws the
      facets' clusters independently; this asks the posterior clusterings to be independent
      too, so a facet does not spend its clusters on a factor another facet already clusters.
      Alone it is minimised by collapsing a facet's clustering (one cluster for every x, or
      the same soft assignment for every x): pair it with ``cluster_information``;
    * ``cluster_information`` -- a weight lambda >= 0 on each facet's batch estimate of the
      information between x and its clustering, I(x; c_j) = H(mean_x q(c_j|x)) -
      mean_x H(q(c_j|x)) (:func:`cluster_information`), *subtracted* from the loss as
      lambda * beta_c[j] * I(x; c_j) ("regularised information maximisation", Krause et al.
      2010; IMSAT, Hu et al. 2017): it rewards a facet for using all its clusters, each with
      confidence, which neither collapse mode of ``facet_independence`` does;
    * ``invariance`` -- a weight v >= 0 on the change of each listed facet's clustering under
      a nuisance transform T (``invariance_transform``, a name of
      :data:`mfcf_ladder.augment.TRANSFORMS` or several joined by ``+``, e.g.
      ``channel_permutation`` for a facet that should ignore colour,
      ``channel_permutation+mirror`` for one that should also ignore left and right):
      v * beta_c[j] * mean_x KL(q*(c_j|x) || q*(c_j|T(x))) for every j in
      ``invariance_facets``, with q*(c_j|x) held fixed as the target ("self-augmented
      training", IMSAT, Hu et al. 2017). With ``invariance_of: latent`` the divergence is
      KL(q(z_j|x) || q(z_j|T(x))) of the facet's Gaussian posteriors instead, so the latent
      itself (and with it every mixture later fitted to it) loses the nuisance, not only
      the current clusters. ``invariance_detach: false`` lets the gradient flow into the
      target q(.|x) too, so both posteriors move towards each other and the facet drops what
      T changes instead of learning to undo T (with the target fixed, an encoder that can
      infer the nuisance from T(x) is taught to, e.g. a floor's hue from the fixed hues of the
      rest of a scene). The encoder runs once more, on T(x). A facet that puts every
      image in one cluster is trivially invariant in its clusters: pair ``clusters`` with
      ``cluster_information``. This tells a facet which nuisance to ignore, knowledge the
      paper's unsupervised objective does not use.

    The logged ``kl_z`` and ``elbo`` stay the true values; ``loss`` includes every option; with
    ``facet_independence`` > 0 the batch estimate ``facet_mi`` (sum over pairs) is logged, with
    ``cluster_information`` > 0 ``cluster_info`` (the beta-weighted sum over facets), with
    ``invariance`` > 0 ``invariance_kl`` (the same for the KL above)."""

    free_nats: float = 0.0
    facet_independence: float = 0.0
    cluster_information: float = 0.0
    invariance: float = 0.0
    invariance_facets: list[int] = dataclasses.field(default_factory=list)
    invariance_transform: str = "channel_permutation"
    invariance_of: str = "clusters"
    invariance_detach: bool = True

    def __post_init__(self) -> None:
        positive(self.free_nats, "free_nats", allow_zero=True)
        positive(self.facet_independence, "facet_independence", allow_zero=True)
        positive(self.cluster_information, "cluster_information", allow_zero=True)
        positive(self.invariance, "invariance", allow_zero=True)
        check_transform(self.invariance_transform, "invariance_transform")
        if self.invariance_of not in INVARIANT_PARTS:
            raise ConfigError(f"unknown {self.invariance_of!r}; choose one of {sorted(INVARIANT_PARTS)}",
                              key="invariance_of")
        if self.invariance > 0 and not self.invariance_facets:
            raise ConfigError("invariance > 0 needs the facets it applies to, e.g. invariance_facets: [0]",
                              key="invariance_facets")
        if len(set(self.invariance_facets)) != len(self.invariance_facets) or any(
                j < 0 for j in self.invariance_facets):
            raise ConfigError(f"must list distinct facet indices >= 0, got {self.invariance_facets}",
                              key="invariance_facets")


def optimal_cluster_log_posterior(prior: FacetPrior, q: GaussianPosterior) -> Tensor:
    """log q*(c | x) = log_softmax_c(log pi_c + E_q[log N(z; mu_c, Sigma_c)]): (B, K) (§2.2).

    q* maximises the mean-field ELBO over q(c|x) for fixed q(z|x); it averages
    log-posteriors log p(c|z) over q(z|x), not posteriors.
    """
    return torch.log_softmax(prior.log_weights() + prior.expected_component_log_prob(q), dim=-1)


def facet_mutual_information(q_a: Tensor, q_b: Tensor) -> Tensor:
    """I(c_a; c_b) in nats of the batch's joint assignment distribution
    P(c_a, c_b) = mean_x q(c_a|x) q(c_b|x)^T, from soft assignments ``q_a`` (B, K_a) and
    ``q_b`` (B, K_b): sum P log(P / (P_a P_b)) with the marginals P_a, P_b of P. Zero exactly
    when the batch's clusterings are independent; at most min(log K_a, log K_b)."""
    joint = q_a.transpose(0, 1) @ q_b / q_a.shape[0]
    outer = joint.sum(1, keepdim=True) * joint.sum(0, keepdim=True)
    tiny = torch.finfo(joint.dtype).tiny
    return (joint * (joint.clamp_min(tiny).log() - outer.clamp_min(tiny).log())).sum()


def cluster_information(q: Tensor) -> Tensor:
    """I(x; c) in nats of a batch's soft assignments ``q`` (B, K), x uniform over the batch:
    H(mean_x q(c|x)) - mean_x H(q(c|x)). Zero when every x gets the same assignment (one
    cluster, or one soft mixture, for the whole batch); log K when the batch fills the K
    clusters equally and each x is certain of its own."""
    tiny = torch.finfo(q.dtype).tiny
    entropy = lambda p: -(p * p.clamp_min(tiny).log()).sum(-1)
    return entropy(q.mean(0)) - entropy(q).mean()


def assignment_divergence(log_target: Tensor, log_q: Tensor, fixed: bool = True) -> Tensor:
    """mean_x KL(target(c|x) || q(c|x)) in nats from log-probabilities (B, K), the target
    detached if ``fixed`` (then it is what ``q`` is pulled towards, and nothing pulls it)."""
    if fixed:
        log_target = log_target.detach()
    return (log_target.exp() * (log_target - log_q)).sum(-1).mean()


def cluster_divergence(prior: FacetPrior, target: GaussianPosterior, q: GaussianPosterior,
                       fixed: bool = True) -> Tensor:
    """mean_x KL(q*(c|x) || q*(c|T(x))) of one facet: ``target`` = q(z|x), ``q`` = q(z|T(x));
    q*(c|x) detached if ``fixed``."""
    return assignment_divergence(optimal_cluster_log_posterior(prior, target),
                                 optimal_cluster_log_posterior(prior, q), fixed)


def latent_divergence(prior: FacetPrior, target: GaussianPosterior, q: GaussianPosterior,
                      fixed: bool = True) -> Tensor:
    """mean_x KL(q(z|x) || q(z|T(x))) of two diagonal Gaussians, summed over dims, the target
    q(z|x) detached if ``fixed``; ``prior`` is not used."""
    mean, logvar = (target.mean.detach(), target.logvar.detach()) if fixed else (target.mean, target.logvar)
    return 0.5 * (q.logvar - logvar + (logvar.exp() + (mean - q.mean) ** 2) / q.logvar.exp() - 1).sum(-1).mean()


#: ``elbo.invariance_of``: what of a facet must not change under the transform.
INVARIANT_PARTS = {"clusters": cluster_divergence, "latent": latent_divergence}


@dataclasses.dataclass
class SamplesConfig(FreeNatsConfig):
    """``n_samples`` -- reparameterised samples of z per example (S); every term is averaged
    over them. The decoder sees one batch of S * B latents. ``free_nats``,
    ``facet_independence``: see :class:`FreeNatsConfig`."""

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
               + facet_independence * sum_{i<j} beta_c[i] beta_c[j] I(c_i; c_j)

    (``free_nats`` = ``facet_independence`` = 0 unless configured: the paper's objective).

    where ``recon`` is the mean of log p(x|z) over samples and batch. Logged terms (detached
    0-dim tensors on the model's device): ``loss``, ``elbo`` (recon - kl_z - kl_c, i.e. all
    beta = 1), ``recon``, ``kl_z``, ``kl_c`` and per facet ``kl_z/{j}``, ``kl_c/{j}``.
    """

    def __init__(self, config=None, *, n_facets: int = 1):
        super().__init__(config, n_facets=n_facets)
        outside = [j for j in self.config.invariance_facets if j >= n_facets]
        if outside:
            raise ConfigError(f"facets {outside} do not exist: the model has {n_facets} (0 to {n_facets - 1})",
                              key="invariance_facets")

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
        terms = d.terms
        w, lam, v = self.config.facet_independence, self.config.cluster_information, self.config.invariance
        if w > 0 or lam > 0:
            with torch.autocast(x.device.type, enabled=False):
                assignments = [optimal_cluster_log_posterior(p, q).exp() for p, q in zip(model.priors, posteriors)]
            if w > 0:
                mi = self.independence_penalty(assignments, coeffs)
                loss = loss + w * mi
                terms = {**terms, "facet_mi": mi.detach()}
            if lam > 0:
                info = sum(scaled(cluster_information(q), b) for q, b in zip(assignments, coeffs.beta_c))
                loss = loss - lam * info
                terms = {**terms, "cluster_info": info.detach()}
        if v > 0:
            kl = self.invariance_penalty(model, x, posteriors, coeffs)
            loss = loss + v * kl
            terms = {**terms, "invariance_kl": kl.detach()}
        return LossOutput(loss, {"loss": loss.detach(), **terms})

    def invariance_penalty(self, model: LatentModel, x: Tensor, posteriors: Sequence[GaussianPosterior],
                           coeffs: Coefficients) -> Tensor:
        """sum over ``invariance_facets`` j of beta_c[j] times the divergence of facet j's
        clusters or latent (``invariance_of``) under the transform (see ``invariance``)."""
        facets = [j for j in self.config.invariance_facets if coeffs.beta_c[j] != 0]
        if not facets:
            return posteriors[0].mean.new_zeros(())
        moved = model.encoder(transform(self.config.invariance_transform)(x), coeffs.alpha_enc)
        divergence = INVARIANT_PARTS[self.config.invariance_of]
        with torch.autocast(x.device.type, enabled=False):
            return sum(scaled(divergence(model.priors[j], posteriors[j], moved[j].full_precision(),
                                         self.config.invariance_detach), coeffs.beta_c[j])
                       for j in facets)

    @staticmethod
    def independence_penalty(assignments: Sequence[Tensor], coeffs: Coefficients) -> Tensor:
        """sum over facet pairs i < j of beta_c[i] * beta_c[j] * I(c_i; c_j) on the batch, from
        each facet's q*(c|x) ``assignments`` (B, K_j) (see ``facet_independence``)."""
        total = assignments[0].new_zeros(())
        for i in range(len(assignments)):
            for j in range(i + 1, len(assignments)):
                total = total + scaled(facet_mutual_information(assignments[i], assignments[j]),
                                       coeffs.beta_c[i] * coeffs.beta_c[j])
        return total

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
