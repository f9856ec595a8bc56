"""ELBO estimators (MFCVAE.md §2.2, §3, §3.5 items 3-7, §10 "Objective").

The model is a tiny stand-in satisfying the LatentModel protocol (linear encoder heads, a linear
decoder with alpha-gated facet inputs), so these tests do not depend on the ladder networks.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
from scipy import special, stats
from torch import distributions as dist
from torch import nn

from mfcf.api import Coefficients, DataInfo, GaussianPosterior
from mfcf.config import validate_section
from mfcf.errors import ConfigError
from mfcf_ladder.elbos import (
    MFCVAEAnalyticELBO,
    MFCVAECollapsedELBO,
    MFCVAEMonteCarloELBO,
    optimal_cluster_log_posterior,
)
from mfcf_ladder.augment import TRANSFORMS
from mfcf_ladder.elbos.base import assignment_divergence, cluster_information, facet_mutual_information
from sklearn.metrics import mutual_info_score
from mfcf_ladder.likelihoods import BernoulliLikelihood
from mfcf_ladder.priors import MoGPrior

SHAPE = (1, 3, 3)
ESTIMATORS = (MFCVAEMonteCarloELBO, MFCVAEAnalyticELBO, MFCVAECollapsedELBO)


pytestmark = pytest.mark.usefixtures("float64")


class StandInEncoder(nn.Module):
    def __init__(self, dims, batch_norm=False):
        super().__init__()
        n_in = math.prod(SHAPE)
        self.body = nn.Sequential(nn.Linear(n_in, 8), nn.Tanh(), *([nn.BatchNorm1d(8)] if batch_norm else []))
        self.means = nn.ModuleList(nn.Linear(8, d) for d in dims)
        self.logvars = nn.ModuleList(nn.Linear(8, d) for d in dims)

    def forward(self, x, alpha_enc=None):
        h = self.body(x.flatten(1))
        return [GaussianPosterior(2 * m(h), 0.5 * v(h) - 1.0) for m, v in zip(self.means, self.logvars)]


class StandInDecoder(nn.Module):
    """x logits = bias + sum_j alpha_dec[j] * W_j z_j; remembers its last input."""

    def __init__(self, dims):
        super().__init__()
        self.rungs = nn.ModuleList(nn.Linear(d, math.prod(SHAPE), bias=False) for d in dims)
        self.bias = nn.Parameter(torch.zeros(math.prod(SHAPE)))
        self.last_zs = None

    def forward(self, zs, alpha_dec=None):
        self.last_zs = [z.detach() for z in zs]
        alpha = alpha_dec or (1.0,) * len(zs)
        out = self.bias + sum(a * rung(z) for a, rung, z in zip(alpha, self.rungs, zs))
        return out.unflatten(-1, SHAPE)


class StandInModel(nn.Module):
    def __init__(self, dims=(2, 3), clusters=(3, 4), covariances=("diag", "full"), seed=0, batch_norm=False):
        super().__init__()
        torch.manual_seed(seed)
        self.encoder = StandInEncoder(dims, batch_norm)
        self.decoder = StandInDecoder(dims)
        self.priors = nn.ModuleList(
            MoGPrior(MoGPrior.Config(covariance=cov), latent_dim=d, n_clusters=k)
            for d, k, cov in zip(dims, clusters, covariances))
        for prior in self.priors:  # overlapping clusters of different sizes, non-uniform pi
            k, d = prior.means.shape
            prior.initialise(1.5 * torch.randn(k, d), 0.3 + torch.rand(k, d), torch.rand(k) + 0.2)
            if prior.full:
                with torch.no_grad():
                    prior.raw_lower.normal_(0.0, 0.3)
        self.likelihood = BernoulliLikelihood(info=DataInfo(shape=SHAPE, factors={}))


def batch(B=4, seed=1):
    return torch.rand(B, *SHAPE, generator=torch.Generator().manual_seed(seed))


def coefficients(beta_z=(1.0, 1.0), beta_c=None, alpha_dec=(1.0, 1.0)):
    beta_c = beta_z if beta_c is None else beta_c
    return Coefficients((1.0,) * len(beta_z), tuple(alpha_dec), tuple(beta_z), tuple(beta_c))


def run(estimator, model, x, coeffs, seed=0):
    torch.manual_seed(seed)
    return estimator(model, x, coeffs)


def grads(model, loss):
    params = [p for p in model.parameters() if p.requires_grad]
    return torch.autograd.grad(loss, params, allow_unused=True)


def entropy(q):
    return 0.5 * (math.log(2 * math.pi) + 1 + q.logvar).sum(-1)


# -- config, terms ------------------------------------------------------------------------
def test_names_and_configs():
    assert [e.name for e in ESTIMATORS] == ["mfcvae_mc", "mfcvae_analytic", "mfcvae_collapsed"]
    for estimator in (MFCVAEAnalyticELBO, MFCVAECollapsedELBO):
        assert validate_section(estimator.Config, {"n_samples": 8}, "elbo").n_samples == 8
        with pytest.raises(ConfigError) as info:
            validate_section(estimator.Config, {"n_samples": 0}, "elbo")
        assert info.value.key == "elbo.n_samples"
    assert validate_section(MFCVAEMonteCarloELBO.Config, {}, "elbo").detach_responsibilities is False


@pytest.mark.parametrize("estimator_cls", ESTIMATORS)
def test_terms_are_detached_scalars_that_add_up(estimator_cls):
    model, x = StandInModel(), batch()
    out = run(estimator_cls(n_facets=2), model, x, coefficients(beta_z=(0.3, 1.0), beta_c=(0.6, 1.0)))
    names = {"loss", "elbo", "recon", "kl_z", "kl_c", "kl_z/0", "kl_z/1", "kl_c/0", "kl_c/1"}
    assert names <= set(out.terms)
    for name, value in out.terms.items():
        assert isinstance(value, torch.Tensor) and value.dim() == 0 and not value.requires_grad, name
    t = {k: v.item() for k, v in out.terms.items()}
    assert t["kl_z"] == pytest.approx(t["kl_z/0"] + t["kl_z/1"])
    assert t["kl_c"] == pytest.approx(t["kl_c/0"] + t["kl_c/1"])
    assert t["elbo"] == pytest.approx(t["recon"] - t["kl_z"] - t["kl_c"])
    weighted = 0.3 * t["kl_z/0"] + t["kl_z/1"] + 0.6 * t["kl_c/0"] + t["kl_c/1"]
    assert out.loss.item() == pytest.approx(weighted - t["recon"], rel=1e-12)
    assert t["loss"] == out.loss.item() and out.loss.requires_grad
    unit = run(estimator_cls(n_facets=2), model, x, coefficients())
    assert unit.loss.item() == pytest.approx(-unit.terms["elbo"].item(), rel=1e-12)


# -- five-term estimator ------------------------------------------------------------------
def test_five_terms_match_their_definitions_on_a_hand_built_example():
    # D = (1, 2), K = 2 per facet; terms recomputed with scipy from the sampled z (§3.1)
    model = StandInModel(dims=(1, 2), clusters=(2, 2), seed=3)
    x = batch(B=3)
    bz, bc = (0.4, 0.9), (0.7, 0.2)
    out = run(MFCVAEMonteCarloELBO(n_facets=2), model, x, coefficients(beta_z=bz, beta_c=bc))
    posteriors = model.encoder(x)
    logits = model.decoder(model.decoder.last_zs).detach().numpy()
    xn = x.numpy()
    p = special.expit(logits)
    t1 = (xn * np.log(p) + (1 - xn) * np.log(1 - p)).sum((1, 2, 3))
    loss, kl = -t1.mean(), {}
    for j, (prior, q, z) in enumerate(zip(model.priors, posteriors, model.decoder.last_zs)):
        z = z.numpy()
        pi = prior.log_weights().exp().detach().numpy()
        means, covs = prior.means.detach().numpy(), prior.covariances().detach().numpy()
        log_n = np.stack([stats.multivariate_normal(means[c], covs[c]).logpdf(z).reshape(-1) for c in range(2)], -1)
        gamma = pi * np.exp(log_n)
        gamma /= gamma.sum(-1, keepdims=True)
        mu, std = q.mean.detach().numpy(), q.std.detach().numpy()
        t2 = (gamma * log_n).sum(-1)
        t3 = (gamma * np.log(pi)).sum(-1)
        t4 = stats.norm(mu, std).logpdf(z).sum(-1)
        t5 = (gamma * np.log(np.maximum(gamma, 1e-6))).sum(-1)
        kl[j] = (t4 - t2).mean(), (t5 - t3).mean()
        loss += bz[j] * kl[j][0] + bc[j] * kl[j][1]
    assert out.loss.item() == pytest.approx(loss, rel=1e-10)
    assert out.terms["recon"].item() == pytest.approx(t1.mean(), rel=1e-10)
    for j in range(2):
        assert out.terms[f"kl_z/{j}"].item() == pytest.approx(kl[j][0], rel=1e-10, abs=1e-12)
        assert out.terms[f"kl_c/{j}"].item() == pytest.approx(kl[j][1], rel=1e-10, abs=1e-12)


@pytest.mark.parametrize("beta_z, beta_c", [((1.0, 1.0), None), ((0.3, 0.8), None), ((0.3, 0.8), (0.9, 0.1))])
def test_code_identity_and_collapsed_single_sample_equals_official(beta_z, beta_c):
    # -loss(beta = 1) = -mean[T1 + sum_j (log p_mix(z_j) - log q(z_j|x))] (§3.3, §3.5.4)
    model, x = StandInModel(seed=5), batch(B=6)
    coeffs = coefficients(beta_z, beta_c)
    official = run(MFCVAEMonteCarloELBO(n_facets=2), model, x, coeffs, seed=11)
    zs = model.decoder.last_zs
    collapsed = run(MFCVAECollapsedELBO(n_facets=2), model, x, coeffs, seed=11)
    assert all(torch.equal(a, b) for a, b in zip(zs, model.decoder.last_zs))  # same particles
    assert collapsed.loss.item() == pytest.approx(official.loss.item(), rel=1e-5)
    for name in official.terms:
        assert collapsed.terms[name].item() == pytest.approx(official.terms[name].item(), rel=1e-5, abs=1e-6), name
    if beta_c is None and beta_z == (1.0, 1.0):
        posteriors = model.encoder(x)
        t1 = model.likelihood.log_prob(x, model.decoder(zs))
        kl = sum(q.log_prob(z) - prior.marginal_log_prob(z) for prior, q, z in zip(model.priors, posteriors, zs))
        expected = -(t1 - kl).mean()
        assert official.loss.item() == pytest.approx(expected.item(), rel=1e-5)
        assert collapsed.loss.item() == pytest.approx(expected.item(), rel=1e-12)


@pytest.mark.parametrize("beta_z", [(1.0, 1.0), (0.35, 0.8)])
def test_gradients_through_gamma(beta_z):
    # §3.3 item 1, §3.5.6
    model, x = StandInModel(seed=6), batch(B=5)
    coeffs = coefficients(beta_z)
    attached = run(MFCVAEMonteCarloELBO(n_facets=2), model, x, coeffs, seed=2)
    gamma = torch.cat([p.responsibilities(z) for p, z in zip(model.priors, model.decoder.last_zs)], -1)
    assert gamma.min() > 1e-6  # the clamp is inactive here
    detached_estimator = MFCVAEMonteCarloELBO(MFCVAEMonteCarloELBO.Config(detach_responsibilities=True), n_facets=2)
    detached = run(detached_estimator, model, x, coeffs, seed=2)
    collapsed = run(MFCVAECollapsedELBO(n_facets=2), model, x, coeffs, seed=2)
    g_att, g_det, g_col = grads(model, attached.loss), grads(model, detached.loss), grads(model, collapsed.loss)
    norm = torch.cat([g.flatten() for g in g_att]).norm()
    for a, d, c in zip(g_att, g_det, g_col):
        torch.testing.assert_close(a, d, rtol=0, atol=1e-6 * norm)
        torch.testing.assert_close(a, c, rtol=0, atol=1e-6 * norm)
    # the test has power: with beta_z != beta_c the gradient through gamma is not zero, and the
    # collapsed estimator's split of its KL then follows the official gradient
    unequal = coefficients(beta_z, beta_c=(0.05, 0.2))
    g_att = grads(model, run(MFCVAEMonteCarloELBO(n_facets=2), model, x, unequal, seed=2).loss)
    g_det = grads(model, run(detached_estimator, model, x, unequal, seed=2).loss)
    g_col = grads(model, run(MFCVAECollapsedELBO(n_facets=2), model, x, unequal, seed=2).loss)
    assert max((a - d).abs().max() for a, d in zip(g_att, g_det)) > 1e-3 * norm
    for a, c in zip(g_att, g_col):
        torch.testing.assert_close(a, c, rtol=0, atol=1e-6 * norm)


def test_single_sample_terms_are_unbiased():
    # §3.5.7: E[T4] = -H[q]; E[T2 + T3 - T5] = E_q log p_mix(z) (independent 10^6-sample reference)
    model, x = StandInModel(seed=7), batch(B=3)
    estimator = MFCVAEMonteCarloELBO(n_facets=2)
    torch.manual_seed(0)
    with torch.no_grad():
        for prior, q in zip(model.priors, model.encoder(x)):
            t = estimator.facet_terms(prior, q, q.rsample(200_000))
            t4, t4_se = t.t4.mean(0), t.t4.std(0) / math.sqrt(200_000)
            assert ((t4 + entropy(q)).abs() <= 4 * t4_se).all()
            mix = t.t2 + t.t3 - t.t5
            reference = torch.cat([prior.marginal_log_prob(q.rsample(200_000)) for _ in range(5)])
            se = (mix.var(0) / 200_000 + reference.var(0) / reference.shape[0]).sqrt()
            assert ((mix.mean(0) - reference.mean(0)).abs() <= 4 * se).all()


# -- optimal q(c|x) and the analytic estimator --------------------------------------------
def objective_f(qc, log_pi, expected):
    """F(q) = sum_c q_c (log pi_c + E_q log N_c) - sum_c q_c log q_c (§2.2), batched over rows."""
    return (qc * (log_pi + expected)).sum(-1) - special.xlogy(qc, qc).sum(-1)


@pytest.mark.parametrize("covariance", ["diag", "full"])
def test_optimal_q_beats_random_and_perturbed_q(covariance):
    # §3.5.3
    torch.manual_seed(8)
    D, K = 3, 6
    prior = MoGPrior(MoGPrior.Config(covariance=covariance), latent_dim=D, n_clusters=K)
    prior.initialise(torch.randn(K, D), 0.2 + torch.rand(K, D), torch.rand(K) + 0.1)
    q = GaussianPosterior(torch.randn(4, D), torch.randn(4, D) - 1)
    with torch.no_grad():
        log_pi = prior.log_weights().numpy()
        expected = prior.expected_component_log_prob(q).numpy()
        q_star = optimal_cluster_log_posterior(prior, q).exp().numpy()
    best = objective_f(q_star, log_pi, expected)
    np.testing.assert_allclose(best, special.logsumexp(log_pi + expected, axis=-1), rtol=0, atol=1e-10)
    rng = np.random.default_rng(0)
    random_q = rng.dirichlet(np.ones(K), size=(1000, 4))
    assert (objective_f(random_q, log_pi, expected) <= best).all()
    perturbed = q_star * np.exp(1e-3 * rng.standard_normal((1000, 4, K)))
    perturbed /= perturbed.sum(-1, keepdims=True)
    gap = best - objective_f(perturbed, log_pi, expected)
    assert (gap >= 0).all() and (gap > 0).any()
    # neither p(c|z) at a random z nor E_q p(c|z) is the optimum
    z = q.rsample(20_000)
    plug_in = prior.responsibilities(z).detach().numpy()
    assert (objective_f(plug_in[0], log_pi, expected) < best - 1e-6).all()
    assert (objective_f(plug_in.mean(0), log_pi, expected) < best - 1e-6).all()


def test_analytic_terms_match_torch_kl_divergence():
    model, x = StandInModel(seed=9), batch(B=5)
    bz, bc = (0.5, 1.0), (0.25, 0.75)
    out = run(MFCVAEAnalyticELBO(n_facets=2), model, x, coefficients(bz, bc))
    loss = -out.terms["recon"].item()
    for j, (prior, q) in enumerate(zip(model.priors, model.encoder(x))):
        with torch.no_grad():
            q_dist = dist.MultivariateNormal(q.mean.unsqueeze(-2), torch.diag_embed(q.var).unsqueeze(-3))
            kl = dist.kl_divergence(q_dist, dist.MultivariateNormal(prior.means, scale_tril=prior.scale_tril()))
            log_pi = prior.log_weights()
            q_star = torch.softmax(log_pi - entropy(q).unsqueeze(-1) - kl, -1)  # E_q log N = -H - KL
            kl_z = (q_star * kl).sum(-1).mean().item()
            kl_c = (q_star * (q_star.log() - log_pi)).sum(-1).mean().item()
        assert out.terms[f"kl_z/{j}"].item() == pytest.approx(kl_z, rel=1e-9)
        assert out.terms[f"kl_c/{j}"].item() == pytest.approx(kl_c, rel=1e-9, abs=1e-12)
        loss += bz[j] * kl_z + bc[j] * kl_c
    assert out.loss.item() == pytest.approx(loss, rel=1e-9)
    recon = model.likelihood.log_prob(x, model.decoder(model.decoder.last_zs)).mean()
    assert out.terms["recon"].item() == pytest.approx(recon.item(), rel=1e-12)


def test_collapsed_bound_exceeds_mean_field_by_the_expected_kl():
    # §3.5.5: L_C >= L_MF*, gap = sum_j E_q KL(q*(c_j|x) || p(c_j|z_j)); same particles for recon
    model, x = StandInModel(seed=10), batch(B=3)
    S, N = 100_000, 200_000
    with torch.no_grad():
        collapsed = run(MFCVAECollapsedELBO(MFCVAECollapsedELBO.Config(n_samples=S), n_facets=2),
                        model, x, coefficients(), seed=1)
        mean_field = run(MFCVAEAnalyticELBO(MFCVAEAnalyticELBO.Config(n_samples=S), n_facets=2),
                         model, x, coefficients(), seed=1)
        assert collapsed.terms["recon"].item() == mean_field.terms["recon"].item()
        gap = collapsed.terms["elbo"].item() - mean_field.terms["elbo"].item()
        # independent references: per-particle collapsed KL (for its spread) and KL(q* || p(c|z))
        torch.manual_seed(2)
        kl_c, kl_gap = 0.0, 0.0
        for prior, q in zip(model.priors, model.encoder(x)):
            z = q.rsample(N)
            kl_c = kl_c + (q.log_prob(z) - prior.marginal_log_prob(z)).mean(-1)
            log_q_star = optimal_cluster_log_posterior(prior, q)
            log_post = torch.log_softmax(prior.joint_log_prob(z), -1)
            kl_gap = kl_gap + (log_q_star.exp() * (log_q_star - log_post)).sum(-1).mean(-1)
    se = math.sqrt(kl_c.var().item() / S + kl_gap.var().item() / N)
    assert gap > 0.05  # the clusters overlap: the bounds really differ
    assert gap == pytest.approx(kl_gap.mean().item(), abs=4 * se)


def test_collapsed_averages_over_samples():
    model, x = StandInModel(seed=12), batch(B=4)
    bz = (0.5, 0.9)
    out = run(MFCVAECollapsedELBO(MFCVAECollapsedELBO.Config(n_samples=5), n_facets=2), model, x, coefficients(bz))
    zs = [z.unflatten(0, (5, 4)) for z in model.decoder.last_zs]
    assert zs[0].shape == (5, 4, 2)
    assert not torch.allclose(zs[0][0], zs[0][1])  # different particles
    recon = model.likelihood.log_prob(x, model.decoder(zs))  # (5, 4)
    expected = -recon.mean()
    for b, prior, q, z in zip(bz, model.priors, model.encoder(x), zs):
        expected = expected + b * (q.log_prob(z) - prior.marginal_log_prob(z)).mean()
    assert out.loss.item() == pytest.approx(expected.item(), rel=1e-12)


# -- modes and switched-off facets --------------------------------------------------------
@pytest.mark.parametrize("estimator_cls", ESTIMATORS)
def test_eval_mode_still_samples(estimator_cls):
    # §9 D11: a test ELBO is a real ELBO, so z is sampled in eval mode too
    model, x = StandInModel(seed=13, batch_norm=True), batch(B=6)
    model.eval()
    running_mean = model.encoder.body[2].running_mean.clone()
    estimator = estimator_cls(n_facets=2)
    with torch.no_grad():
        a, b = run(estimator, model, x, coefficients(), seed=1), run(estimator, model, x, coefficients(), seed=2)
        means = [q.mean for q in model.encoder(x)]
        run(estimator, model, x, coefficients(), seed=1)
        assert not any(torch.allclose(z, m) for z, m in zip(model.decoder.last_zs, means))
        again = run(estimator, model, x, coefficients(), seed=1)
    assert a.loss.item() != b.loss.item()
    assert again.loss.item() == a.loss.item()
    assert torch.equal(model.encoder.body[2].running_mean, running_mean)  # eval: no BN update


@pytest.mark.parametrize("estimator_cls", ESTIMATORS)
def test_switched_off_facet_gets_zero_gradient(estimator_cls):
    # alpha_dec_0 = 0 and beta_0 = 0: facet 0's prior and encoder heads get exactly zero gradient
    model, x = StandInModel(seed=14), batch(B=5)
    coeffs = coefficients(beta_z=(0.0, 1.0), alpha_dec=(0.0, 1.0))
    run(estimator_cls(n_facets=2), model, x, coeffs).loss.backward()
    off = [*model.priors[0].parameters(), *model.encoder.means[0].parameters(), *model.encoder.logvars[0].parameters()]
    on = [*model.priors[1].parameters(), *model.encoder.means[1].parameters(), *model.encoder.logvars[1].parameters()]
    assert all(p.grad is None or torch.count_nonzero(p.grad) == 0 for p in off)
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in on)


def test_facet_count_mismatch_is_reported():
    model, x = StandInModel(), batch()
    with pytest.raises(ValueError, match="facet counts disagree"):
        MFCVAEMonteCarloELBO(n_facets=3)(model, x, Coefficients.ones(3))


# -- free nats ----------------------------------------------------------------------------
@pytest.mark.parametrize("estimator_cls", ESTIMATORS)
def test_free_nats_floor_each_facets_kl_z_in_the_loss_only(estimator_cls):
    model, x = StandInModel(seed=21), batch(B=6)
    coeffs = coefficients(beta_z=(0.5, 1.0), beta_c=(1.0, 0.25))
    plain = run(estimator_cls(n_facets=2), model, x, coeffs)
    t = {k: v.item() for k, v in plain.terms.items()}
    floor = (t["kl_z/0"] + t["kl_z/1"]) / 2  # between the two facets' kl_z: one is floored, one not
    low, high = sorted((t["kl_z/0"], t["kl_z/1"]))
    assert low < floor < high
    config = validate_section(estimator_cls.Config, {"free_nats": floor}, "elbo")
    floored = run(estimator_cls(config, n_facets=2), model, x, coeffs)
    expected = (-t["recon"] + 0.5 * max(t["kl_z/0"], floor) + max(t["kl_z/1"], floor)
                + t["kl_c/0"] + 0.25 * t["kl_c/1"])
    assert floored.loss.item() == pytest.approx(expected, rel=1e-12)
    assert all(floored.terms[k].item() == t[k] for k in ("elbo", "kl_z", "kl_z/0", "kl_z/1"))  # true values logged
    # the floored facet's kl_z sends no gradient: its encoder heads see only recon and kl_c
    below = 0 if t["kl_z/0"] < floor else 1
    heads = [*model.encoder.logvars[below].parameters()]
    g_floored = torch.autograd.grad(floored.loss, heads)
    model.zero_grad()
    without_kl_z = run(estimator_cls(config, n_facets=2), model, x,
                       coefficients(beta_z=tuple(0.0 if j == below else b for j, b in enumerate((0.5, 1.0))),
                                    beta_c=(1.0, 0.25)))
    g_without = torch.autograd.grad(without_kl_z.loss, heads)
    assert all(torch.allclose(a, b) for a, b in zip(g_floored, g_without))


@pytest.mark.parametrize("key", ["free_nats", "facet_independence", "cluster_information"])
def test_loss_options_must_not_be_negative(key):
    for estimator_cls in ESTIMATORS:
        with pytest.raises(ConfigError) as info:
            validate_section(estimator_cls.Config, {key: -1.0}, "elbo")
        assert info.value.key == f"elbo.{key}"
        assert "-1" in str(info.value)


# -- facet independence -------------------------------------------------------------------
def test_facet_mutual_information_of_hard_labels_is_sklearns():
    rng = np.random.default_rng(3)
    a = rng.integers(0, 4, 300)
    b = np.where(rng.random(300) < 0.6, a % 3, rng.integers(0, 3, 300))  # partly dependent on a
    one_hot = lambda labels, k: torch.eye(k, dtype=torch.float64)[torch.as_tensor(labels)]
    mi = facet_mutual_information(one_hot(a, 4), one_hot(b, 3)).item()
    assert mi == pytest.approx(mutual_info_score(a, b), rel=1e-10)
    assert mi > 0.1
    # every (a, b) combination equally often: independent, whatever the labels
    grid_a, grid_b = np.repeat(np.arange(4), 3), np.tile(np.arange(3), 4)
    assert facet_mutual_information(one_hot(grid_a, 4), one_hot(grid_b, 3)).item() == pytest.approx(0, abs=1e-12)
    # a clustering against itself: its entropy
    assert facet_mutual_information(one_hot(grid_a, 4), one_hot(grid_a, 4)).item() == pytest.approx(math.log(4))


def test_facet_mutual_information_of_soft_assignments_is_the_joints():
    q_a = torch.softmax(torch.randn(50, 3, generator=torch.Generator().manual_seed(0)), -1)
    q_b = torch.softmax(torch.randn(50, 2, generator=torch.Generator().manual_seed(1)), -1)
    joint = np.einsum("bi,bj->ij", q_a.numpy(), q_b.numpy()) / 50
    outer = np.outer(joint.sum(1), joint.sum(0))
    expected = float((joint * np.log(joint / outer)).sum())
    assert facet_mutual_information(q_a, q_b).item() == pytest.approx(expected, rel=1e-10)


def with_option(estimator_cls, options, seed):
    """A stand-in model and batch with beta_c = (0.5, 0.8), the loss without and with the
    ELBO ``options``, and each facet's q*(c|x) (no gradient)."""
    model, x = StandInModel(seed=seed), batch(B=16)
    coeffs = coefficients(beta_z=(1.0, 1.0), beta_c=(0.5, 0.8))
    plain = run(estimator_cls(n_facets=2), model, x, coeffs)
    config = validate_section(estimator_cls.Config, options, "elbo")
    out = run(estimator_cls(config, n_facets=2), model, x, coeffs)
    with torch.no_grad():
        q = [optimal_cluster_log_posterior(p, post).exp() for p, post in zip(model.priors, model.encoder(x))]
    return model, x, coeffs, config, plain, out, q


