"""Fully-connected ladder encoder and decoder (MFCVAE.md §4.2, the paper's MNIST network).

Facet 0 taps the shallowest encoder layer and enters the decoder last; facet J-1 taps the
deepest layer and enters the decoder first. Any J >= 1 works; every width is configurable per
facet. The defaults are the paper's MNIST instance (J = 2):

=================  ===================================================
encoder            784 -> 500 (h_0, heads of facet 0) -> 2000 (h_1, heads of facet 1)
decoder            z_1: 5 -> 2000 -> 500 = b;  z_0: 5 -> 500 = r
                   m = 0.1 * alpha_dec_0 * r + b;  500 -> 500 -> Linear 500 -> 784
=================  ===================================================

giving 3,078,304 network parameters (3,078,854 with two diagonal MoG priors of K = 25).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence

from torch import Tensor, nn

from mfcf.api import Decoder, Encoder, FacetSpec, GaussianPosterior, as_coefficients, scaled
from mfcf.errors import ConfigError
from mfcf.nn import check_activation, mlp

from .layers import add_scaled, check_entries, check_per_facet, read_rungs


def _check_data_shape(data_shape: Sequence[int]) -> None:
    if len(data_shape) == 0 or math.prod(data_shape) <= 0:
        raise ConfigError(f"the fc ladder needs a non-empty data shape, got {tuple(data_shape)}", key="data")


def _check_sizes(config: LadderFCEncoderConfig | LadderFCDecoderConfig) -> None:
    """The checks both fc ladder configs share: activation name, positive widths, layer counts >= 0."""
    check_activation(config.activation)
    for field in ("backbone_dims", "rung_dims"):
        check_entries(getattr(config, field), field)
    for field in ("backbone_layers", "rung_layers"):
        check_entries(getattr(config, field), field, allow_zero=True)


@dataclasses.dataclass
class LadderFCEncoderConfig:
    """``encoder: {name: ladder_fc, ...}``; every list has one entry per facet (index 0 first).

    * ``backbone_dims[j]`` / ``backbone_layers[j]`` -- width and number of Linear layers of the
      backbone segment between facet j-1's tap and facet j's tap (0 layers: identity);
    * ``rung_dims`` / ``rung_layers`` -- optional MLP between the tap and facet j's heads;
      empty lists (the default, as in the paper) mean no encoder rungs;
    * ``activation`` -- relu | leaky_relu | elu; ``batch_norm`` -- BatchNorm1d after each act.
    """

    backbone_dims: list[int] = dataclasses.field(default_factory=lambda: [500, 2000])
    backbone_layers: list[int] = dataclasses.field(default_factory=lambda: [1, 1])
    rung_dims: list[int] = dataclasses.field(default_factory=list)
    rung_layers: list[int] = dataclasses.field(default_factory=list)
    activation: str = "relu"
    batch_norm: bool = False

    def __post_init__(self) -> None:
        _check_sizes(self)
        if len(self.rung_dims) != len(self.rung_layers):
            raise ConfigError(
                f"rung_dims ({len(self.rung_dims)} entries) and rung_layers ({len(self.rung_layers)}) "
                "must both be empty (no encoder rungs) or both have one entry per facet",
                key="rung_layers",
            )


class LadderFCEncoder(Encoder):
    """Bottom-up MLP ladder: backbone segment j, then (optional) rung j, then facet j's heads.

    ``h_j = MLP_j(h_{j-1})``, ``r_j = Rung_j(alpha_enc_j * h_j)``, and two linear heads on
    ``r_j`` give the mean and log-variance of ``q(z_j | x)`` (§2.1). Inputs of any shape are
    flattened.
    """

    name = "ladder_fc"
    Config = LadderFCEncoderConfig

    def __init__(self, config: LadderFCEncoderConfig, *, data_shape: Sequence[int], facets: Sequence[FacetSpec]):
        super().__init__(config, data_shape=data_shape, facets=facets)
        _check_data_shape(data_shape)
        J = len(facets)
        check_per_facet(config, ["backbone_dims", "backbone_layers"], J)
        has_rungs = bool(config.rung_layers)
        if has_rungs:
            check_per_facet(config, ["rung_dims", "rung_layers"], J)
        width = math.prod(self.data_shape)
        self.backbone, self.rungs, self.heads = nn.ModuleList(), nn.ModuleList(), nn.ModuleList()
        for j, facet in enumerate(facets):
            seg = [config.backbone_dims[j]] * config.backbone_layers[j]
            self.backbone.append(mlp(width, seg, config.activation, config.batch_norm))
            width = seg[-1] if seg else width
            rung = [config.rung_dims[j]] * config.rung_layers[j] if has_rungs else []
            self.rungs.append(mlp(width, rung, config.activation, config.batch_norm))
            # one Linear producing [mean, logvar]: same parameters as two heads of §4.2
            self.heads.append(nn.Linear(rung[-1] if rung else width, 2 * facet.latent_dim))

    def forward(self, x: Tensor, alpha_enc: Sequence[float] | None = None) -> list[GaussianPosterior]:
        alpha = as_coefficients(alpha_enc, len(self.facets))
        return read_rungs(x.flatten(1), self.backbone, self.rungs, self.heads, alpha)


@dataclasses.dataclass
class LadderFCDecoderConfig:
    """``decoder: {name: ladder_fc, ...}``; every list has one entry per facet (index 0 first).

    * ``rung_dims[j]`` / ``rung_layers[j]`` -- MLP reading ``z_j`` (0 layers: ``z_j`` itself);
    * ``backbone_dims[j]`` / ``backbone_layers[j]`` -- MLP applied after facet j merged in;
    * ``merge_scale`` -- the constant gate of ``m = merge_scale * alpha_dec_j * r_j + b``
      (0.1 in the paper); rung j's width must equal the width of the state it merges into;
    * ``activation`` -- relu | leaky_relu | elu; ``batch_norm`` -- BatchNorm1d after each act.

    The last Linear (to the data size) has no activation: the likelihood owns it.
    """

    backbone_dims: list[int] = dataclasses.field(default_factory=lambda: [500, 500])
    backbone_layers: list[int] = dataclasses.field(default_factory=lambda: [1, 1])
    rung_dims: list[int] = dataclasses.field(default_factory=lambda: [500, 2000])
    rung_layers: list[int] = dataclasses.field(default_factory=lambda: [1, 1])
    merge_scale: float = 0.1
    activation: str = "relu"
    batch_norm: bool = False

    def __post_init__(self) -> None:
        _check_sizes(self)


class LadderFCDecoder(Decoder):
    """Top-down MLP ladder (§4.2).

    ``b = Backbone_{J-1}(alpha_{J-1} * Rung_{J-1}(z_{J-1}))``; for j = J-2 .. 0:
    ``b = Backbone_j(merge_scale * alpha_j * Rung_j(z_j) + b)``; output ``Linear(b)`` reshaped
    to ``data_shape`` (raw logits / pre-activation mean). ``alpha_dec`` multiplies each rung's
    *output*, so a facet with alpha 0 has no influence and gets no gradient. (The paper never
    scales the top facet; its alpha is always 1 there, so both readings agree.)
    """

    name = "ladder_fc"
    Config = LadderFCDecoderConfig

    def __init__(self, config: LadderFCDecoderConfig, *, data_shape: Sequence[int], facets: Sequence[FacetSpec]):
        super().__init__(config, data_shape=data_shape, facets=facets)
        _check_data_shape(data_shape)
        J = len(facets)
        check_per_facet(config, ["backbone_dims", "backbone_layers", "rung_dims", "rung_layers"], J)
        c = config
        rungs, backbone = [], []
        width = None  # width of the running decoder state b
        for j in reversed(range(J)):
            rung = [c.rung_dims[j]] * c.rung_layers[j]
            rung_width = rung[-1] if rung else facets[j].latent_dim
            if width is not None and rung_width != width:
                raise ConfigError(
                    f"decoder rung {j} outputs width {rung_width} but the decoder state it merges into "
                    f"(after facet {j + 1}) has width {width}; make rung_dims[{j}] equal {width} "
                    f"(or change backbone_dims[{j + 1}])",
                    key="rung_dims",
                )
            seg = [c.backbone_dims[j]] * c.backbone_layers[j]
            rungs.append(mlp(facets[j].latent_dim, rung, c.activation, c.batch_norm))
            backbone.append(mlp(rung_width, seg, c.activation, c.batch_norm))
            width = seg[-1] if seg else rung_width
        # built top-down; flipped so that index j is facet j
        self.rungs, self.backbone = nn.ModuleList(rungs[::-1]), nn.ModuleList(backbone[::-1])
        self.output = nn.Linear(width, math.prod(self.data_shape))

    def forward(self, zs: Sequence[Tensor], alpha_dec: Sequence[float] | None = None) -> Tensor:
        J = len(self.facets)
        alpha = as_coefficients(alpha_dec, J)
        lead = zs[0].shape[:-1]
        b = None
        for j in reversed(range(J)):
            r = self.rungs[j](zs[j].reshape(-1, zs[j].shape[-1]))
            if b is None:
                b = scaled(r, alpha[j])
            else:
                b = add_scaled(b, r, self.config.merge_scale * alpha[j])
            b = self.backbone[j](b)
        return self.output(b).reshape(*lead, *self.data_shape)
