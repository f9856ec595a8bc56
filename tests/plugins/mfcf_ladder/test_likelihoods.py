"""Pixel likelihoods (MFCVAE.md §1.4, §9 D7/D8, §10 "Objective")."""

from __future__ import annotations

import math

import pytest
import torch
from torch import distributions as dist

from mfcf.api import DataInfo
from mfcf.config import validate_section
from mfcf.errors import ConfigError
from mfcf_ladder.likelihoods import BernoulliLikelihood, GaussianLikelihood

SHAPE = (3, 4, 4)
INFO = DataInfo(shape=SHAPE, factors={"label": 10})


pytestmark = pytest.mark.usefixtures("float64")


def gaussian(**options) -> GaussianLikelihood:
    return GaussianLikelihood(GaussianLikelihood.Config(**options), info=INFO)


# -- Bernoulli ----------------------------------------------------------------------------
def test_bernoulli_is_negative_bce_summed_over_pixels_for_grey_values():
    torch.manual_seed(0)
    x = torch.rand(5, *SHAPE)  # grey values, not binary (MNIST is not binarised)
    logits = 3 * torch.randn(5, *SHAPE)
    p = torch.sigmoid(logits)
    expected = (x * p.log() + (1 - x) * (1 - p).log()).sum((1, 2, 3))
    got = BernoulliLikelihood(info=INFO).log_prob(x, logits)
    assert got.shape == (5,)
    torch.testing.assert_close(got, expected, rtol=1e-10, atol=1e-10)


def test_bernoulli_equals_the_bernoulli_distribution_on_binary_data():
    torch.manual_seed(1)
    x = (torch.rand(4, *SHAPE) > 0.5).double()
    logits = torch.randn(4, *SHAPE)
    expected = dist.Bernoulli(logits=logits).log_prob(x).sum((1, 2, 3))
    torch.testing.assert_close(BernoulliLikelihood(info=INFO).log_prob(x, logits), expected)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_bernoulli_is_finite_at_saturated_probabilities(dtype):
    # probabilities that round to exactly 0 or 1 (logits +-1e4, sigmoid(+-40) in float32)
    logits = torch.tensor([[1e4, -1e4, 40.0, -40.0]], dtype=dtype)
    likelihood = BernoulliLikelihood(info=DataInfo(shape=(4,), factors={}))
    agree = torch.tensor([[1.0, 0.0, 1.0, 0.0]], dtype=dtype)
    grey = torch.tensor([[0.5, 0.5, 0.3, 0.7]], dtype=dtype)
    logits.requires_grad_(True)
    for x in (agree, grey, 1 - agree):
        value = likelihood.log_prob(x, logits)
        assert torch.isfinite(value).all()
        (grad,) = torch.autograd.grad(value.sum(), logits)
        assert torch.isfinite(grad).all()
    assert likelihood.log_prob(agree, logits).item() == pytest.approx(0.0, abs=1e-10)
    assert likelihood.log_prob(1 - agree, logits).item() < -1e4  # confidently wrong: very unlikely


def test_bernoulli_mean_and_leading_sample_dims():
    torch.manual_seed(2)
    likelihood = BernoulliLikelihood(info=INFO)
    x = torch.rand(5, *SHAPE)
    logits = torch.randn(3, 5, *SHAPE)
    got = likelihood.log_prob(x, logits)
    assert got.shape == (3, 5)
    torch.testing.assert_close(got[1], likelihood.log_prob(x, logits[1]))
    torch.testing.assert_close(likelihood.mean(logits), torch.sigmoid(logits))


def test_bernoulli_rejects_data_outside_the_unit_interval():
    with pytest.raises(ConfigError, match=r"\[0, 1\]"):
        BernoulliLikelihood(info=DataInfo(shape=SHAPE, factors={}, value_range=(-1.0, 1.0)))
    BernoulliLikelihood(info=DataInfo(shape=SHAPE, factors={}, value_range=(0.0, 0.5)))  # inside: fine


# -- Gaussian -----------------------------------------------------------------------------
@pytest.mark.parametrize("sigma, per_pixel", [(0.3, 0.2850), (0.6, -0.4081)])
def test_gaussian_includes_the_normalising_constant_per_pixel(sigma, per_pixel):
    likelihood = gaussian(sigma=sigma, mean_activation="identity")
    x = torch.rand(2, *SHAPE)
    at_mean = likelihood.log_prob(x, x.clone())  # residual 0: only -log(2 pi sigma^2) / 2 remains
    n_pixels = math.prod(SHAPE)
    torch.testing.assert_close(at_mean, torch.full((2,), -0.5 * math.log(2 * math.pi * sigma ** 2) * n_pixels))
    assert at_mean[0].item() / n_pixels == pytest.approx(per_pixel, abs=5e-5)


@pytest.mark.parametrize("activation", ["sigmoid", "identity"])
def test_gaussian_matches_normal_distribution(activation):
    torch.manual_seed(3)
    likelihood = gaussian(sigma=0.6, mean_activation=activation)
    x = torch.rand(4, *SHAPE)
    params = torch.randn(2, 4, *SHAPE)
    mean = torch.sigmoid(params) if activation == "sigmoid" else params
    expected = dist.Normal(mean, 0.6).log_prob(x).sum((-3, -2, -1))
    got = likelihood.log_prob(x, params)
    assert got.shape == (2, 4)
    torch.testing.assert_close(got, expected, rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(likelihood.mean(params), mean.clamp(0, 1))


def test_gaussian_sigma_is_fixed_unless_learned():
    fixed = gaussian(sigma=0.3)
    assert list(fixed.parameters()) == []
    learned = gaussian(sigma=0.3, learn_sigma=True)
    (log_sigma,) = learned.parameters()
    assert log_sigma.item() == pytest.approx(math.log(0.3), abs=1e-15)
    torch.manual_seed(4)
    x, params = torch.rand(3, *SHAPE), torch.randn(3, *SHAPE)
    torch.testing.assert_close(learned.log_prob(x, params), fixed.log_prob(x, params))
    learned.log_prob(x, params).sum().backward()
    assert log_sigma.grad.abs().item() > 0


def test_gaussian_config_validation():
    with pytest.raises(ConfigError) as info:
        validate_section(GaussianLikelihood.Config, {"sigma": 0.0}, "likelihood")
    assert info.value.key == "likelihood.sigma"
    with pytest.raises(ConfigError) as info:
        validate_section(GaussianLikelihood.Config, {"mean_activation": "tanh"}, "likelihood")
    assert info.value.key == "likelihood.mean_activation"
    cfg = validate_section(GaussianLikelihood.Config, {"sigma": 0.6, "mean_activation": "identity"}, "likelihood")
    assert (cfg.sigma, cfg.mean_activation, cfg.learn_sigma) == (0.6, "identity", False)
    wide = DataInfo(shape=SHAPE, factors={}, value_range=(-1.0, 1.0))
    with pytest.raises(ConfigError, match="sigmoid"):
        GaussianLikelihood(GaussianLikelihood.Config(mean_activation="sigmoid"), info=wide)
    GaussianLikelihood(GaussianLikelihood.Config(mean_activation="identity"), info=wide)


def test_names():
    assert (BernoulliLikelihood.name, GaussianLikelihood.name) == ("bernoulli", "gaussian")