@pytest.mark.parametrize("estimator_cls", ESTIMATORS)
def test_facet_independence_adds_the_weighted_batch_mutual_information(estimator_cls):
    model, x, coeffs, config, plain, penalised, q = with_option(estimator_cls, {"facet_independence": 3.0}, seed=5)
    assert "facet_mi" not in plain.terms
    mi = facet_mutual_information(*q).item()
    assert mi > 1e-4
    assert penalised.terms["facet_mi"].item() == pytest.approx(0.5 * 0.8 * mi, rel=1e-10)
    assert penalised.loss.item() == pytest.approx(plain.loss.item() + 3.0 * 0.5 * 0.8 * mi, rel=1e-10)
    assert penalised.terms["elbo"].item() == pytest.approx(plain.terms["elbo"].item(), rel=1e-12)
    # the penalty's gradient reaches the priors' means (the clusterings themselves move)
    g_plain = torch.autograd.grad(plain.loss, model.priors[0].means)[0]
    g_penalised = torch.autograd.grad(penalised.loss, model.priors[0].means)[0]
    assert not torch.allclose(g_plain, g_penalised)
    # a facet whose KL weight is still 0 (not yet faded in) is left out
    off = coefficients(beta_z=(0.0, 1.0), beta_c=(0.0, 1.0))
    assert run(estimator_cls(config, n_facets=2), model, x, off).loss.item() == pytest.approx(
        run(estimator_cls(n_facets=2), model, x, off).loss.item(), rel=1e-12)


