"""Convolutional ladder encoder and decoder (MFCVAE.md §4.3, the SVHN / 3DShapes network).

The channel layout is the official one; for J = 2 and 3x32x32 inputs (conv blocks are
``conv -> act -> BN2d``, kernel 4, padding 1, stride 2 unless noted)::

    encoder  backbone 0: Conv 3->64                  -> 64x16x16
             rung 0:     Conv 64->64, Conv 64->64 s1  -> 64x7x7 = 3136 -> heads of facet 0
             backbone 1: Conv 64->128                 -> 128x8x8
             rung 1:     Conv 128->128, Conv 128->256 -> 256x2x2 = 1024 -> heads of facet 1
    decoder  rung 1:     Linear D_1 -> 256*8*8 [BN1d], x alpha_1 -> 256x8x8
             backbone 1: ConvT 256->128, ConvT 128->64 k3 s1 -> 64x16x16
             rung 0:     Linear D_0 -> 64*16*16 [BN1d], x alpha_0 -> 64x16x16
             backbone 0: concat [rung 0, state] (128 ch), ConvT 128->3 [act, BN2d(3)] -> 3x32x32

J = 3 adds backbone 2 (Conv 128->256) / rung 2 (Conv 256->256, Conv 256->512) and a decoder top
(Linear D_2 -> 512*(H/8)*(W/8); ConvT 512->512, ConvT 512->256 k3 s1) whose output is
concatenated with rung 1. J = 1 keeps facet 0's path alone (not in the paper).

Unlike the official code (§9, D9) every size is derived from the input shape at build time:
any C x H x W works when H and W are divisible by 2^(J + len(stem_channels)) and every
encoder stage keeps at least one pixel (1x28x28 with J <= 2 works; 3x64x64 works directly, or
with ``stem_channels: [32]`` -- one extra stride-2 stage on each side -- at the 32x32 cost).
Anything else fails with a :class:`~mfcf.errors.ConfigError` before training.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import torch
from einops import rearrange
from torch import Tensor, nn

from mfcf.api import Decoder, Encoder, FacetSpec, GaussianPosterior, as_coefficients
from mfcf.config import positive
from mfcf.errors import ConfigError
from mfcf.nn import check_activation, mlp

from .layers import check_entries, conv_block, conv_out, read_rungs

#: Encoder backbone j: Conv(prev -> ENC_BACKBONE[j], k4 s2).
ENC_BACKBONE = (64, 128, 256)
#: Encoder rung j: two convs given as (out channels, kernel, stride).
ENC_RUNG = (((64, 4, 2), (64, 4, 1)), ((128, 4, 2), (256, 4, 2)), ((256, 4, 2), (512, 4, 2)))
#: Decoder rung j: Linear D_j -> DEC_RUNG[j] x (H / 2^(j+1)) x (W / 2^(j+1)).
DEC_RUNG = (64, 256, 512)
#: Decoder backbone j >= 1: ConvT(in -> c1, k4 s2), ConvT(c1 -> c2, k3 s1).
DEC_BACKBONE = (None, (128, 64), (512, 256))

WEIGHT_NORM_MODES = ("encoder", "none", "all")


def _scaled(channels: int, width: float) -> int:
    return max(1, round(channels * width))


def _check_common(config) -> None:
    check_activation(config.activation)
    if config.weight_norm not in WEIGHT_NORM_MODES:
        raise ConfigError(
            f"unknown weight_norm {config.weight_norm!r}; choose encoder (faithful: encoder convs only, "
            "§9 D2), none or all",
            key="weight_norm",
        )
    if not config.width > 0:
        raise ConfigError(f"must be greater than 0, got {config.width}", key="width")
    check_entries(config.stem_channels, "stem_channels")


def _check_shape(data_shape: Sequence[int], n_facets: int, n_stem: int) -> None:
    """Fail early for shapes the ladder cannot reproduce (§9, D9)."""
    if len(data_shape) != 3:
        raise ConfigError(f"ladder_conv needs images shaped (C, H, W), got data shape {tuple(data_shape)}")
    if not 1 <= n_facets <= len(ENC_BACKBONE):
        raise ConfigError(f"ladder_conv hosts 1 to {len(ENC_BACKBONE)} facets, got {n_facets}", key="facets")
    _, H, W = data_shape
    factor = 2 ** (n_facets + n_stem)
    if H % factor or W % factor:
        raise ConfigError(
            f"ladder_conv with {n_facets} facets and {n_stem} stem stage(s) needs H and W divisible by "
            f"{factor}, got {H}x{W}; resize the images, use fewer facets / stem stages, or use ladder_fc"
        )


@dataclasses.dataclass
class LadderConvEncoderConfig:
    """``encoder: {name: ladder_conv, ...}``.

    * ``activation`` -- elu (paper) | relu | leaky_relu;
    * ``weight_norm`` -- encoder (faithful: encoder convs normalised) | all | none;
    * ``width`` -- multiplies every channel count (1.0 = paper; 0.25 for a CPU-sized net);
    * ``stem_channels`` -- extra stride-2 conv stages before backbone 0 (e.g. [32] for 64x64
      images to keep the 32x32 network; mirrored by the decoder's ``stem_channels``).
    """

    activation: str = "elu"
    weight_norm: str = "encoder"
    width: float = 1.0
    stem_channels: list[int] = dataclasses.field(default_factory=list)

    def __post_init__(self) -> None:
        _check_common(self)


class LadderConvEncoder(Encoder):
    """Bottom-up conv ladder: rung j reads ``alpha_enc_j * backbone_j``, flattens, feeds the heads."""

    name = "ladder_conv"
    Config = LadderConvEncoderConfig
    supported_facets = (1, 3)

    def __init__(self, config: LadderConvEncoderConfig, *, data_shape: Sequence[int], facets: Sequence[FacetSpec]):
        super().__init__(config, data_shape=data_shape, facets=facets)
        J, c = len(facets), config
        _check_shape(data_shape, J, len(c.stem_channels))
        wn = c.weight_norm in ("encoder", "all")
        block = dict(activation=c.activation, weight_norm=wn)
        channels, (_, H, W) = data_shape[0], data_shape

        stem = []
        for out in c.stem_channels:
            stem.append(conv_block(channels, out, 4, 2, **block))
            channels, H, W = out, conv_out(H, 4, 2), conv_out(W, 4, 2)
        self.stem = nn.Sequential(*stem)

        self.backbone, self.rungs, self.heads = nn.ModuleList(), nn.ModuleList(), nn.ModuleList()
        for j, facet in enumerate(facets):
            out = _scaled(ENC_BACKBONE[j], c.width)
            self.backbone.append(conv_block(channels, out, 4, 2, **block))
            channels, H, W = out, conv_out(H, 4, 2), conv_out(W, 4, 2)
            rung, rc, rh, rw = [], channels, H, W
            for rung_out, k, s in ENC_RUNG[j]:
                rung_out = _scaled(rung_out, c.width)
                rung.append(conv_block(rc, rung_out, k, s, **block))
                rc, rh, rw = rung_out, conv_out(rh, k, s), conv_out(rw, k, s)
            if rh < 1 or rw < 1:
                raise ConfigError(
                    f"ladder_conv: images of {tuple(data_shape)} are too small, rung {j} would end at "
                    f"{rh}x{rw} pixels; use larger images or fewer facets"
                )
            self.rungs.append(nn.Sequential(*rung, nn.Flatten()))
            self.heads.append(nn.Linear(rc * rh * rw, 2 * facet.latent_dim))

    def forward(self, x: Tensor, alpha_enc: Sequence[float] | None = None) -> list[GaussianPosterior]:
        alpha = as_coefficients(alpha_enc, len(self.facets))
        return read_rungs(self.stem(x), self.backbone, self.rungs, self.heads, alpha)


@dataclasses.dataclass
class LadderConvDecoderConfig:
    """``decoder: {name: ladder_conv, ...}``.

    * ``activation``, ``width``, ``stem_channels`` -- as for the encoder (use the same values);
    * ``weight_norm`` -- all: normalise the transposed convs too; encoder / none: leave them plain
      (the faithful decoder has no weight norm, §9 D2);
    * ``batch_norm`` -- BatchNorm1d after the fc rungs (paper: on);
    * ``faithful_output`` -- end with ``ConvT -> act -> BatchNorm2d(C)`` as the official code
      (§4.3); off: the last ConvT's output is returned as it is;
    * ``merge_blocks`` -- conv blocks (3x3, stride 1, channels kept, ``act -> BN2d``) between
      joining facet 0's rung to the state and the last upsampling (0: none, faithful). In the
      faithful decoder facet 0's features meet the deeper facets' only in that last, linear
      ConvT, so an output pixel is sigmoid(a(z_0) + b(z_1..J)): a shape drawn by facet 0 cannot
      take a colour held by a deeper facet (stroke = mask x colour is a product), and facet 0
      must encode that colour itself. A block or two lets the decoder form the product.
    """

    activation: str = "elu"
    weight_norm: str = "encoder"
    batch_norm: bool = True
    faithful_output: bool = True
    width: float = 1.0
    stem_channels: list[int] = dataclasses.field(default_factory=list)
    merge_blocks: int = 0

    def __post_init__(self) -> None:
        _check_common(self)
        positive(self.merge_blocks, "merge_blocks", allow_zero=True)


class LadderConvDecoder(Decoder):
    """Top-down conv ladder: fc rung j -> (C_j, H/2^(j+1), W/2^(j+1)) times alpha_dec_j,
    concatenated (rung first) with the running state, then backbone j doubles the resolution."""

    name = "ladder_conv"
    Config = LadderConvDecoderConfig
    supported_facets = (1, 3)

    def __init__(self, config: LadderConvDecoderConfig, *, data_shape: Sequence[int], facets: Sequence[FacetSpec]):
        super().__init__(config, data_shape=data_shape, facets=facets)
        J, c = len(facets), config
        _check_shape(data_shape, J, len(c.stem_channels))
        self._block = dict(activation=c.activation, transposed=True, weight_norm=c.weight_norm == "all")
        C, H, W = data_shape
        H, W = H // 2 ** len(c.stem_channels), W // 2 ** len(c.stem_channels)
        # backbone 0 and the stem stages: one chain of stride-2 ConvTs ending at the data channels
        chain = [_scaled(s, c.width) for s in reversed(c.stem_channels)] + [C]

        self.rung_shapes: list[tuple[int, int, int]] = []
        rungs, backbone, state = [], [], 0  # state: channels of the running decoder state
        for j in reversed(range(J)):
            shape = (_scaled(DEC_RUNG[j], c.width), H // 2 ** (j + 1), W // 2 ** (j + 1))
            self.rung_shapes.insert(0, shape)
            rungs.insert(0, mlp(facets[j].latent_dim, [shape[0] * shape[1] * shape[2]], c.activation, c.batch_norm))
            channels = shape[0] + state
            if j == 0:
                merge = [conv_block(channels, channels, 3, 1, **self._block) for _ in range(c.merge_blocks)]
                backbone.insert(0, nn.Sequential(*merge, *self._up(channels, chain[0], last=len(chain) == 1)))
            else:
                c1, c2 = (_scaled(v, c.width) for v in DEC_BACKBONE[j])
                backbone.insert(0, nn.Sequential(conv_block(channels, c1, 4, 2, **self._block),
                                                 conv_block(c1, c2, 3, 1, **self._block)))
                state = c2
        self.rungs, self.backbone = nn.ModuleList(rungs), nn.ModuleList(backbone)
        self.stem = nn.Sequential(*(self._up(a, b, last=i == len(chain) - 2)
                                    for i, (a, b) in enumerate(zip(chain, chain[1:]))))

    def _up(self, in_channels: int, out_channels: int, *, last: bool) -> nn.Sequential:
        """A stride-2 ConvT block; the last one (to the data channels) obeys ``faithful_output``."""
        if last and not self.config.faithful_output:
            return conv_block(in_channels, out_channels, 4, 2, **{**self._block, "activation": None}, batch_norm=False)
        return conv_block(in_channels, out_channels, 4, 2, **self._block)

    def forward(self, zs: Sequence[Tensor], alpha_dec: Sequence[float] | None = None) -> Tensor:
        J = len(self.facets)
        alpha = as_coefficients(alpha_dec, J)
        lead = zs[0].shape[:-1]
        b = None
        for j in reversed(range(J)):
            c, h, w = self.rung_shapes[j]
            r = self.rungs[j](zs[j].reshape(-1, zs[j].shape[-1]))
            r = alpha[j] * rearrange(r, "b (c h w) -> b c h w", c=c, h=h, w=w)
            b = self.backbone[j](r if b is None else torch.cat([r, b], dim=1))
        return self.stem(b).reshape(*lead, *self.data_shape)
