"""Small value types shared by the interfaces."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

import torch
from torch import Tensor


@dataclasses.dataclass(frozen=True)
class FacetSpec:
    """One facet of a multi-facet model: a latent ``z_j`` with a mixture prior of ``n_clusters``.

    ``index`` 0 is the lowest rung of a ladder (closest to the pixels); ``J - 1`` the deepest.
    ``prior`` is the facet's prior config section (``{name: mog, ...}``) or ``None`` for models
    that have no prior (k-means on pixels).
    """

    index: int
    latent_dim: int
    n_clusters: int
    prior: Mapping[str, Any] | None = None


_LOG_2PI = math.log(2 * math.pi)


class GaussianPosterior(NamedTuple):
    """A diagonal Gaussian ``q(z_j | x) = N(mean, diag(exp(logvar)))`` for a batch, each (B, D)."""

    mean: Tensor
    logvar: Tensor

    @property
    def var(self) -> Tensor:
        return self.logvar.exp()

    @property
    def std(self) -> Tensor:
        return (0.5 * self.logvar).exp()

    def rsample(self, n_samples: int | None = None) -> Tensor:
        """Reparameterised draw(s): (B, D), or (S, B, D) when ``n_samples`` is given."""
        shape = self.mean.shape if n_samples is None else (n_samples, *self.mean.shape)
        eps = torch.randn(shape, dtype=self.mean.dtype, device=self.mean.device)
        return self.mean + self.std * eps

    def entropy(self) -> Tensor:
        """Closed-form entropy, summed over dims: (B,)."""
        return 0.5 * (self.logvar + 1.0 + _LOG_2PI).sum(-1)

    def log_prob(self, z: Tensor) -> Tensor:
        """log q(z | x), summed over dims; ``z`` broadcasts against (B, D)."""
        return -0.5 * (
            _LOG_2PI + self.logvar + (z - self.mean) ** 2 / self.var
        ).sum(-1)


@dataclasses.dataclass(frozen=True)
class Coefficients:
    """Per-facet coefficients a schedule returns for one (epoch, step).

    ``alpha_enc[j]`` multiplies facet j's encoder rung input, ``alpha_dec[j]`` its decoder rung
    output, ``beta_z[j]`` / ``beta_c[j]`` its KL terms over z and c. All are plain floats so
    passing them into ``forward`` never synchronises a device.
    """

    alpha_enc: tuple[float, ...]
    alpha_dec: tuple[float, ...]
    beta_z: tuple[float, ...]
    beta_c: tuple[float, ...]

    @classmethod
    def ones(cls, n_facets: int) -> Coefficients:
        one = (1.0,) * n_facets
        return cls(one, one, one, one)

    def as_dict(self) -> dict[str, float]:
        """Flat ``{'alpha_dec/0': 1.0, ...}`` view for logging."""
        return {
            f"{field.name}/{j}": value
            for field in dataclasses.fields(self)
            for j, value in enumerate(getattr(self, field.name))
        }


@dataclasses.dataclass
class LossOutput:
    """What a training objective returns.

    ``loss`` is the scalar to minimise (differentiable). ``terms`` are detached scalar tensors
    for logging (e.g. ``{'recon': ..., 'kl_z/0': ...}``); they stay on the device so logging
    never forces a host synchronisation per step.
    """

    loss: Tensor
    terms: dict[str, Tensor] = dataclasses.field(default_factory=dict)


def as_floats(values: Sequence[float] | None, n: int) -> tuple[float, ...]:
    """``values`` as a tuple of n floats; ``None`` means all ones."""
    return (1.0,) * n if values is None else tuple(float(v) for v in values)
