"""IDX reading, `mnist` on real digits written as IDX files, `fashion_mnist` on the Debian files."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pytest
import torch

from mfcf.errors import DataError
from mfcf_datasets.idx import read_idx
from mfcf_datasets.mnist import FashionMNISTDataset, MNISTDataset

FASHION_DIR = Path("/usr/share/datasets/fashion-mnist")


@pytest.mark.parametrize("suffix", ["", ".gz"])
@pytest.mark.parametrize("dtype", ["uint8", "int32", "float32"])
def test_read_idx_round_trips(tmp_path, writers, suffix, dtype):
    array = (np.arange(2 * 3 * 5).reshape(2, 3, 5) * 7 - 20).astype(dtype) if dtype != "uint8" \
        else np.arange(30, dtype=np.uint8).reshape(2, 3, 5)
    back = read_idx(writers.idx(tmp_path / f"a{suffix}", array))
    assert back.shape == (2, 3, 5) and np.array_equal(back, array)


def test_read_idx_rejects_truncated_payload(tmp_path, writers):
    path = writers.idx(tmp_path / "images", np.zeros((4, 28, 28), np.uint8))
    path.write_bytes(path.read_bytes()[:-100])
    with pytest.raises(DataError, match=r"truncated or corrupt.*shape \(4, 28, 28\)"):
        read_idx(path)


def test_read_idx_rejects_truncated_header_bad_magic_and_cut_gzip(tmp_path, writers):
    path = tmp_path / "x"
    path.write_bytes(b"\0\0\x08\x03\0\0")
    with pytest.raises(DataError, match="ends inside its 16-byte header"):
        read_idx(path)
    path.write_bytes(b"<html>not found</html>")
    with pytest.raises(DataError, match="not an IDX file"):
        read_idx(path)
    gz = writers.idx(tmp_path / "y.gz", np.zeros((50, 28, 28), np.uint8))
    gz.write_bytes(gz.read_bytes()[:40])
    with pytest.raises(DataError, match="not a complete gzip file"):
        read_idx(gz)


@pytest.mark.parametrize("layout, gz", [("", False), ("", True), ("MNIST/raw", True), ("mnist", False)])
def test_mnist_loads_real_digits_from_each_layout(tmp_path, writers, build, layout, gz):
    written = writers.mnist(tmp_path / "root" / layout, gz=gz)
    ds = build(MNISTDataset, root=str(tmp_path / "root"))
    assert ds.info.shape == (1, 28, 28) and dict(ds.info.factors) == {"label": 10}
    assert ds.info.likelihood_hint == "bernoulli"
    for split in ("train", "test"):
        data = ds.load(split)
        assert data.images.dtype == torch.float32 and data.images.shape == (len(written[f"{split}_labels"]), 1, 28, 28)
        assert torch.equal(data.images[:, 0], torch.from_numpy(written[f"{split}_images"]).float() / 255)
        assert data.factors["label"].dtype == torch.int64
        assert data.factors["label"].tolist() == written[f"{split}_labels"].tolist()


def test_mnist_searches_data_folder_by_default(tmp_path, writers, build):
    writers.mnist(tmp_path / "data" / "MNIST" / "raw")  # conftest runs each test in tmp_path
    assert len(build(MNISTDataset).load("test")) == 30


def test_mnist_missing_files_say_what_where_and_how(tmp_path, writers, build):
    folder = tmp_path / "partial"
    writers.mnist(folder)
    (folder / "t10k-labels-idx1-ubyte").unlink()
    with pytest.raises(DataError) as err:
        build(MNISTDataset, root=str(folder))
    text = str(err.value)
    assert "t10k-labels-idx1-ubyte[.gz]" in text and "train-images" not in text.split("looked in")[0]
    assert str(folder) in text and "data.root" in text
    assert "yann.lecun.com" in text and "download=True" in text


def test_mnist_rejects_mismatched_and_out_of_range_labels(tmp_path, writers, build):
    written = writers.mnist(tmp_path)
    writers.idx(tmp_path / "t10k-labels-idx1-ubyte", written["test_labels"][:-1])
    with pytest.raises(DataError, match="holds 29 labels for 30 images"):
        build(MNISTDataset, root=str(tmp_path)).load("test")
    bad = written["test_labels"].copy()
    bad[3] = 11
    writers.idx(tmp_path / "t10k-labels-idx1-ubyte", bad)
    with pytest.raises(DataError, match=r"labels outside 0..9 \(for example \[11\]\)"):
        build(MNISTDataset, root=str(tmp_path)).load("test")


def test_mnist_rejects_images_of_the_wrong_shape_and_a_truncated_gzip(tmp_path, writers, build):
    writers.mnist(tmp_path, gz=True)
    writers.idx(tmp_path / "train-images-idx3-ubyte.gz", np.zeros((80, 32, 32), np.uint8))
    with pytest.raises(DataError, match=r"shape \(80, 32, 32\), expected \(N, 28, 28\)"):
        build(MNISTDataset, root=str(tmp_path)).load("train")
    path = tmp_path / "t10k-images-idx3-ubyte.gz"
    path.write_bytes(path.read_bytes()[: len(path.read_bytes()) // 2])
    with pytest.raises(DataError, match="t10k-images-idx3-ubyte.gz is not a complete gzip file"):
        build(MNISTDataset, root=str(tmp_path)).load("test")


def test_fashion_mnist_uses_root_else_the_debian_package(tmp_path, writers, build):
    writers.mnist(tmp_path / "FashionMNIST" / "raw")
    ds = build(FashionMNISTDataset, root=str(tmp_path))
    assert ds.files["train"][0].parent == tmp_path / "FashionMNIST" / "raw"
    # without root, the Debian package's folder (CI installs dataset-fashion-mnist) ...
    assert build(FashionMNISTDataset).files["test"][0].parent == FASHION_DIR
    # ... but never instead of a root that lacks the files
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="cannot find"):
        build(FashionMNISTDataset, root=str(tmp_path / "empty"))


def test_fashion_mnist_real_files_from_the_debian_package(build):
    ds = build(FashionMNISTDataset)
    train, test = ds.load("train"), ds.load("test")
    assert train.images.shape == (60000, 1, 28, 28) and test.images.shape == (10000, 1, 28, 28)
    assert torch.bincount(train.factors["label"]).tolist() == [6000] * 10
    assert torch.bincount(test.factors["label"]).tolist() == [1000] * 10
    assert train.images.min() == 0.0 and train.images.max() == 1.0
    # pixels are k/255 exactly, as the official code feeds them
    assert torch.equal(train.images[:100] * 255, (train.images[:100] * 255).round())
    with gzip.open(FASHION_DIR / "t10k-labels-idx1-ubyte.gz") as fh:
        assert test.factors["label"][:20].tolist() == list(fh.read()[8:28])
