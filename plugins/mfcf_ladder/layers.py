"""Building blocks shared by the ladder networks (MFCVAE.md §4.1).

* :func:`mfcf.nn.mlp` (core) -- ``Linear -> act -> [BatchNorm1d]`` repeated; the activation
  follows every Linear, including the last one of the block (the official dropout is always
  p = 0 and omitted).
* :func:`conv_block` -- ``Conv2d | ConvTranspose2d (padding 1) -> act -> BatchNorm2d``:
  activation *before* batch norm, optionally weight-normalised.
* :func:`read_rungs` -- the bottom-up pass of a ladder encoder, one posterior per rung.
* :func:`add_scaled` -- ``b + scale * r`` for the decoder's rung merges.
* :func:`check_per_facet` -- fail early when a per-facet list does not have one entry per facet.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn
from torch.nn.utils.parametrizations import weight_norm as _weight_norm

from mfcf.api import GaussianPosterior, scaled
from mfcf.errors import ConfigError
from mfcf.nn import ACTIVATIONS


def read_rungs(h: Tensor, backbone: Sequence[nn.Module], rungs: Sequence[nn.Module], heads: Sequence[nn.Module],
               alpha: Sequence[float | Tensor]) -> list[GaussianPosterior]:
    """The bottom-up pass of a ladder encoder from its stem's output ``h``:
    ``h_j = backbone_j(h_{j-1})`` and q(z_j | x) from ``head_j(rung_j(alpha_j * h_j))``, whose
    output is split into (mean, log-variance)."""
    out = []
    for block, rung, head, a in zip(backbone, rungs, heads, alpha):
        h = block(h)
        mean, logvar = head(rung(scaled(h, a))).chunk(2, dim=-1)
        out.append(GaussianPosterior(mean, logvar))
    return out


def add_scaled(b: Tensor, r: Tensor, scale: float | Tensor) -> Tensor:
    """``b + scale * r``: one fused kernel (``torch.add(..., alpha=scale)``) for a float scale
    in eager mode, written out for a tensor scale and under torch.compile."""
    if isinstance(scale, Tensor) or torch.compiler.is_compiling():
        return b + scale * r
    return torch.add(b, r, alpha=scale)


def check_per_facet(config: object, fields: Sequence[str], n_facets: int) -> None:
    """Raise :class:`ConfigError` unless every list ``config.<field>`` has ``n_facets`` entries."""
    for field in fields:
        values = getattr(config, field)
        if len(values) != n_facets:
            raise ConfigError(
                f"needs one entry per facet: got {len(values)} ({list(values)}) for {n_facets} facet(s); "
                f"give a list of length {n_facets}",
                key=field,
            )


def check_entries(values: Sequence[int], key: str, *, allow_zero: bool = False) -> None:
    """Every entry > 0 (>= 0 with ``allow_zero``), else :class:`ConfigError` naming ``key``."""
    for v in values:
        if v < 0 or (v == 0 and not allow_zero):
            bound = ">= 0" if allow_zero else "> 0"
            raise ConfigError(f"every entry must be {bound}, got {list(values)}", key=key)


def conv_block(
    in_channels: int,
    out_channels: int,
    kernel_size: int,
    stride: int,
    activation: str | None,
    *,
    transposed: bool = False,
    weight_norm: bool = False,
    batch_norm: bool = True,
) -> nn.Sequential:
    """``Conv(padding=1) -> [act] -> [BN2d]``, the conv block of §4.1.

    Weight normalisation uses one gain per *output* channel (``dim=0`` for ``Conv2d``,
    ``dim=1`` for ``ConvTranspose2d`` whose weight is (in, out, k, k)).
    """
    conv_cls = nn.ConvTranspose2d if transposed else nn.Conv2d
    conv = conv_cls(in_channels, out_channels, kernel_size, stride=stride, padding=1)
    if weight_norm:
        conv = _weight_norm(conv, dim=1 if transposed else 0)
    layers: list[nn.Module] = [conv]
    if activation is not None:
        layers.append(ACTIVATIONS[activation]())
    if batch_norm:
        layers.append(nn.BatchNorm2d(out_channels))
    return nn.Sequential(*layers)


def conv_out(size: int, kernel_size: int, stride: int, *, transposed: bool = False) -> int:
    """Spatial output size of a padding-1 (transposed) convolution."""
    if transposed:
        return (size - 1) * stride - 2 + kernel_size
    return (size + 2 - kernel_size) // stride + 1


def n_params(module: nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in module.parameters() if p.requires_grad)