# -- cluster information ------------------------------------------------------------------
def test_cluster_information_of_hard_labels_is_their_entropy_and_of_a_shared_assignment_zero():
    labels = np.array([0, 0, 1, 2, 2, 2, 3, 1])
    one_hot = torch.eye(4, dtype=torch.float64)[torch.as_tensor(labels)]
    assert cluster_information(one_hot).item() == pytest.approx(stats.entropy(np.bincount(labels)), rel=1e-12)
    # both collapse modes carry nothing about x: one cluster for all, or one soft mixture for all
    assert cluster_information(torch.eye(4, dtype=torch.float64)[[2] * 8]).item() == pytest.approx(0, abs=1e-12)
    shared = torch.softmax(torch.randn(4, dtype=torch.float64), -1).expand(8, 4)
    assert cluster_information(shared).item() == pytest.approx(0, abs=1e-12)
    # soft assignments: H(mean) - mean H, computed independently with scipy
    q = torch.softmax(torch.randn(30, 5, generator=torch.Generator().manual_seed(2), dtype=torch.float64), -1)
    expected = stats.entropy(q.mean(0).numpy()) - stats.entropy(q.numpy(), axis=1).mean()
    assert cluster_information(q).item() == pytest.approx(expected, rel=1e-10)
    assert 0 < expected < math.log(5)


