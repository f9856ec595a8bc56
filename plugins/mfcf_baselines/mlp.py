"""Plain fully-connected encoder and decoder with one width per layer.

The ladder networks of MFCVAE give every layer of a facet's segment the same width, so they
cannot express the stacked-autoencoder shape that DEC (Xie et al., 2016), IDEC (Guo et al.,
2017) and VaDE (Jiang et al., 2017) use on 28x28 images: d-500-500-2000-10 with the mirror
image 10-2000-500-500-d as decoder. These two can, and are the defaults:

===========  ================================================================
encoder      d -> 500 -> 500 -> 2000 -> one linear head per facet (mean, log-variance)
decoder      concat(alpha_0 z_0, ..., alpha_{J-1} z_{J-1}) -> 2000 -> 500 -> 500 -> d
===========  ================================================================

Every hidden layer is ``Linear -> activation [-> BatchNorm1d]``; the heads and the last decoder
layer are linear (the likelihood owns the output activation). All facets read the same
features, so any number of facets works.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence

import torch
from torch import Tensor, nn

from mfcf.api import Decoder, Encoder, FacetSpec, GaussianPosterior, as_coefficients, scaled
from mfcf.errors import ConfigError
from mfcf.nn import check_activation, mlp

WEIGHT_INITS = ("torch", "glorot_uniform", "he_uniform")


def _check(hidden_dims: Sequence[int], activation: str, weight_init: str) -> None:
    check_activation(activation)
    if weight_init not in WEIGHT_INITS:
        raise ConfigError(f"must be one of {', '.join(WEIGHT_INITS)}, got {weight_init!r}", key="weight_init")
    if any(width <= 0 for width in hidden_dims):
        raise ConfigError(f"every width must be > 0, got {list(hidden_dims)}", key="hidden_dims")


@torch.no_grad()
def initialise(module: nn.Module, hidden: nn.Sequential, scheme: str) -> None:
    """Apply ``scheme`` to every Linear of ``module`` (``hidden``: the layers an activation follows).

    ``torch`` keeps PyTorch's default; ``glorot_uniform`` (Keras' default, as in the DEC, IDEC
    and VaDE reference code) draws every weight Glorot-uniform with zero biases; ``he_uniform``
    draws the hidden layers He-uniform (gain of ReLU) and the linear heads / output layer
    Glorot-uniform, biases zero.
    """
    if scheme == "torch":
        return
    hidden_layers = {id(m) for m in hidden.modules() if isinstance(m, nn.Linear)}
    for layer in module.modules():
        if isinstance(layer, nn.Linear):
            if scheme == "he_uniform" and id(layer) in hidden_layers:
                nn.init.kaiming_uniform_(layer.weight, nonlinearity="relu")
            else:
                nn.init.xavier_uniform_(layer.weight)
            nn.init.zeros_(layer.bias)


def _n_pixels(data_shape: Sequence[int]) -> int:
    if len(data_shape) == 0 or math.prod(data_shape) <= 0:
        raise ConfigError(f"the mlp networks need a non-empty data shape, got {tuple(data_shape)}", key="data")
    return math.prod(data_shape)


@dataclasses.dataclass
class MLPEncoderConfig:
    """``encoder: {name: mlp, ...}``.

    * ``hidden_dims`` -- width of each hidden layer, input side first (DEC / VaDE: 500, 500, 2000);
    * ``activation`` -- relu | leaky_relu | elu | tanh; ``batch_norm`` -- BatchNorm1d after each;
    * ``weight_init`` -- torch | glorot_uniform | he_uniform (see :func:`initialise`).
    """

    hidden_dims: list[int] = dataclasses.field(default_factory=lambda: [500, 500, 2000])
    activation: str = "relu"
    batch_norm: bool = False
    weight_init: str = "torch"

    def __post_init__(self) -> None:
        _check(self.hidden_dims, self.activation, self.weight_init)


class MLPEncoder(Encoder):
    """Flattened image -> hidden layers -> per facet a linear head giving mean and log-variance.

    ``alpha_enc[j]`` multiplies the features entering facet j's head. Autoencoder baselines use
    the posterior mean as the code.
    """

    name = "mlp"
    Config = MLPEncoderConfig

    def __init__(self, config: MLPEncoderConfig, *, data_shape: Sequence[int], facets: Sequence[FacetSpec]):
        super().__init__(config, data_shape=data_shape, facets=facets)
        width = _n_pixels(self.data_shape)
        self.body = mlp(width, config.hidden_dims, config.activation, config.batch_norm)
        width = config.hidden_dims[-1] if config.hidden_dims else width
        self.heads = nn.ModuleList(nn.Linear(width, 2 * f.latent_dim) for f in self.facets)
        initialise(self, self.body, config.weight_init)

    def forward(self, x: Tensor, alpha_enc: Sequence[float] | None = None) -> list[GaussianPosterior]:
        h = self.body(x.flatten(1))
        out = []
        for head, a in zip(self.heads, as_coefficients(alpha_enc, len(self.facets))):
            mean, logvar = head(scaled(h, a)).chunk(2, dim=-1)
            out.append(GaussianPosterior(mean, logvar))
        return out


@dataclasses.dataclass
class MLPDecoderConfig:
    """``decoder: {name: mlp, ...}``.

    * ``hidden_dims`` -- width of each hidden layer, latent side first (DEC / VaDE: 2000, 500, 500);
    * ``activation`` -- relu | leaky_relu | elu | tanh; ``batch_norm`` -- BatchNorm1d after each;
    * ``weight_init`` -- torch | glorot_uniform | he_uniform (see :func:`initialise`).
    """

    hidden_dims: list[int] = dataclasses.field(default_factory=lambda: [2000, 500, 500])
    activation: str = "relu"
    batch_norm: bool = False
    weight_init: str = "torch"

    def __post_init__(self) -> None:
        _check(self.hidden_dims, self.activation, self.weight_init)


class MLPDecoder(Decoder):
    """Concatenated latents (facet 0 first) -> hidden layers -> linear output of the data's size.

    ``alpha_dec[j]`` multiplies ``z_j`` before concatenation, so a facet with alpha 0 has no
    influence on the output.
    """

    name = "mlp"
    Config = MLPDecoderConfig

    def __init__(self, config: MLPDecoderConfig, *, data_shape: Sequence[int], facets: Sequence[FacetSpec]):
        super().__init__(config, data_shape=data_shape, facets=facets)
        n_pixels = _n_pixels(self.data_shape)
        width = sum(f.latent_dim for f in self.facets)
        self.body = mlp(width, config.hidden_dims, config.activation, config.batch_norm)
        self.output = nn.Linear(config.hidden_dims[-1] if config.hidden_dims else width, n_pixels)
        initialise(self, self.body, config.weight_init)

    def forward(self, zs: Sequence[Tensor], alpha_dec: Sequence[float] | None = None) -> Tensor:
        alpha = as_coefficients(alpha_dec, len(self.facets))
        lead = zs[0].shape[:-1]
        z = torch.cat([scaled(z, a) for z, a in zip(zs, alpha)], dim=-1)
        return self.output(self.body(z.reshape(-1, z.shape[-1]))).reshape(*lead, *self.data_shape)
