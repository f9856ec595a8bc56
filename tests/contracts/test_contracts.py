"""Every registered component passes its kind's contract check, with no per-component test code.

New components are picked up from the registry automatically (as timm's model tests do).
"""

from __future__ import annotations

import pytest

from mfcf import testing
from mfcf.api import DataInfo
from mfcf.errors import ConfigError, DataError
from mfcf.plugins import plugin_manager
from mfcf.registry import Registry

REGISTRY = Registry(plugin_manager())
SHAPES = [(1, 28, 28), (3, 32, 32), (3, 64, 64), (1, 8, 8)]


def entries(kind):
    found = list(REGISTRY.entries(kind))
    return pytest.mark.parametrize("entry", found, ids=[e.name for e in found])


def _facets(cls):
    low, high = cls.supported_facets
    return testing.facet_specs(max(2, low) if high is None else min(max(2, low), high))


def _first_supported_shape(check, cls):
    """Run ``check`` on the first image shape the component accepts (a ConfigError means: not this one)."""
    errors = []
    for shape in SHAPES:
        try:
            return check(cls, data_shape=shape, facets=_facets(cls))
        except ConfigError as exc:
            errors.append(f"{shape}: {exc}")
    pytest.fail(f"{cls.name} accepts none of {SHAPES}:\n" + "\n".join(errors))


@entries("encoder")
def test_encoder_contract(entry):
    _first_supported_shape(testing.check_encoder, entry.cls)


@entries("decoder")
def test_decoder_contract(entry):
    _first_supported_shape(testing.check_decoder, entry.cls)


@entries("prior")
def test_prior_contract(entry):
    testing.check_prior(entry.cls)


@entries("likelihood")
def test_likelihood_contract(entry):
    testing.check_likelihood(entry.cls, info=DataInfo((1, 6, 6), {"label": 2}, "bernoulli"))


@entries("schedule")
def test_schedule_contract(entry):
    testing.check_schedule(entry.cls)


@entries("model")
def test_model_class_contract(entry):
    testing.check_component_class(entry.cls)


@entries("dataset")
def test_dataset_contract(entry):
    """Datasets whose files this machine has are loaded and checked; the others must say, before
    loading anything, which file is missing and where to put it."""
    try:
        dataset = entry.cls(entry.cls.Config(), seed=0)
    except DataError as exc:
        assert "root" in str(exc), f"{entry.name}: the missing-data error should say where files go (data.root)"
        return
    testing.check_dataset(dataset, splits=("test",))


@entries("elbo")
def test_elbo_contract(entry):
    """Each estimator on a small two-facet model assembled from the built-in ladder parts."""
    import torch
    from torch import nn

    info = DataInfo((1, 8, 8), {"label": 10}, "bernoulli")
    facets = testing.facet_specs(2, latent_dim=2, n_clusters=3)
    model = nn.Module()
    model.encoder = REGISTRY.get("encoder", "ladder_fc")(REGISTRY.get("encoder", "ladder_fc").Config(),
                                                         data_shape=info.shape, facets=facets)
    model.decoder = REGISTRY.get("decoder", "ladder_fc")(REGISTRY.get("decoder", "ladder_fc").Config(),
                                                         data_shape=info.shape, facets=facets)
    prior = REGISTRY.get("prior", "mog")
    model.priors = nn.ModuleList(prior(prior.Config(), latent_dim=2, n_clusters=3) for _ in facets)
    likelihood = REGISTRY.get("likelihood", "bernoulli")
    model.likelihood = likelihood(likelihood.Config(), info=info)
    testing.check_elbo(entry.cls, model, torch.rand(6, *info.shape))
