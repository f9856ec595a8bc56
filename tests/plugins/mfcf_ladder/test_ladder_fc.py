"""The fully-connected ladder (MFCVAE.md §4.2): the paper's MNIST table, any J, fail-early checks."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from mfcf.api import FacetSpec
from mfcf.config import validate_section
from mfcf.errors import ConfigError
from mfcf_ladder.ladder_fc import LadderFCDecoder, LadderFCEncoder
from mfcf_ladder.layers import n_params

MNIST = (1, 28, 28)


def facets(*dims: int, k: int = 25) -> list[FacetSpec]:
    return [FacetSpec(j, d, k) for j, d in enumerate(dims)]


def build(shape=MNIST, fs=None, enc=None, dec=None):
    fs = fs or facets(5, 5)
    e = LadderFCEncoder(LadderFCEncoder.Config(**(enc or {})), data_shape=shape, facets=fs)
    d = LadderFCDecoder(LadderFCDecoder.Config(**(dec or {})), data_shape=shape, facets=fs)
    return e, d


def linear_shapes(module: nn.Module) -> list[tuple[int, int]]:
    return [(m.in_features, m.out_features) for m in module.modules() if isinstance(m, nn.Linear)]


def test_mnist_instance_reproduces_the_layer_table():
    e, d = build()
    assert linear_shapes(e.backbone) == [(784, 500), (500, 2000)]
    assert linear_shapes(e.heads) == [(500, 10), (2000, 10)]  # mean and log-variance of 5 dims each
    assert len(e.rungs[0]) == len(e.rungs[1]) == 0
    assert linear_shapes(d.rungs[1]) + linear_shapes(d.backbone[1]) == [(5, 2000), (2000, 500)]
    assert linear_shapes(d.rungs[0]) == [(5, 500)]
    assert linear_shapes(d.backbone[0]) == [(500, 500)]
    assert (d.output.in_features, d.output.out_features) == (500, 784)
    containers = {type(e), type(d), nn.Linear, nn.Sequential, nn.ModuleList}
    others = {type(m) for net in (e, d) for m in net.modules()} - containers
    assert others == {nn.ReLU}  # ReLU, no batch norm, no output activation


def test_mnist_instance_parameter_counts():
    e, d = build()
    assert n_params(e.backbone) == 1_394_500
    assert n_params(e.heads) == 25_020
    assert n_params(d.rungs) + n_params(d.backbone) == 1_266_000
    assert n_params(d.output) == 392_784
    assert n_params(e) + n_params(d) == 3_078_304


def test_mnist_total_with_two_diagonal_mog_priors():
    from mfcf_ladder.priors import MoGPrior

    e, d = build()
    priors = [MoGPrior(MoGPrior.Config(covariance="diag"), latent_dim=5, n_clusters=25) for _ in range(2)]
    assert n_params(e) + n_params(d) + sum(n_params(p) for p in priors) == 3_078_854


def test_shapes_and_raw_output():
    torch.manual_seed(0)
    e, d = build(fs=facets(5, 3))
    x = torch.rand(7, *MNIST)
    qs = e(x)
    assert [tuple(q.mean.shape) for q in qs] == [(7, 5), (7, 3)]
    assert [tuple(q.logvar.shape) for q in qs] == [(7, 5), (7, 3)]
    out = d([q.mean for q in qs])
    assert out.shape == (7, *MNIST)
    assert out.min() < 0  # logits: no output activation
    # leading sample dims are kept
    zs = [torch.randn(3, 7, 5), torch.randn(3, 7, 3)]
    assert d(zs).shape == (3, 7, *MNIST)


def test_merge_is_gated_sum_with_constant_scale():
    torch.manual_seed(0)
    _, d = build(fs=facets(2, 2), dec=dict(backbone_dims=[6, 4], rung_dims=[4, 8]))
    z0, z1 = torch.randn(5, 2), torch.randn(5, 2)
    top = d.backbone[1](d.rungs[1](z1))
    expected = d.output(d.backbone[0](0.1 * 0.5 * d.rungs[0](z0) + top)).view(5, *MNIST)
    torch.testing.assert_close(d([z0, z1], alpha_dec=[0.5, 1.0]), expected)


@pytest.mark.parametrize("n", [1, 3])
def test_any_number_of_facets(n):
    dims = [3] * n
    e, d = build(shape=(1, 6, 6), fs=facets(*dims, k=4),
                 enc=dict(backbone_dims=[16] * n, backbone_layers=[1] * n),
                 dec=dict(backbone_dims=[16] * n, backbone_layers=[1] * n, rung_dims=[16] * n, rung_layers=[1] * n))
    qs = e(torch.rand(4, 1, 6, 6))
    assert len(qs) == n
    assert d([q.rsample() for q in qs]).shape == (4, 1, 6, 6)


def test_encoder_rungs_batch_norm_and_activation_options():
    e, d = build(fs=facets(2, 2), enc=dict(backbone_dims=[32, 16], rung_dims=[8, 4], rung_layers=[2, 1],
                                           activation="elu", batch_norm=True),
                 dec=dict(activation="leaky_relu", batch_norm=True))
    assert linear_shapes(e.rungs) == [(32, 8), (8, 8), (16, 4)]
    assert linear_shapes(e.heads) == [(8, 4), (4, 4)]
    assert any(isinstance(m, nn.ELU) for m in e.modules()) and any(isinstance(m, nn.BatchNorm1d) for m in e.modules())
    leaky = [m for m in d.modules() if isinstance(m, nn.LeakyReLU)]
    assert leaky and all(m.negative_slope == 0.01 for m in leaky)
    # activation then batch norm, as in the official MLP block
    assert [type(m) for m in d.rungs[0]] == [nn.Linear, nn.LeakyReLU, nn.BatchNorm1d]
    assert e(torch.rand(4, *MNIST))[0].mean.shape == (4, 2)


def test_zero_layers_means_identity():
    e, d = build(fs=facets(3, 3), enc=dict(backbone_layers=[1, 0]),
                 dec=dict(rung_layers=[1, 0], rung_dims=[500, 1]))
    assert linear_shapes(e.heads) == [(500, 6), (500, 6)]  # facet 1 reads h_0 directly
    assert len(d.rungs[1]) == 0 and linear_shapes(d.backbone[1]) == [(3, 500)]  # z_1 feeds backbone 1
    with pytest.raises(ConfigError) as info:  # top state has width D_1 = 3, rung 0 gives 500
        build(fs=facets(3, 3), dec=dict(rung_layers=[1, 0], backbone_layers=[1, 0]))
    assert info.value.key == "rung_dims"


@pytest.mark.parametrize("cls,field", [
    (LadderFCEncoder, "backbone_dims"), (LadderFCEncoder, "backbone_layers"), (LadderFCEncoder, "rung_dims"),
    (LadderFCDecoder, "backbone_dims"), (LadderFCDecoder, "rung_dims"), (LadderFCDecoder, "rung_layers"),
])
def test_list_length_must_match_the_number_of_facets(cls, field):
    options = {field: [7, 7, 7]}
    if field == "rung_dims" and cls is LadderFCEncoder:
        options["rung_layers"] = [1, 1, 1]
    with pytest.raises(ConfigError, match="one entry per facet") as info:
        cls(cls.Config(**options), data_shape=MNIST, facets=facets(5, 5))
    assert info.value.key == field


@pytest.mark.parametrize("section,key", [
    ({"activation": "swish"}, "encoder.activation"),
    ({"backbone_dims": [500, 0]}, "encoder.backbone_dims"),
    ({"backbone_layers": [-1, 1]}, "encoder.backbone_layers"),
    ({"rung_dims": [3, 3]}, "encoder.rung_layers"),
])
def test_bad_values_fail_at_validation(section, key):
    with pytest.raises(ConfigError) as info:
        validate_section(LadderFCEncoder.Config, section, "encoder")
    assert info.value.key == key


def test_switched_off_facet_has_no_influence_and_no_gradient():
    torch.manual_seed(0)
    e, d = build(shape=(1, 8, 8), fs=facets(3, 3), enc=dict(backbone_dims=[32, 16]),
                 dec=dict(backbone_dims=[32, 32], rung_dims=[32, 16]))
    z1 = torch.randn(6, 3)
    off = (0.0, 1.0)
    torch.testing.assert_close(d([torch.randn(6, 3), z1], off), d([torch.randn(6, 3), z1], off), rtol=0, atol=0)

    x = torch.rand(6, 1, 8, 8)
    qs = e(x)
    out = d([q.rsample() for q in qs], off)
    nn.functional.binary_cross_entropy_with_logits(out, x).backward()  # reconstruction only (beta_0 = 0)
    for p in [*d.rungs[0].parameters(), *e.heads[0].parameters()]:
        assert p.grad is None or torch.count_nonzero(p.grad) == 0
    assert all(torch.count_nonzero(p.grad) > 0 for p in e.heads[1].parameters())
    assert all(torch.count_nonzero(p.grad) > 0 for p in d.rungs[1].parameters())
