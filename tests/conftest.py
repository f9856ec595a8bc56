"""Shared fixtures. The test-only plugin module `mfcf_toy` lives in tests/toy_plugins and is
loaded through a config's `plugins:` list, the route for modules that are not installed."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

TOY_DIR = Path(__file__).parent / "toy_plugins"
sys.path.insert(0, str(TOY_DIR))
os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(TOY_DIR), os.environ.get("PYTHONPATH")]))


@pytest.fixture
def toy_config(tmp_path):
    """A tiny two-facet gradient experiment on the toy blobs (trains in about a second)."""
    return {
        "plugins": ["mfcf_toy"],
        "data": {"name": "toy_blobs", "batch_size": 32, "val_fraction": 0.2},
        "model": {"name": "toy_softkmeans"},
        "facets": [{"latent_dim": 2, "n_clusters": 3}, {"latent_dim": 2, "n_clusters": 2}],
        "trainer": {"epochs": 3, "lr": 0.01, "seed": 1, "runs_dir": str(tmp_path / "runs"), "threads": 1},
    }
