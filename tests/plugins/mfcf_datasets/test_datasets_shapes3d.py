"""`shapes3d` on 3dshapes.h5 files in DeepMind's format (images uint8 Nx64x64x3, labels float Nx6)."""

from __future__ import annotations

import h5py
import numpy as np
import pytest
import torch

from mfcf.errors import ConfigError, DataError
from mfcf_datasets.factors import FACTOR_NAMES, decode_shapes3d_labels
from mfcf_datasets.shapes3d import Shapes3DDataset
from mfcf_datasets.splits import paper_split



@pytest.fixture
def small_file(small_shapes3d_file):
    return small_shapes3d_file


def test_decoding_maps_deepminds_floats_to_indices(writers):
    grid = {n: np.arange(s) for n, s in zip(FACTOR_NAMES, (10, 10, 10, 8, 4, 15))}
    raw = writers.raw_labels({n: np.resize(v, 15) for n, v in grid.items()})
    raw[:, 0] *= 1 + 1e-15  # 3.0000000000000004-style products must not shift a class (D16)
    raw[:, 3] -= 1e-12  # a value just below the grid value must not be truncated down
    decoded = decode_shapes3d_labels(raw, "test")
    for name, values in grid.items():
        assert decoded[name].tolist() == np.resize(values, 15).tolist()


@pytest.mark.parametrize("column, value", [(3, 0.78), (5, 31.0), (0, -0.1), (4, np.nan)])
def test_decoding_rejects_values_off_the_grid(writers, column, value):
    raw = writers.raw_labels({n: np.zeros(4, int) for n in FACTOR_NAMES})
    raw[2, column] = value
    with pytest.raises(DataError, match=f"factor '{FACTOR_NAMES[column]}'.*row 2"):
        decode_shapes3d_labels(raw, "test")


