"""MNIST and Fashion-MNIST from their IDX files (plain or ``.gz``)."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import ClassVar, Optional

import torch

from mfcf.api import DataInfo, Dataset, DataSplit

from .arrays import check_array, check_labels, to_unit_float
from .files import debian_package_dirs, find_files, search_dirs
from .idx import read_idx

#: split -> (images file, labels file), without the optional ``.gz``.
IDX_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}


@dataclasses.dataclass
class IdxConfig:
    """``root``: folder holding the four IDX files (torchvision's ``<root>/MNIST/raw`` layout
    works too); None searches ``$MFCF_DATA_DIR`` and ``./data``."""

    root: Optional[str] = None


class IdxImageDataset(Dataset):
    """28x28 grey images with one 10-class ``label`` from the four standard IDX files.

    Pixels are ``uint8 / 255`` in [0, 1], no binarisation (as the official MFCVAE code).
    Subclasses set the folder layouts to search and where the files come from.
    """

    Config = IdxConfig
    layouts: ClassVar[tuple[str, ...]] = ("",)
    how_to_get: ClassVar[str] = ""

    def __init__(self, config=None, *, seed: int = 0):
        super().__init__(config, seed=seed)
        names = [name for pair in IDX_FILES.values() for name in pair]
        paths = find_files(self.name, names, self.search_dirs(), self.how_to_get, suffixes=("", ".gz"))
        found = dict(zip(names, paths))
        self.files: dict[str, tuple[Path, Path]] = {
            split: (found[images], found[labels]) for split, (images, labels) in IDX_FILES.items()
        }

    def search_dirs(self) -> list[Path]:
        return search_dirs(self.config.root, self.layouts)

    @property
    def info(self) -> DataInfo:
        return DataInfo(shape=(1, 28, 28), factors={"label": 10}, likelihood_hint="bernoulli")

    def load(self, split: str) -> DataSplit:
        images_path, labels_path = self.files[split]
        images, labels = read_idx(images_path), read_idx(labels_path)
        check_array(images, what=str(images_path), shape=(None, 28, 28), dtype="uint8")
        check_array(labels, what=str(labels_path), shape=(None,), dtype="uint8")
        label = check_labels(labels, what=str(labels_path), n=len(images), n_classes=10)
        return DataSplit(to_unit_float(images[:, None]), {"label": torch.from_numpy(label)})


class MNISTDataset(IdxImageDataset):
    """MNIST (60,000 train / 10,000 test handwritten digits); factor ``label`` (0-9).

    Reads ``train-images-idx3-ubyte``, ``train-labels-idx1-ubyte``, ``t10k-images-idx3-ubyte``
    and ``t10k-labels-idx1-ubyte`` (each plain or ``.gz``) from ``data.root``, its
    ``MNIST/raw`` (torchvision's layout) or ``mnist`` sub-folder.
    """

    name = "mnist"
    layouts = ("", "MNIST/raw", "mnist", "MNIST")
    how_to_get = (
        "the four MNIST IDX files (train-images-idx3-ubyte.gz, train-labels-idx1-ubyte.gz,\n"
        "    t10k-images-idx3-ubyte.gz, t10k-labels-idx1-ubyte.gz) from https://yann.lecun.com/exdb/mnist/ or\n"
        "    the mirror https://ossci-datasets.s3.amazonaws.com/mnist/, or on a machine with internet run\n"
        "    torchvision.datasets.MNIST('<root>', download=True) and use the files in <root>/MNIST/raw"
    )


class FashionMNISTDataset(IdxImageDataset):
    """Fashion-MNIST (60,000 / 10,000 clothing images); factor ``label`` (10 article classes).

    Without ``data.root`` it searches the sub-folders of ``$MFCF_DATA_DIR`` and ``./data`` (not
    those folders themselves, where MNIST's files of the same names may lie), then the folder of
    the Debian package ``dataset-fashion-mnist`` (``/usr/share/datasets/fashion-mnist``), so
    ``apt-get install dataset-fashion-mnist`` is enough.
    """

    name = "fashion_mnist"
    layouts = ("", "FashionMNIST/raw", "fashion-mnist", "fashion_mnist", "FashionMNIST")
    debian_package = "dataset-fashion-mnist"
    debian_fallback = "/usr/share/datasets/fashion-mnist"
    how_to_get = (
        "`apt-get install dataset-fashion-mnist` (Debian/Ubuntu), or the four IDX files from\n"
        "    https://github.com/zalandoresearch/fashion-mnist (data/fashion), or on a machine with internet run\n"
        "    torchvision.datasets.FashionMNIST('<root>', download=True) and use the files in\n"
        "    <root>/FashionMNIST/raw"
    )

    def search_dirs(self) -> list[Path]:
        system = debian_package_dirs(self.debian_package, self.debian_fallback)
        # MNIST's files have the same names and often lie directly in ./data: in a shared folder
        # ($MFCF_DATA_DIR, ./data) only Fashion-MNIST's own sub-folders are searched
        layouts = self.layouts if self.config.root is not None else [layout for layout in self.layouts if layout]
        return search_dirs(self.config.root, layouts, extra=system)
