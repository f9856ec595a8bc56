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


def full_precision(t: Tensor) -> Tensor:
    """``t`` in float32 when it is in a lower precision (bf16 / fp16 autocast output), else ``t``."""
    return t.float() if t.dtype in (torch.bfloat16, torch.float16) else t


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

    def full_precision(self) -> GaussianPosterior:
        """This posterior with :func:`full_precision` tensors (itself outside autocast)."""
        return GaussianPosterior(full_precision(self.mean), full_precision(self.logvar))

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

    def on_device(self, device: torch.device) -> Coefficients:
        """The same coefficients as 0-dim float32 tensors on ``device``, made by one
        asynchronous copy from pinned memory (no synchronisation). Compiled losses take these:
        a changing tensor value is data, where a changing float would be a new constant and
        cost torch.compile a recompilation."""
        names = [field.name for field in dataclasses.fields(self)]
        host = torch.tensor([v for name in names for v in getattr(self, name)], dtype=torch.float32)
        if device.type == "cuda":
            host = host.pin_memory()
        values = host.to(device, non_blocking=True).unbind()
        n = len(self.alpha_enc)
        return Coefficients(*(tuple(values[i * n:(i + 1) * n]) for i in range(len(names))))

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


def as_coefficients(values: Sequence[float | Tensor] | None, n: int) -> tuple[float | Tensor, ...]:
    """``values`` as a tuple of n coefficients -- floats, or the 0-dim tensors of
    :meth:`Coefficients.on_device` as they are; ``None`` means all ones."""
    return (1.0,) * n if values is None else tuple(v if isinstance(v, Tensor) else float(v) for v in values)


def scaled(t: Tensor, a: float | Tensor) -> Tensor:
    """``a * t``, skipping the multiplication when ``a`` is the float 1 (the usual case)."""
    return t if isinstance(a, float) and a == 1.0 else a * t
