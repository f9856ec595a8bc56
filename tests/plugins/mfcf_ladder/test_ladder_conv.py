"""The convolutional ladder (MFCVAE.md §4.3): faithful shapes and counts, options, fail-early shapes."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.nn.utils import parametrize

from mfcf.api import FacetSpec
from mfcf.config import validate_section
from mfcf.errors import ConfigError
from mfcf_ladder.ladder_conv import LadderConvDecoder, LadderConvEncoder
from mfcf_ladder.layers import n_params

RGB32 = (3, 32, 32)


def facets(*dims: int) -> list[FacetSpec]:
    return [FacetSpec(j, d, 10) for j, d in enumerate(dims)]


def build(shape=RGB32, fs=None, enc=None, dec=None):
    fs = fs or facets(22, 7)
    e = LadderConvEncoder(LadderConvEncoder.Config(**(enc or {})), data_shape=shape, facets=fs)
    d = LadderConvDecoder(LadderConvDecoder.Config(**(dec or {})), data_shape=shape, facets=fs)
    return e, d


def output_shapes(module: nn.Module, x: torch.Tensor, call) -> list[tuple[int, ...]]:
    shapes = []
    hooks = [m.register_forward_hook(lambda m, i, o: shapes.append(tuple(o.shape[1:])))
             for m in module.modules() if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d))]
    call(x)
    for h in hooks:
        h.remove()
    return shapes


@pytest.mark.parametrize("dims,heads,rung1,rung0", [
    ((22, 7), 152_378, 163_840, 409_600),  # SVHN
    ((20, 2), 129_580, 81_920, 376_832),  # 3DShapes
])
def test_faithful_parameter_counts(dims, heads, rung1, rung0):
    e, d = build(fs=facets(*dims))
    assert n_params(e.stem) + n_params(e.backbone) + n_params(e.rungs) == 1_054_464
    assert n_params(e.heads) == heads
    assert n_params(d.rungs[1]) == rung1
    assert n_params(d.backbone[1]) == 598_592
    assert n_params(d.rungs[0]) == rung0
    assert n_params(d.backbone[0]) + n_params(d.stem) == 6_153


def test_faithful_intermediate_shapes():
    torch.manual_seed(0)
    e, d = build()
    x = torch.rand(2, *RGB32)
    assert output_shapes(e, x, e) == [(64, 16, 16), (64, 8, 8), (64, 7, 7), (128, 8, 8), (128, 4, 4), (256, 2, 2)]
    assert [h.in_features for h in e.heads] == [3136, 1024]
    assert d.rung_shapes == [(64, 16, 16), (256, 8, 8)]
    assert output_shapes(d, [torch.randn(2, 22), torch.randn(2, 7)], d) == [(128, 16, 16), (64, 16, 16), (3, 32, 32)]
    assert d.backbone[0][0].in_channels == 128  # concat [rung 0 (64), backbone 1 (64)]


def test_three_facets():
    e, d = build(fs=facets(4, 3, 2))
    assert [h.in_features for h in e.heads] == [3136, 1024, 512]
    assert d.rung_shapes[2] == (512, 4, 4) and d.rungs[2][0].out_features == 8192
    assert [(b[0].in_channels, b[0].out_channels) for b in d.backbone[2]] == [(512, 512), (512, 256)]
    assert d.backbone[1][0][0].in_channels == 512  # rung 1 (256) + backbone 2 output (256)
    qs = e(torch.rand(2, *RGB32))
    assert d([q.mean for q in qs]).shape == (2, *RGB32)


def test_blocks_put_activation_before_batch_norm():
    e, d = build()
    conv, act, bn = e.backbone[0]
    assert isinstance(conv, nn.Conv2d) and type(act) is nn.ELU and type(bn) is nn.BatchNorm2d
    assert [type(m) for m in d.rungs[0]] == [nn.Linear, nn.ELU, nn.BatchNorm1d]
    no_bn = build(dec=dict(batch_norm=False))[1]
    assert [type(m) for m in no_bn.rungs[0]] == [nn.Linear, nn.ELU]


@pytest.mark.parametrize("mode,encoder_wn,decoder_wn", [("encoder", True, False), ("all", True, True),
                                                        ("none", False, False)])
def test_weight_norm_modes(mode, encoder_wn, decoder_wn):
    e, d = build(enc=dict(weight_norm=mode), dec=dict(weight_norm=mode))
    enc_convs = [m for m in e.modules() if isinstance(m, nn.Conv2d)]
    dec_convs = [m for m in d.modules() if isinstance(m, nn.ConvTranspose2d)]
    assert all(parametrize.is_parametrized(m, "weight") == encoder_wn for m in enc_convs)
    assert all(parametrize.is_parametrized(m, "weight") == decoder_wn for m in dec_convs)
    if decoder_wn:  # one gain per output channel
        first = d.backbone[1][0][0]
        assert first.parametrizations.weight.original0.numel() == first.out_channels


def test_output_stage_options():
    _, faithful = build()
    assert [type(m) for m in faithful.backbone[0]] == [nn.ConvTranspose2d, nn.ELU, nn.BatchNorm2d]  # no WN
    assert faithful.backbone[0][2].num_features == 3
    _, plain = build(dec=dict(faithful_output=False))
    assert [type(m) for m in plain.backbone[0]] == [nn.ConvTranspose2d]
    out = plain([torch.randn(2, 22), torch.randn(2, 7)])
    assert out.shape == (2, *RGB32)


@pytest.mark.parametrize("shape,n,heads", [
    ((1, 28, 28), 2, [2304, 256]),  # 28 -> 14 -> 7 -> 6 ; 7 -> 3 -> 1
    ((3, 64, 64), 2, [14400, 4096]),  # sizes derived from the input
    ((3, 16, 16), 2, [576, 256]),  # 16 -> 8 -> 4 -> 3 ; 4 -> 2 -> 1
    ((3, 32, 32), 1, [3136]),
])
def test_sizes_are_derived_from_the_input_shape(shape, n, heads):
    e, d = build(shape=shape, fs=facets(*[3] * n), enc=dict(width=0.25), dec=dict(width=0.25))
    assert [h.in_features for h in e.heads] == [f // 4 for f in heads]  # width 0.25: a quarter of the channels
    qs = e(torch.rand(2, *shape))
    assert d([q.mean for q in qs]).shape == (2, *shape)


def test_stem_keeps_the_32_pixel_network_for_64_pixel_images():
    e, d = build(shape=(3, 64, 64), enc=dict(stem_channels=[32]), dec=dict(stem_channels=[32]))
    assert [h.in_features for h in e.heads] == [3136, 1024]
    assert d.rung_shapes == [(64, 16, 16), (256, 8, 8)]
    assert d.backbone[0][0].out_channels == 32 and d.stem[0][0].out_channels == 3
    qs = e(torch.rand(2, 3, 64, 64))
    assert d([q.mean for q in qs]).shape == (2, 3, 64, 64)


@pytest.mark.parametrize("shape,n,match", [
    ((1, 28, 28), 3, "divisible by 8"),
    ((3, 30, 30), 2, "divisible by 4"),
    ((3, 8, 8), 2, "too small"),
    ((784,), 2, r"\(C, H, W\)"),
])
def test_unsupported_shapes_fail_early(shape, n, match):
    with pytest.raises(ConfigError, match=match):
        LadderConvEncoder(LadderConvEncoder.Config(), data_shape=shape, facets=facets(*[2] * n))
    if match != "too small":  # the decoder's check is the divisibility alone
        with pytest.raises(ConfigError, match=match):
            LadderConvDecoder(LadderConvDecoder.Config(), data_shape=shape, facets=facets(*[2] * n))


def test_supported_facets_declared():
    assert LadderConvEncoder.supported_facets == LadderConvDecoder.supported_facets == (1, 3)


@pytest.mark.parametrize("section,key", [
    ({"weight_norm": "decoder"}, "decoder.weight_norm"),
    ({"activation": "gelu"}, "decoder.activation"),
    ({"width": 0.0}, "decoder.width"),
    ({"stem_channels": [0]}, "decoder.stem_channels"),
    ({"merge_blocks": -1}, "decoder.merge_blocks"),
])
def test_bad_values_fail_at_validation(section, key):
    with pytest.raises(ConfigError) as info:
        validate_section(LadderConvDecoder.Config, section, "decoder")
    assert info.value.key == key


def test_switched_off_facet_has_no_influence_and_no_gradient():
    torch.manual_seed(0)
    e, d = build(shape=(3, 16, 16), fs=facets(3, 2), enc=dict(width=0.125), dec=dict(width=0.125))
    d.eval()  # batch norm on running statistics so outputs are per-example
    z1 = torch.randn(4, 2)
    off = (0.0, 1.0)
    torch.testing.assert_close(d([torch.randn(4, 3), z1], off), d([torch.randn(4, 3), z1], off), rtol=0, atol=0)

    d.train()
    x = torch.rand(4, 3, 16, 16)
    qs = e(x)
    d([q.rsample() for q in qs], off).square().mean().backward()
    for p in [*d.rungs[0].parameters(), *e.heads[0].parameters(), *e.rungs[0].parameters()]:
        assert p.grad is None or torch.count_nonzero(p.grad) == 0
    assert all(torch.count_nonzero(p.grad) > 0 for p in e.heads[1].parameters())


def test_merge_blocks_sit_between_facet_0s_rung_and_the_last_upsampling():
    torch.manual_seed(0)
    _, faithful = build()
    _, merged = build(dec={"merge_blocks": 2})
    joined = 64 + 64  # facet 0's rung and the state, concatenated
    blocks = [m for m in merged.backbone[0] if isinstance(m, nn.Sequential)]
    assert len(blocks) == 2
    for block in blocks:
        conv = block[0]
        assert isinstance(conv, nn.ConvTranspose2d) and conv.kernel_size == (3, 3) and conv.stride == (1, 1)
        assert conv.in_channels == conv.out_channels == joined
    assert n_params(merged.backbone[0]) - n_params(faithful.backbone[0]) == 2 * (joined * joined * 9 + joined
                                                                                 + 2 * joined)  # conv + BN
    # without merge blocks the parameters keep their faithful names (official weights still load)
    assert list(faithful.backbone[0].state_dict()) == ["0.weight", "0.bias", "2.weight", "2.bias", "2.running_mean",
                                                       "2.running_var", "2.num_batches_tracked"]
    zs = [torch.randn(4, 22), torch.randn(4, 7)]
    assert merged(zs).shape == faithful(zs).shape == (4, *RGB32)


@pytest.mark.parametrize("merge_blocks", [0, 1])
def test_merge_blocks_let_a_deeper_facet_colour_what_facet_0_draws(merge_blocks):
    """Strokes (facet 0 says where) in a colour only facet 1 knows, on a grey background. The
    faithful decoder joins the two in one linear ConvT before the sigmoid, sigmoid(a(z_0) +
    b(z_1)): a pixel that is a stroke in one mask and background in the other must be grey
    for every colour under that other mask, so b cannot carry the colour there, and the worst
    pixel is off by about half the range. One merge block forms the product."""
    torch.manual_seed(0)
    shape = (3, 8, 8)
    fs = facets(2, 2)
    decoder = LadderConvDecoder(LadderConvDecoder.Config(width=0.25, faithful_output=False, batch_norm=False,
                                                         merge_blocks=merge_blocks), data_shape=shape, facets=fs)
    masks = torch.zeros(2, 8, 8)
    masks[0, 2:6, 3:5] = 1.0  # a bar
    masks[1, 3:5, 2:6] = 1.0  # a crossbar
    colours = torch.tensor([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]])
    pairs = [(m, c) for m in range(2) for c in range(3)]
    z0 = torch.tensor([[1.0, -1.0], [-1.0, 1.0]])[[m for m, _ in pairs]]
    z1 = torch.tensor([[1.0, 0.0], [-0.5, 0.87], [-0.5, -0.87]])[[c for _, c in pairs]]
    target = torch.stack([masks[m] * colours[c][:, None, None] + (1 - masks[m]) * 0.5 for m, c in pairs])
    optimiser = torch.optim.Adam(decoder.parameters(), lr=1e-2)
    for _ in range(400):
        loss = ((torch.sigmoid(decoder([z0, z1])) - target) ** 2).mean()
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
    union = (masks.amax(0) > 0).expand_as(target)  # stroke pixels of either mask
    error = (torch.sigmoid(decoder([z0, z1])) - target).abs()[union].max().item()  # the worst one
    if merge_blocks:
        assert error < 0.05
    else:  # where a pixel is a stroke in one mask only, a colour and grey cannot both be met
        assert error > 0.25
