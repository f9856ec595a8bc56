"""Fixtures for the baselines plugin: small configs on real data (scikit-learn's digits)."""

from __future__ import annotations

import copy

import pytest
from threadpoolctl import threadpool_limits

#: A tiny autoencoder on the 8x8 digits: trains an epoch in well under a second on one core.
TINY_AE = {
    "encoder": {"name": "mlp", "hidden_dims": [32, 16]},
    "decoder": {"name": "mlp", "hidden_dims": [16, 32]},
    "likelihood": {"name": "bernoulli"},
}

#: model name -> the extra sections it needs beyond the autoencoder
EXTRA = {
    "ae_kmeans": {},
    "dec": {},
    "idec": {},
    "vade": {"elbo": {"name": "mfcvae_analytic"}, "schedule": {"name": "constant"}},
}


@pytest.fixture
def ae_config(tmp_path):
    """``ae_config(model, pretrain_epochs=2, epochs=4, **model_options)``: a digits config of an
    autoencoder baseline (batch 128, threads 1, runs under tmp_path)."""

    def make(model: str, pretrain_epochs: int = 2, epochs: int = 4, **options):
        facet = {"latent_dim": 4, "n_clusters": 10}
        if model == "vade":
            facet["prior"] = {"name": "mog"}
        return {
            "data": {"name": "digits", "batch_size": 128},
            "model": {"name": model, "pretrain_epochs": pretrain_epochs, **options},
            "facets": [facet],
            **copy.deepcopy(TINY_AE), **copy.deepcopy(EXTRA[model]),
            "trainer": {"epochs": epochs, "lr": 3e-3, "seed": 0, "threads": 1, "runs_dir": str(tmp_path / "runs")},
        }

    return make


@pytest.fixture(autouse=True)
def _one_sklearn_thread():
    """Reference scikit-learn fits in the tests use one thread, like the models under trainer.threads: 1."""
    with threadpool_limits(1):
        yield
