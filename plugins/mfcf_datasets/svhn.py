"""SVHN (Street View House Numbers, cropped digits) from its MATLAB files."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Optional

import numpy as np
import torch

from mfcf.api import DataInfo, Dataset, DataSplit
from mfcf.errors import DataError

from .arrays import check_array, check_labels, to_unit_float
from .files import find_files, search_dirs

MAT_FILES = {"train": "train_32x32.mat", "test": "test_32x32.mat"}


@dataclasses.dataclass
class SVHNConfig:
    """``root``: folder holding ``train_32x32.mat`` and ``test_32x32.mat`` (torchvision's
    layout); None searches ``$MFCF_DATA_DIR`` and ``./data``."""

    root: Optional[str] = None


class SVHNDataset(Dataset):
    """SVHN cropped digits: 73,257 train / 26,032 test colour images (3, 32, 32) in [0, 1].

    Factor ``label`` (0-9; the files' label 10 is the digit 0, mapped to 0 as torchvision does).
    The ``extra`` split is not used (as in the MFCVAE paper). Hint ``gaussian``.
    """

    name = "svhn"
    Config = SVHNConfig
    layouts = ("", "svhn", "SVHN")
    how_to_get = (
        "train_32x32.mat and test_32x32.mat from http://ufldl.stanford.edu/housenumbers/ (format 2, cropped\n"
        "    digits), or on a machine with internet run torchvision.datasets.SVHN('<root>', split=..., download=True)"
    )

    def __init__(self, config=None, *, seed: int = 0):
        super().__init__(config, seed=seed)
        dirs = search_dirs(self.config.root, self.layouts)
        paths = find_files(self.name, list(MAT_FILES.values()), dirs, self.how_to_get)
        self.files: dict[str, Path] = dict(zip(MAT_FILES, paths))

    @property
    def info(self) -> DataInfo:
        return DataInfo(shape=(3, 32, 32), factors={"label": 10}, likelihood_hint="gaussian")

    def load(self, split: str) -> DataSplit:
        import scipy.io  # imported on use, to keep plugin discovery fast

        path = self.files[split]
        try:
            mat = scipy.io.loadmat(path, variable_names=("X", "y"))
        except Exception as exc:  # scipy raises ValueError, TypeError, OSError, MatReadError, ...
            raise DataError(f"{path} cannot be read as a MATLAB file ({type(exc).__name__}: {exc}); "
                            "it is truncated or corrupt, fetch it again") from None
        for key in ("X", "y"):
            if key not in mat:
                raise DataError(f"{path} holds no variable '{key}'; it is not an SVHN cropped-digits file")
        pixels, raw_labels = mat["X"], np.asarray(mat["y"]).reshape(-1)
        check_array(pixels, what=f"{path} variable X", shape=(32, 32, 3, None), dtype="uint8")
        # the files label digits 1..10, where 10 is the digit 0: check 1..10, then map 10 -> 0
        shifted = check_labels(raw_labels, what=f"{path} variable y", n=pixels.shape[-1], n_classes=10, first=1)
        labels = (shifted + 1) % 10
        images = to_unit_float(np.transpose(pixels, (3, 2, 0, 1)))
        return DataSplit(images, {"label": torch.from_numpy(labels)})
