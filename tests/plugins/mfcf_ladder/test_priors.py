"""MoG facet prior: parameterisation, densities, closed forms and sampler (MFCVAE.md §1.2, §1.3,
§2.2, §3.5 items 1-2, §7.4, §10 "Model and priors")."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy import stats
from torch import distributions as dist

from mfcf.api import GaussianPosterior
from mfcf.config import validate_section
from mfcf.errors import ConfigError
from mfcf_ladder.priors import MoGPrior

COVARIANCES = ("diag", "full")


pytestmark = pytest.mark.usefixtures("float64")


def make_prior(covariance="diag", D=3, K=4, **options) -> MoGPrior:
    return MoGPrior(MoGPrior.Config(covariance=covariance, **options), latent_dim=D, n_clusters=K)


def random_prior(covariance, D, K, seed, spread=2.0, **options) -> MoGPrior:
    """A prior with random means, weights, variances (0.2..1.5) and correlations."""
    g = torch.Generator().manual_seed(seed)
    prior = make_prior(covariance, D, K, **options)
    prior.initialise(spread * torch.randn(K, D, generator=g), 0.2 + 1.3 * torch.rand(K, D, generator=g),
                     torch.rand(K, generator=g) + 0.1)
    if covariance == "full":
        with torch.no_grad():
            prior.raw_lower.copy_(0.5 * torch.randn(prior.raw_lower.shape, generator=g))
    return prior


def random_posterior(B, D, seed, spread=2.0) -> GaussianPosterior:
    g = torch.Generator().manual_seed(seed)
    return GaussianPosterior(spread * torch.randn(B, D, generator=g), 0.6 * torch.randn(B, D, generator=g) - 0.5)


def torch_components(prior: MoGPrior) -> dist.MultivariateNormal:
    """The same K components as an independent torch.distributions reference."""
    return dist.MultivariateNormal(prior.means, scale_tril=prior.scale_tril())


# -- config -------------------------------------------------------------------------------
@pytest.mark.parametrize("bad, key", [
    ({"covariance": "spherical"}, "covariance"),
    ({"softplus_beta": 0.0}, "softplus_beta"),
    ({"min_variance": -1e-3}, "min_variance"),
    ({"init_variance": 1e-7}, "init_variance"),
    ({"init_mean_std": -1.0}, "init_mean_std"),
])
def test_config_rejects_bad_values_naming_the_key(bad, key):
    with pytest.raises(ConfigError) as info:
        validate_section(MoGPrior.Config, bad, "facets[0].prior")
    assert info.value.key == f"facets[0].prior.{key}"


def test_config_validates_through_omegaconf():
    cfg = validate_section(MoGPrior.Config, {"covariance": "full", "learn_weights": False}, "facets[0].prior")
    assert isinstance(cfg, MoGPrior.Config) and cfg.covariance == "full" and cfg.learn_weights is False
    assert MoGPrior.name == "mog"


# -- parameterisation ---------------------------------------------------------------------
@pytest.mark.parametrize("min_variance", [0.0, 1e-6])
@pytest.mark.parametrize("covariance", COVARIANCES)
def test_initial_covariance_is_exactly_0_01_identity(covariance, min_variance):
    prior = make_prior(covariance, D=4, K=3, min_variance=min_variance)
    torch.testing.assert_close(prior.variances(), torch.full((3, 4), 0.01), rtol=0, atol=1e-12)
    torch.testing.assert_close(prior.covariances(), 0.01 * torch.eye(4).expand(3, 4, 4), rtol=0, atol=1e-12)
    if min_variance == 0.0:  # the official raw values (§5.3)
        raw = prior.raw_diag if covariance == "full" else prior.raw_var
        expected = 0.054132 if covariance == "full" else -0.225217
        torch.testing.assert_close(raw, torch.full((3, 4), expected), rtol=0, atol=1e-6)


def test_diag_variance_is_softplus_beta_10_plus_floor():
    prior = make_prior("diag", D=2, K=2, min_variance=1e-6)
    with torch.no_grad():
        prior.raw_var.copy_(torch.tensor([[-5.0, -0.3], [0.0, 3.0]]))
    expected = torch.log1p(torch.exp(10 * prior.raw_var.detach())) / 10 + 1e-6
    torch.testing.assert_close(prior.variances(), expected, rtol=1e-12, atol=0)
    assert prior.variances().min() >= 1e-6  # the floor keeps log-densities finite


@pytest.mark.parametrize("D", [1, 2, 5])
def test_full_covariance_stores_only_the_lower_triangle(D):
    K = 3
    prior = random_prior("full", D, K, seed=D)
    shapes = {name: tuple(p.shape) for name, p in prior.named_parameters()}
    assert shapes == {"logits": (K,), "means": (K, D), "raw_diag": (K, D), "raw_lower": (K, D * (D - 1) // 2)}
    assert sum(p.numel() for p in prior.parameters()) == K + K * D + K * D * (D + 1) // 2
    L = prior.scale_tril()
    assert torch.equal(L.triu(1), torch.zeros_like(L))
    assert (torch.diagonal(L, dim1=-2, dim2=-1) > 0).all()
    rows, cols = torch.tril_indices(D, D, offset=-1)
    torch.testing.assert_close(L[:, rows, cols], prior.raw_lower.detach(), rtol=0, atol=0)
    if D > 1:  # the strict lower triangle is free: it gets gradient from the density
        prior.component_log_prob(torch.randn(5, D)).sum().backward()
        assert prior.raw_lower.grad.abs().sum() > 0


def test_weights_start_uniform_and_fixed_weights_are_not_parameters():
    learned, fixed = make_prior(K=5, learn_weights=True), make_prior(K=5, learn_weights=False)
    for prior in (learned, fixed):
        torch.testing.assert_close(prior.log_weights().exp(), torch.full((5,), 0.2), rtol=0, atol=1e-15)
    assert "logits" in dict(learned.named_parameters())
    assert "logits" not in dict(fixed.named_parameters())
    assert "logits" in dict(fixed.named_buffers()) and "logits" in fixed.state_dict()
    optimiser = torch.optim.Adam(fixed.parameters())
    assert all(p is not fixed.logits for group in optimiser.param_groups for p in group["params"])
    # per-facet choice: any subset of facets can fix pi (§9 D5)
    facets = torch.nn.ModuleList([make_prior(learn_weights=flag) for flag in (False, True, False)])
    assert [len(list(p.parameters())) for p in facets] == [2, 3, 2]
    assert all(p.log_weights().shape == (4,) for p in facets)


# -- densities ----------------------------------------------------------------------------
@pytest.mark.parametrize("D", [1, 3, 8])
@pytest.mark.parametrize("covariance", COVARIANCES)
def test_component_log_prob_matches_torch_distributions(covariance, D):
    prior = random_prior(covariance, D, K=5, seed=10 + D)
    z = torch.randn(2, 7, D)  # leading sample and batch dims
    expected = torch_components(prior).log_prob(z.unsqueeze(-2))
    got = prior.component_log_prob(z)
    assert got.shape == (2, 7, 5)
    torch.testing.assert_close(got, expected, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("covariance", COVARIANCES)
def test_responsibilities_match_brute_force_bayes(covariance):
    D, K = 3, 4
    prior = random_prior(covariance, D, K, seed=3, spread=1.0)
    z = torch.randn(6, D)
    pi = prior.log_weights().exp().detach().numpy()
    covs = prior.covariances().detach().numpy()
    means = prior.means.detach().numpy()
    joint = np.stack([pi[c] * stats.multivariate_normal(means[c], covs[c]).pdf(z.numpy()) for c in range(K)], -1)
    expected = joint / joint.sum(-1, keepdims=True)
    gamma = prior.responsibilities(z).detach()
    np.testing.assert_allclose(gamma.numpy(), expected, rtol=1e-9, atol=1e-12)
    torch.testing.assert_close(gamma.sum(-1), torch.ones(6))
    assert torch.equal(gamma.argmax(-1), torch.from_numpy(expected.argmax(-1)))
    np.testing.assert_allclose(prior.marginal_log_prob(z).detach().numpy(), np.log(joint.sum(-1)), rtol=1e-10)


def test_expected_log_prob_hand_value():
    # D = 1, q = N(0, 1), p(z|c) = N(0, 1): -(log 2 pi + 1) / 2 (§3.5.1)
    prior = make_prior("diag", D=1, K=1, min_variance=0.0)
    prior.initialise(torch.zeros(1, 1), torch.ones(1, 1))
    q = GaussianPosterior(torch.zeros(1, 1), torch.zeros(1, 1))
    value = prior.expected_component_log_prob(q).item()
    assert value == pytest.approx(-0.5 * (math.log(2 * math.pi) + 1), abs=1e-14)
    assert value == pytest.approx(-1.418939, abs=5e-7)


def mc_mean_and_se(values: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    return values.mean(0), values.std(0) / math.sqrt(values.shape[0])


@pytest.mark.parametrize("D", range(1, 9))
@pytest.mark.parametrize("covariance", COVARIANCES)
def test_expected_log_prob_and_kl_match_monte_carlo(covariance, D):
    torch.manual_seed(100 + D)
    prior = random_prior(covariance, D, K=3, seed=D)
    q = random_posterior(B=2, D=D, seed=50 + D)
    with torch.no_grad():
        z = q.rsample(200_000)  # (N, B, D)
        log_n = prior.component_log_prob(z)  # (N, B, K)
        closed = prior.expected_component_log_prob(q)
        mean, se = mc_mean_and_se(log_n)
        assert ((closed - mean).abs() <= 4 * se).all(), (closed, mean, se)
        # KL(q || N_c) = -H[q] - E_q log N_c (§3.5.2)
        entropy = 0.5 * (math.log(2 * math.pi) + 1 + q.logvar).sum(-1, keepdim=True)
        kl_mc, kl_se = mc_mean_and_se(q.log_prob(z).unsqueeze(-1) - log_n)
        assert ((-entropy - closed - kl_mc).abs() <= 4 * kl_se).all()
        reference = dist.kl_divergence(
            dist.MultivariateNormal(q.mean.unsqueeze(-2), torch.diag_embed(q.var).unsqueeze(-3)),
            torch_components(prior))
        torch.testing.assert_close(-entropy - closed, reference, rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("covariance", COVARIANCES)
def test_kl_is_zero_when_posterior_equals_component(covariance):
    prior = make_prior(covariance, D=3, K=2, min_variance=0.0)
    var = torch.tensor([[0.5, 1.0, 2.0], [0.1, 0.2, 0.3]])
    prior.initialise(torch.randn(2, 3), var)
    q = GaussianPosterior(prior.means.detach()[:1], var[:1].log())
    entropy = 0.5 * (math.log(2 * math.pi) + 1 + q.logvar).sum(-1)
    kl = -entropy - prior.expected_component_log_prob(q)[:, 0]
    assert kl.abs().item() < 1e-12
    assert (-entropy - prior.expected_component_log_prob(q)[:, 1]).item() > 0.1


@pytest.mark.parametrize("covariance", COVARIANCES)
def test_gradients_reach_every_prior_parameter(covariance):
    prior = random_prior(covariance, D=3, K=4, seed=0, spread=1.0)
    q = random_posterior(B=5, D=3, seed=1, spread=1.0)
    (prior.expected_component_log_prob(q).sum() + prior.marginal_log_prob(q.rsample()).sum()).backward()
    for name, p in prior.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name


# -- sampler ------------------------------------------------------------------------------
@pytest.mark.parametrize("covariance", COVARIANCES)
def test_tempered_sample_std_is_temperature_times_std(covariance):
    D, K, tau, N = 3, 4, 0.3, 200_000
    prior = random_prior(covariance, D, K, seed=7)
    clusters = torch.full((N,), 2, dtype=torch.long)
    z = prior.sample(clusters, temperature=tau, generator=torch.Generator().manual_seed(0)).detach()
    cov = (tau ** 2) * prior.covariances()[2].detach()
    emp_mean, emp_cov = z.mean(0), torch.cov(z.T)
    mean_se = cov.diagonal().sqrt() / math.sqrt(N)
    assert ((emp_mean - prior.means[2].detach()).abs() <= 4 * mean_se).all()
    cov_se = ((cov.diagonal()[:, None] * cov.diagonal()[None, :] + cov ** 2) / N).sqrt()
    assert ((emp_cov - cov).abs() <= 4 * cov_se).all(), (emp_cov, cov)


def test_sampler_draws_from_the_requested_clusters():
    prior = make_prior("full", D=2, K=3)
    prior.initialise(torch.tensor([[-10.0, 0.0], [0.0, 10.0], [10.0, 0.0]]))
    clusters = torch.tensor([2, 0, 1, 1])
    z = prior.sample(clusters, generator=torch.Generator().manual_seed(1))
    assert z.shape == (4, 2)
    torch.testing.assert_close(z, prior.means[clusters].detach(), rtol=0, atol=1.0)


def test_legacy_switch_reproduces_variance_as_std_for_diag_only():
    tau = 0.7
    for covariance in COVARIANCES:
        modern = random_prior(covariance, 3, 4, seed=2)
        legacy = random_prior(covariance, 3, 4, seed=2, legacy_variance_as_std=True)
        clusters = torch.tensor([0, 1, 3, 3, 2])
        z_modern = modern.sample(clusters, temperature=tau, generator=torch.Generator().manual_seed(5))
        z_legacy = legacy.sample(clusters, temperature=tau, generator=torch.Generator().manual_seed(5))
        mu = modern.means[clusters]
        if covariance == "diag":  # official: std = tau * s^2 (§9 D1) instead of tau * s
            s = modern.variances()[clusters].sqrt()
            torch.testing.assert_close(z_legacy - mu, (z_modern - mu) * s, rtol=1e-12, atol=1e-14)
            assert not torch.allclose(z_legacy, z_modern)
        else:  # the official full branch already scaled L by tau
            torch.testing.assert_close(z_legacy, z_modern, rtol=0, atol=0)


def test_sampler_is_reproducible_given_a_generator():
    prior = make_prior("full", D=3, K=4)
    a = prior.sample(torch.arange(4), generator=torch.Generator().manual_seed(3))
    b = prior.sample(torch.arange(4), generator=torch.Generator().manual_seed(3))
    assert torch.equal(a, b)


# -- initialisation from a fitted GMM -----------------------------------------------------
@pytest.mark.parametrize("covariance", COVARIANCES)
def test_initialise_from_gmm(covariance):
    D, K = 3, 4
    prior = make_prior(covariance, D, K, min_variance=1e-6)
    before = prior.covariances().detach().clone()
    means = torch.randn(K, D)
    prior.initialise(means)  # means only: Sigma and pi untouched (§5.3)
    assert torch.equal(prior.means.detach(), means)
    assert torch.equal(prior.covariances().detach(), before)
    torch.testing.assert_close(prior.log_weights().exp(), torch.full((K,), 0.25))

    variances = torch.rand(K, D) + 0.05
    weights = torch.tensor([0.1, 0.2, 0.3, 0.4])
    prior.initialise(means, variances, weights)
    torch.testing.assert_close(prior.covariances(), torch.diag_embed(variances), rtol=1e-12, atol=1e-14)
    torch.testing.assert_close(prior.log_weights().exp(), weights, rtol=1e-12, atol=0)
    if covariance == "full":
        torch.testing.assert_close(torch.diagonal(prior.scale_tril(), dim1=-2, dim2=-1), variances.sqrt())

    prior.initialise(means, torch.full((K, D), 1e-6))  # at the floor: finite, just above it
    assert torch.isfinite(prior.component_log_prob(torch.randn(2, D))).all()
    with pytest.raises(ValueError, match="shape"):
        prior.initialise(torch.zeros(D, K + 1))


@pytest.mark.parametrize("covariance", COVARIANCES)
def test_initialise_from_full_covariances(covariance):
    """(K, D, D) covariances: a full prior takes them exactly, a diagonal prior their diagonals."""
    D, K = 3, 4
    A = torch.randn(K, D, D, generator=torch.Generator().manual_seed(0))
    covariances = A @ A.transpose(-1, -2) + 0.1 * torch.eye(D)
    prior = make_prior(covariance, D, K, min_variance=1e-6)
    prior.initialise(torch.zeros(K, D), covariances)
    expected = covariances if covariance == "full" else torch.diag_embed(torch.diagonal(covariances, dim1=-2, dim2=-1))
    torch.testing.assert_close(prior.covariances(), expected, rtol=1e-10, atol=1e-12)
    with pytest.raises(ValueError, match="covariances"):
        prior.initialise(torch.zeros(K, D), torch.zeros(K, D + 1, D + 1))


def test_initialise_sets_fixed_weights_too():
    prior = make_prior(K=3, learn_weights=False)
    prior.initialise(torch.zeros(3, 3), weights=torch.tensor([0.5, 0.25, 0.25]))
    torch.testing.assert_close(prior.log_weights().exp(), torch.tensor([0.5, 0.25, 0.25]))
    assert "logits" not in dict(prior.named_parameters())