@pytest.mark.parametrize("estimator_cls", ESTIMATORS)
def test_cluster_information_subtracts_each_facets_weighted_information(estimator_cls):
    model, x, coeffs, _, plain, rewarded, q = with_option(estimator_cls, {"cluster_information": 2.0}, seed=6)
    assert "cluster_info" not in plain.terms
    info = 0.5 * cluster_information(q[0]).item() + 0.8 * cluster_information(q[1]).item()
    assert info > 1e-4
    assert rewarded.terms["cluster_info"].item() == pytest.approx(info, rel=1e-10)
    assert rewarded.loss.item() == pytest.approx(plain.loss.item() - 2.0 * info, rel=1e-10)
    assert rewarded.terms["elbo"].item() == pytest.approx(plain.terms["elbo"].item(), rel=1e-12)
    g_plain = torch.autograd.grad(plain.loss, model.priors[1].means)[0]
    g_rewarded = torch.autograd.grad(rewarded.loss, model.priors[1].means)[0]
    assert not torch.allclose(g_plain, g_rewarded)
    # with both options the loss carries both terms, each computed once from the same q*
    both = validate_section(estimator_cls.Config, {"cluster_information": 2.0, "facet_independence": 3.0}, "elbo")
    out = run(estimator_cls(both, n_facets=2), model, x, coeffs)
    mi = 0.5 * 0.8 * facet_mutual_information(*q).item()
    assert out.loss.item() == pytest.approx(plain.loss.item() - 2.0 * info + 3.0 * mi, rel=1e-10)