def test_paper_subset_sizes_and_split_on_a_full_size_file(tmp_path, writers, build):
    writers.shapes3d(tmp_path / "3dshapes.h5", {}, images=False)  # all 480,000 labels, no pixels
    state = np.random.get_state()[1].copy()
    config1 = build(Shapes3DDataset, seed=3, root=str(tmp_path))
    assert dict(config1.info.factors) == {"floor_hue": 10, "scale": 8, "shape": 4, "orientation": 15}
    train, test = config1.load("train"), config1.load("test")
    assert (len(train), len(test)) == (3840, 960)
    assert np.array_equal(np.random.get_state()[1], state)  # no global seeding (D17)
    # the official split: np.random.seed(seed); np.random.choice(4800, 3840, replace=False)
    legacy = np.random.RandomState(3).choice(4800, 3840, replace=False)
    rows = config1.split_rows["train"]
    subset = np.flatnonzero((np.arange(480000) // 480 % 10 == 6) & (np.arange(480000) // 4800 % 10 == 5))
    assert np.array_equal(rows, np.sort(subset[legacy]))
    assert torch.equal(torch.bincount(train.factors["floor_hue"]) + torch.bincount(test.factors["floor_hue"]),
                       torch.full((10,), 480))
    config2 = build(Shapes3DDataset, seed=2, root=str(tmp_path), floor_hue=[0], wall_hue=None)
    assert list(config2.info.factors) == ["wall_hue", "scale", "shape", "orientation"]
    assert len(config2.load("test")) == 960


def test_loads_selected_images_with_exact_labels_and_resizes(small_file, build):
    path, indices = small_file
    ds = build(Shapes3DDataset, root=str(path.parent.parent), wall_hue=[5], scale=[7], image_size=64,
                orientation=[0, 7, 14])
    assert dict(ds.info.factors) == {"floor_hue": 10, "shape": 4, "orientation": 3}
    train, test = ds.load("train"), ds.load("test")
    assert len(train) + len(test) == 10 * 4 * 3 and len(test) == 24
    with h5py.File(path) as h5:
        pixels, raw = h5["images"][:], h5["labels"][:]
    rows = ds.split_rows["test"]
    assert torch.equal(test.images, torch.from_numpy(pixels[rows]).permute(0, 3, 1, 2).float() / 255)
    assert test.factors["floor_hue"].tolist() == np.rint(raw[rows, 0] * 10).astype(int).tolist()
    # orientation indices {0, 7, 14} become labels 0, 1, 2 (positions in the allowed set)
    assert test.factors["orientation"].tolist() == (np.rint((raw[rows, 5] + 30) / (60 / 14)) / 7).astype(int).tolist()
    small = build(Shapes3DDataset, root=str(path.parent.parent), wall_hue=[5], scale=[7],
                  orientation=[0, 7, 14]).load("test")
    assert small.images.shape == (24, 3, 32, 32)
    block_means = test.images.unfold(2, 2, 2).unfold(3, 2, 2).mean(dim=(-1, -2))  # 2x2 averages
    assert (small.images - block_means).abs().max() <= 1 / 255 + 1e-6


def test_labels_option_orders_the_factors(small_file, build):
    path, _ = small_file
    ds = build(Shapes3DDataset, root=str(path.parent), labels=["shape", "wall_hue"], wall_hue=None, scale=None,
               orientation=None)
    assert list(ds.info.factors) == ["shape", "wall_hue"] and ds.info.factors["wall_hue"] == 10
    assert list(ds.load("test").factors) == ["shape", "wall_hue"]
    with pytest.raises(DataError, match="no image with the selected factor values"):
        build(Shapes3DDataset, root=str(path.parent), wall_hue=[0]).load("test")  # not in the small file


def test_max_images_subsamples_before_the_split(small_file, build):
    path, _ = small_file
    ds = build(Shapes3DDataset, root=str(path.parent), wall_hue=None, scale=None, max_images=100)
    assert (len(ds.load("train")), len(ds.load("test"))) == (80, 20)


def test_config_errors_name_the_key(build):
    with pytest.raises(ConfigError, match=r"out of range: floor_hue has 10 values.*data.floor_hue"):
        build(Shapes3DDataset, floor_hue=[3, 10])
    with pytest.raises(ConfigError, match="data.labels"):
        build(Shapes3DDataset, labels=["wall_hue"])  # held at {5} by default
    with pytest.raises(ConfigError, match="data.image_size"):
        build(Shapes3DDataset, image_size=128)


def test_missing_truncated_and_malformed_files(tmp_path, small_file, writers, build):
    with pytest.raises(DataError, match=r"3dshapes.h5(.|\n)*storage.googleapis.com/3d-shapes(.|\n)*data.root"):
        build(Shapes3DDataset, root=str(tmp_path))
    path, _ = small_file
    cut = tmp_path / "cut" / "3dshapes.h5"
    cut.parent.mkdir()
    cut.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(DataError, match="truncated or corrupt"):
        ds = build(Shapes3DDataset, root=str(cut.parent), wall_hue=None, scale=None)
        ds.load("train")
    with h5py.File(tmp_path / "bad.h5", "w") as h5:
        h5["images"] = np.zeros((3, 64, 64, 3), np.uint8)
        h5["labels"] = np.zeros((2, 6))
    with pytest.raises(DataError, match=r"'labels' is float64 \(2, 6\), expected floats \(3, 6\)"):
        build(Shapes3DDataset, root=str(tmp_path), file="bad.h5")
    with h5py.File(tmp_path / "bad.h5", "w") as h5:
        h5["images"] = np.zeros((3, 32, 32, 3), np.uint8)
    with pytest.raises(DataError, match="no dataset 'labels'"):
        build(Shapes3DDataset, root=str(tmp_path), file="bad.h5")


def test_paper_split_matches_global_numpy_seeding():
    state = np.random.get_state()
    np.random.seed(7)
    expected = np.sort(np.random.choice(100, 80, replace=False))
    np.random.set_state(state)
    assert np.array_equal(paper_split(100, 0.2, 7)["train"], expected)
    split = paper_split(4800, 0.2, 0)
    assert len(split["train"]) == 3840 and len(np.union1d(split["train"], split["test"])) == 4800


def test_a_full_size_file_must_hold_every_combination_once(tmp_path, writers, build):
    path = tmp_path / "3dshapes.h5"
    writers.shapes3d(path, {}, images=False)
    with h5py.File(path, "r+") as h5:
        h5["labels"][7] = h5["labels"][8]  # one combination twice, another missing
    with pytest.raises(DataError, match="1 of the 480000 factor combinations have no image"):
        build(Shapes3DDataset, root=str(tmp_path)).load("test")


def test_a_selection_too_small_to_split_is_an_error(small_file, build):
    path, _ = small_file
    one = {n: [0] for n in ("floor_hue", "scale", "orientation")}
    ds = build(Shapes3DDataset, root=str(path.parent), wall_hue=[4], shape=[0, 1], test_fraction=0.9, **one)
    with pytest.raises(DataError, match="holds only 2 images"):
        ds.load("train")
    with pytest.raises(ConfigError, match="let at least one factor vary"):
        build(Shapes3DDataset, root=str(path.parent), wall_hue=[4], shape=[0], **one)
