"""Registration, and the Dataset contract checked on every registered dataset.

A dataset added to the plugin without a case in CASES fails `test_every_dataset_has_a_case`.
"""

from __future__ import annotations

import dataclasses
import importlib.metadata as md

import pytest
import torch

from mfcf.api import Dataset
from mfcf.config import validate_section
from mfcf.plugins import plugin_manager
from mfcf.registry import Registry

NAMES = {"shapes_procedural", "shapes3d", "mnist", "mnist5k", "fashion_mnist", "svhn", "digits", "colored"}


def _mnist(tmp_path, writers):
    writers.mnist(tmp_path / "mnist", gz=True)
    return {"root": str(tmp_path / "mnist")}


def _svhn(tmp_path, writers):
    writers.svhn(tmp_path / "svhn")
    return {"root": str(tmp_path / "svhn")}


def _shapes3d(tmp_path, writers, small_file):
    path, _ = small_file
    return {"root": str(path.parent), "wall_hue": [4, 5], "scale": [0, 7], "orientation": [0, 7, 14]}


#: registered name -> options builder (tmp_path, writers, small shapes3d file) -> data: options
CASES = {
    "shapes_procedural": lambda *_: {"n_train": 60, "n_test": 20, "cache": False},
    "shapes3d": _shapes3d,
    "mnist": lambda tmp, w, _: _mnist(tmp, w),
    "mnist5k": lambda *_: {},
    "fashion_mnist": lambda *_: {},
    "svhn": lambda tmp, w, _: _svhn(tmp, w),
    "digits": lambda *_: {"image_size": 28},
    "colored": lambda *_: {"base": "digits"},
}


@pytest.fixture(scope="module")
def registry():
    return Registry(plugin_manager(autoload=False, modules=["mfcf_datasets.plugin"]))


def test_the_installed_entry_point_provides_every_dataset():
    points = [ep for ep in md.entry_points(group="mfcf") if ep.value == "mfcf_datasets.plugin"]
    assert len(points) == 1 and points[0].dist.name == "mfcf"
    entries = {e.name: e for e in Registry(plugin_manager(autoload=True)).entries("dataset")}
    assert NAMES <= set(entries)
    assert {entries[n].plugin for n in NAMES} == {points[0].name}


def test_every_dataset_has_a_case(registry):
    assert set(registry.names("dataset")) == NAMES == set(CASES)


@pytest.mark.parametrize("name", sorted(NAMES))
def test_config_defaults_validate_and_document_themselves(registry, name):
    cls = registry.get("dataset", name)
    config = validate_section(cls.Config, {}, "data")
    assert dataclasses.is_dataclass(config)
    assert cls.__doc__ and len(cls.__doc__) > 80
    core_keys = {"name", "batch_size", "eval_batch_size", "val_fraction", "split_seed"}
    assert not core_keys & {f.name for f in dataclasses.fields(cls.Config)}


@pytest.mark.parametrize("name", sorted(NAMES))
def test_dataset_contract(registry, name, tmp_path, writers, small_shapes3d_file):
    cls: type[Dataset] = registry.get("dataset", name)
    options = CASES[name](tmp_path, writers, small_shapes3d_file)
    ds = cls(validate_section(cls.Config, options, "data"), seed=0)
    info = ds.info  # before any pixel is loaded
    assert info.likelihood_hint in ("bernoulli", "gaussian")
    assert info.factors and all(count >= 2 for count in info.factors.values())
    low, high = info.value_range
    for split in ("train", "test"):
        data = ds.load(split)
        assert len(data) > 0 and data.images.dtype == torch.float32
        assert data.images.shape[1:] == info.shape
        assert low <= float(data.images.min()) and float(data.images.max()) <= high
        assert list(data.factors) == list(info.factors)
        for factor, labels in data.factors.items():
            assert labels.dtype == torch.int64
            assert 0 <= int(labels.min()) and int(labels.max()) < info.factors[factor]
    again = cls(validate_section(cls.Config, options, "data"), seed=0).load("test")
    assert torch.equal(again.images, ds.load("test").images)
