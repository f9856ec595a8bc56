"""Network building blocks for plugins: activations by name and the fully connected stack.

* :data:`ACTIVATIONS` -- activation name -> module factory (leaky slope 0.01 and ELU alpha 1,
  as in the official MFCVAE code);
* :func:`check_activation` -- fail at config validation on an unknown name;
* :func:`mlp` -- ``Linear -> activation [-> BatchNorm1d]`` per width.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence

from torch import nn

from .errors import ConfigError

ACTIVATIONS: dict[str, Callable[[], nn.Module]] = {
    "relu": nn.ReLU,
    "leaky_relu": functools.partial(nn.LeakyReLU, 0.01),
    "elu": nn.ELU,
    "tanh": nn.Tanh,
}


def check_activation(name: str, key: str = "activation") -> None:
    """Raise :class:`ConfigError` naming ``key`` unless ``name`` is in :data:`ACTIVATIONS`."""
    if name not in ACTIVATIONS:
        raise ConfigError(f"unknown activation {name!r}; choose one of {', '.join(ACTIVATIONS)}", key=key)


def mlp(in_dim: int, widths: Sequence[int], activation: str, batch_norm: bool) -> nn.Sequential:
    """``Linear -> activation [-> BatchNorm1d]`` per width; the activation follows every Linear,
    the last one included. An empty ``widths`` gives the identity."""
    layers: list[nn.Module] = []
    for width in widths:
        layers += [nn.Linear(in_dim, width), ACTIVATIONS[activation]()]
        if batch_norm:
            layers.append(nn.BatchNorm1d(width))
        in_dim = width
    return nn.Sequential(*layers)