# -- invariance -----------------------------------------------------------------------------
def flip(x):
    return x.flip(-1)


@pytest.mark.parametrize("estimator_cls", ESTIMATORS)
def test_invariance_adds_the_listed_facets_weighted_divergence_under_the_transform(estimator_cls, monkeypatch):
    monkeypatch.setitem(TRANSFORMS, "flip", flip)  # deterministic, so the test can recompute it
    model, x, coeffs, config, plain, out, _ = with_option(
        estimator_cls, {"invariance": 4.0, "invariance_facets": [1], "invariance_transform": "flip"}, seed=7)
    assert "invariance_kl" not in plain.terms
    log_q = optimal_cluster_log_posterior(model.priors[1], model.encoder(x)[1])
    log_q_moved = optimal_cluster_log_posterior(model.priors[1], model.encoder(flip(x))[1])
    kl = (log_q.exp() * (log_q - log_q_moved)).sum(-1).mean()
    assert kl.item() > 1e-3
    assert out.terms["invariance_kl"].item() == pytest.approx(0.8 * kl.item(), rel=1e-10)
    assert out.loss.item() == pytest.approx(plain.loss.item() + 4.0 * 0.8 * kl.item(), rel=1e-10)
    # q*(c|x) is the fixed target: only the transformed images' assignments are pulled
    reference = plain.loss + 4.0 * 0.8 * assignment_divergence(log_q, log_q_moved)
    assert all(torch.allclose(a, b) for a, b in zip(grads(model, out.loss), grads(model, reference))
               if a is not None)
    # a transform that changes nothing costs nothing; a facet not yet faded in is left out
    monkeypatch.setitem(TRANSFORMS, "flip", lambda images: images)
    assert run(estimator_cls(config, n_facets=2), model, x, coeffs).terms["invariance_kl"].item() == pytest.approx(
        0, abs=1e-12)
    monkeypatch.setitem(TRANSFORMS, "flip", flip)
    off = coefficients(beta_z=(1.0, 0.0), beta_c=(1.0, 0.0))
    assert run(estimator_cls(config, n_facets=2), model, x, off).loss.item() == pytest.approx(
        run(estimator_cls(n_facets=2), model, x, off).loss.item(), rel=1e-12)


