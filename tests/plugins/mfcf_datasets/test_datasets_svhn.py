"""`svhn` on small .mat files in SVHN's real layout (X: 32x32x3xN uint8, y: Nx1 with 10 for 0)."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.io
import torch

from mfcf.errors import DataError
from mfcf_datasets.svhn import SVHNDataset


def test_svhn_loads_images_channels_first_and_maps_label_10_to_0(tmp_path, writers, build):
    written = writers.svhn(tmp_path / "svhn")
    ds = build(SVHNDataset, root=str(tmp_path))
    assert ds.info.shape == (3, 32, 32) and ds.info.likelihood_hint == "gaussian"
    for split in ("train", "test"):
        data = ds.load(split)
        assert data.images.dtype == torch.float32
        assert torch.equal(data.images, torch.from_numpy(written[f"{split}_images"]).float() / 255)
        assert data.factors["label"].tolist() == written[f"{split}_labels"].tolist()
    assert 0 in ds.load("train").factors["label"].tolist()


def test_svhn_pixel_layout_is_channel_row_column(tmp_path, build):
    x = np.zeros((32, 32, 3, 1), np.uint8)
    x[5, 9, 2, 0] = 200  # row 5, column 9, blue
    for split in ("train", "test"):
        scipy.io.savemat(tmp_path / f"{split}_32x32.mat", {"X": x, "y": np.array([[10]], np.uint8)})
    data = build(SVHNDataset, root=str(tmp_path)).load("test")
    assert data.images[0, 2, 5, 9] == pytest.approx(200 / 255) and data.images.sum() == pytest.approx(200 / 255)
    assert data.factors["label"].tolist() == [0]


def test_svhn_missing_truncated_and_malformed_files(tmp_path, writers, build):
    with pytest.raises(DataError, match=r"train_32x32.mat(.|\n)*ufldl.stanford.edu(.|\n)*data.root"):
        build(SVHNDataset, root=str(tmp_path))
    writers.svhn(tmp_path)
    path = tmp_path / "test_32x32.mat"
    path.write_bytes(path.read_bytes()[:5000])
    with pytest.raises(DataError, match="test_32x32.mat cannot be read as a MATLAB file"):
        build(SVHNDataset, root=str(tmp_path)).load("test")
    scipy.io.savemat(path, {"X": np.zeros((32, 32, 3, 4), np.uint8), "y": np.array([[1], [2], [11], [3]])})
    with pytest.raises(DataError, match=r"variable y holds labels outside 1..10 \(for example \[11\]\)"):
        build(SVHNDataset, root=str(tmp_path)).load("test")
    scipy.io.savemat(path, {"X": np.zeros((28, 28, 3, 4), np.uint8), "y": np.ones((4, 1))})
    with pytest.raises(DataError, match=r"shape \(28, 28, 3, 4\), expected \(32, 32, 3, N\)"):
        build(SVHNDataset, root=str(tmp_path)).load("test")
    scipy.io.savemat(path, {"X": np.zeros((32, 32, 3, 4), np.uint8), "y": np.ones((3, 1))})
    with pytest.raises(DataError, match="holds 3 labels for 4 images"):
        build(SVHNDataset, root=str(tmp_path)).load("test")
