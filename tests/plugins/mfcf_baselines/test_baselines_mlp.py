"""The `mlp` encoder and decoder: one width per layer, contracts, facets, initialisation, errors."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from mfcf import testing
from mfcf.config import validate_section
from mfcf.errors import ConfigError
from mfcf_baselines.mlp import MLPDecoder, MLPEncoder


def _linears(module):
    return [m for m in module.modules() if isinstance(m, nn.Linear)]


@pytest.mark.parametrize("shape", [(1, 28, 28), (3, 32, 32), (1, 8, 8)])
@pytest.mark.parametrize("n_facets", [1, 3])
def test_contracts(shape, n_facets):
    facets = testing.facet_specs(n_facets, latent_dim=3, n_clusters=4)
    cfg = dict(hidden_dims=[20, 10])
    testing.check_encoder(MLPEncoder, MLPEncoder.Config(**cfg), data_shape=shape, facets=facets)
    testing.check_decoder(MLPDecoder, MLPDecoder.Config(**cfg), data_shape=shape, facets=facets)


def test_defaults_are_the_dec_vade_architecture():
    """d-500-500-2000-10 and its mirror image, which the fc ladder cannot express."""
    facets = testing.facet_specs(1, latent_dim=10)
    enc = MLPEncoder(MLPEncoder.Config(), data_shape=(1, 28, 28), facets=facets)
    dec = MLPDecoder(MLPDecoder.Config(), data_shape=(1, 28, 28), facets=facets)
    assert [tuple(m.weight.shape) for m in _linears(enc)] == [(500, 784), (500, 500), (2000, 500), (20, 2000)]
    assert [tuple(m.weight.shape) for m in _linears(dec)] == [(2000, 10), (500, 2000), (500, 500), (784, 500)]


def test_facets_share_features_and_decoder_concatenates_them():
    facets = testing.facet_specs(2, latent_dim=3)
    enc = MLPEncoder(MLPEncoder.Config(hidden_dims=[8]), data_shape=(1, 4, 4), facets=facets)
    x = torch.rand(5, 1, 4, 4)
    q0, q1 = enc(x, alpha_enc=[0.0, 1.0])
    bias0_mean = enc.heads[0].bias[:3]
    torch.testing.assert_close(q0.mean, bias0_mean.expand(5, 3))  # alpha 0: the head sees zeros
    dec = MLPDecoder(MLPDecoder.Config(hidden_dims=[]), data_shape=(1, 4, 4), facets=facets)
    assert dec.output.in_features == 6
    zs = [torch.randn(2, 7, 3), torch.randn(2, 7, 3)]  # a leading sample dim is kept
    assert dec(zs).shape == (2, 7, 1, 4, 4)


@pytest.mark.parametrize("scheme", ["glorot_uniform", "he_uniform"])
def test_weight_init_schemes(scheme):
    torch.manual_seed(0)
    enc = MLPEncoder(MLPEncoder.Config(hidden_dims=[300, 200], weight_init=scheme), data_shape=(1, 20, 20),
                     facets=testing.facet_specs(1, latent_dim=5))
    for i, layer in enumerate(_linears(enc)):
        fan_out, fan_in = layer.weight.shape
        hidden = i < 2
        bound = math.sqrt(6 / fan_in) if scheme == "he_uniform" and hidden else math.sqrt(6 / (fan_in + fan_out))
        assert torch.count_nonzero(layer.bias) == 0
        assert layer.weight.abs().max() <= bound
        assert layer.weight.abs().max() > 0.95 * bound  # uniform on [-bound, bound], not narrower


@pytest.mark.parametrize("section, key", [
    ({"hidden_dims": [10, 0]}, "encoder.hidden_dims"),
    ({"activation": "relu6"}, "encoder.activation"),
    ({"weight_init": "xavier"}, "encoder.weight_init"),
])
def test_bad_options_name_their_key(section, key):
    with pytest.raises(ConfigError) as err:
        validate_section(MLPEncoder.Config, section, "encoder")
    assert err.value.key == key