@pytest.mark.parametrize("estimator_cls", ESTIMATORS)
def test_latent_invariance_adds_the_gaussian_kl_of_the_facets_posteriors(estimator_cls, monkeypatch):
    monkeypatch.setitem(TRANSFORMS, "flip", flip)
    model, x, _, _, plain, out, _ = with_option(estimator_cls, {
        "invariance": 3.0, "invariance_facets": [0, 1], "invariance_transform": "flip", "invariance_of": "latent"},
        seed=8)
    expected = 0.0
    for j, beta in enumerate((0.5, 0.8)):  # torch's KL of the two posteriors, independently computed
        q, q_moved = model.encoder(x)[j], model.encoder(flip(x))[j]
        kl = dist.kl_divergence(dist.Normal(q.mean, q.std), dist.Normal(q_moved.mean, q_moved.std)).sum(-1).mean()
        expected += beta * kl.item()
    assert expected > 1e-3
    assert out.terms["invariance_kl"].item() == pytest.approx(expected, rel=1e-10)
    assert out.loss.item() == pytest.approx(plain.loss.item() + 3.0 * expected, rel=1e-10)
    # the clusters play no part: the priors' parameters get no gradient from the term
    g_plain = torch.autograd.grad(plain.loss, model.priors[0].means)[0]
    g_out = torch.autograd.grad(out.loss, model.priors[0].means)[0]
    assert torch.allclose(g_plain, g_out)


