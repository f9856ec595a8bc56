"""Pixel likelihoods p(x | z) from raw decoder output (MFCVAE.md §1.4).

``log_prob(x, params)`` sums over every pixel and channel and keeps all leading dims of
``params``: ``params`` (S, B, *data_shape) against ``x`` (B, *data_shape) gives (S, B).
"""

from __future__ import annotations

import dataclasses
import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from mfcf.api import DataInfo, EmptyConfig, Likelihood
from mfcf.config import positive
from mfcf.errors import ConfigError

_LOG_2PI = math.log(2 * math.pi)
_ACTIVATIONS = ("sigmoid", "identity")


def _sum_pixels(values: Tensor, x: Tensor) -> Tensor:
    """Sum the trailing data dims (those of one example of ``x``, which has a batch dim)."""
    return values.sum(dim=tuple(range(-(x.dim() - 1), 0))) if x.dim() > 1 else values


def _check_unit_range(info: DataInfo | None, what: str, key: str) -> None:
    if info is None:
        return
    low, high = info.value_range
    if low < 0.0 or high > 1.0:
        raise ConfigError(
            f"{what} needs pixel values in [0, 1] but the dataset's value_range is {tuple(info.value_range)}; "
            "rescale the data to [0, 1] or use likelihood: {name: gaussian, mean_activation: identity}",
            key=key)


class BernoulliLikelihood(Likelihood):
    """Bernoulli "likelihood" on decoder logits: log p(x|z) = -BCE_with_logits(logits, x).

    As in the paper (MNIST, §1.4) ``x`` may hold grey values in [0, 1]: the term is then
    x log p + (1 - x) log(1 - p), the negative binary cross-entropy, which is not a normalised
    density for non-binary x. Working on logits keeps it finite for probabilities that round
    to 0 or 1 and needs no clamping (fixes §9 D7, D8). ``mean`` is sigmoid(logits).
    """

    name = "bernoulli"
    Config = EmptyConfig

    def __init__(self, config: EmptyConfig | None = None, *, info: DataInfo | None = None):
        super().__init__(config, info=info)
        _check_unit_range(info, "the Bernoulli likelihood", "likelihood.name")

    def log_prob(self, x: Tensor, params: Tensor) -> Tensor:
        bce = F.binary_cross_entropy_with_logits(params, x.expand_as(params), reduction="none")
        return -_sum_pixels(bce, x)

    def mean(self, params: Tensor) -> Tensor:
        return torch.sigmoid(params)


@dataclasses.dataclass
class GaussianLikelihoodConfig:
    """``likelihood: {name: gaussian, ...}``.

    * ``sigma`` -- the pixel noise std, shared by every pixel (paper: 0.3 SVHN, 0.6 3DShapes;
      the default is SVHN's, matching the default ``mean_activation``);
    * ``learn_sigma`` -- learn one scalar log sigma, starting from ``sigma`` (paper: fixed);
    * ``mean_activation`` -- ``sigmoid`` (paper: SVHN) or ``identity`` (paper: 3DShapes).
    """

    sigma: float = 0.3
    learn_sigma: bool = False
    mean_activation: str = "sigmoid"

    def __post_init__(self) -> None:
        positive(self.sigma, "sigma")
        if self.mean_activation not in _ACTIVATIONS:
            raise ConfigError(
                f"must be one of {', '.join(_ACTIVATIONS)}, got {self.mean_activation!r}", key="mean_activation")


class GaussianLikelihood(Likelihood):
    """Isotropic Gaussian N(x; act(params), sigma^2 I), normalised.

    log p(x|z) = sum over pixels of [-(x - m)^2 / (2 sigma^2) - log sigma - log(2 pi) / 2], so it
    includes the constant -log(2 pi sigma^2) / 2 per pixel (+0.2850 for sigma = 0.3, -0.4081 for
    sigma = 0.6; §1.4). ``mean`` is act(params), clamped to the data's value range.
    """

    name = "gaussian"
    Config = GaussianLikelihoodConfig

    def __init__(self, config: GaussianLikelihoodConfig | None = None, *, info: DataInfo | None = None):
        super().__init__(config, info=info)
        cfg = self.config
        self.sigmoid_mean = cfg.mean_activation == "sigmoid"
        if self.sigmoid_mean:
            _check_unit_range(info, "mean_activation: sigmoid", "likelihood.mean_activation")
        log_sigma = torch.tensor(math.log(cfg.sigma))
        if cfg.learn_sigma:
            self.log_sigma = nn.Parameter(log_sigma)
        else:
            self.register_buffer("log_sigma", log_sigma, persistent=False)

    def log_prob(self, x: Tensor, params: Tensor) -> Tensor:
        z = (x - self._activate(params)) * torch.exp(-self.log_sigma)
        return _sum_pixels(-0.5 * z.square() - self.log_sigma - 0.5 * _LOG_2PI, x)

    def mean(self, params: Tensor) -> Tensor:
        mean = self._activate(params)
        if self.info is not None and not self.sigmoid_mean:
            mean = mean.clamp(*self.info.value_range)
        return mean

    def _activate(self, params: Tensor) -> Tensor:
        return torch.sigmoid(params) if self.sigmoid_mean else params