@pytest.mark.parametrize("estimator_cls", ESTIMATORS)
@pytest.mark.parametrize("part", ["latent", "clusters"])
def test_invariance_detach_false_pulls_the_plain_images_posterior_too(estimator_cls, part, monkeypatch):
    monkeypatch.setitem(TRANSFORMS, "flip", flip)
    options = {"invariance": 3.0, "invariance_facets": [1], "invariance_transform": "flip", "invariance_of": part}
    model, x, coeffs, _, plain, fixed, _ = with_option(estimator_cls, options, seed=9)
    free = run(estimator_cls(validate_section(estimator_cls.Config, {**options, "invariance_detach": False}, "elbo"),
                             n_facets=2), model, x, coeffs)
    assert free.loss.item() == pytest.approx(fixed.loss.item(), rel=1e-12)  # same value, other gradient
    # reference: the same KL computed independently, with gradients through both posteriors
    q, q_moved = model.encoder(x)[1], model.encoder(flip(x))[1]
    if part == "latent":
        kl = dist.kl_divergence(dist.Normal(q.mean, q.std), dist.Normal(q_moved.mean, q_moved.std)).sum(-1).mean()
    else:
        log_q = optimal_cluster_log_posterior(model.priors[1], q)
        kl = (log_q.exp() * (log_q - optimal_cluster_log_posterior(model.priors[1], q_moved))).sum(-1).mean()
    expected = grads(model, plain.loss + 3.0 * 0.8 * kl)
    pairs = [(a, b) for a, b in zip(grads(model, free.loss), expected) if a is not None]
    assert pairs and all(torch.allclose(a, b, atol=1e-6) for a, b in pairs)
    differ = [not torch.allclose(a, b, atol=1e-6) for a, b in zip(grads(model, fixed.loss), expected) if a is not None]
    assert any(differ)  # the fixed target does not pull the plain images' posterior


@pytest.mark.parametrize("section, key, words", [
    ({"invariance_of": "pixels"}, "elbo.invariance_of", "latent"),
    ({"invariance": 1.0}, "elbo.invariance_facets", "needs the facets"),
    ({"invariance": 1.0, "invariance_facets": [0, 0]}, "elbo.invariance_facets", "distinct"),
    ({"invariance_transform": "blur"}, "elbo.invariance_transform", "channel_permutation"),
    ({"invariance": -1.0, "invariance_facets": [0]}, "elbo.invariance", "-1"),
    ({"invariance_detach": "maybe"}, "elbo.invariance_detach", "bool"),
])
def test_invariance_options_are_checked(section, key, words):
    for estimator_cls in ESTIMATORS:
        with pytest.raises(ConfigError) as info:
            validate_section(estimator_cls.Config, section, "elbo")
        assert info.value.key == key
        assert words in str(info.value)


def test_invariance_facets_must_exist_in_the_model():
    import mfcf
    from mfcf_ladder.elbos import MFCVAEAnalyticELBO as Analytic

    config = validate_section(Analytic.Config, {"invariance": 1.0, "invariance_facets": [0, 2]}, "elbo")
    with pytest.raises(ConfigError) as info:
        Analytic(config, n_facets=2)
    assert info.value.key == "invariance_facets" and "[2]" in str(info.value) and "0 to 1" in str(info.value)
    root = Path(__file__).resolve().parents[3] / "configs"
    cfg = mfcf.load_config(root / "mnist5k_mfcvae.yaml", ["elbo.invariance=1", "elbo.invariance_facets=[2]"])
    with pytest.raises(ConfigError) as info:
        mfcf.build(cfg)
    assert info.value.key == "elbo.invariance_facets"
