"""``shapes3d``: DeepMind's 3dshapes.h5, subset by factor values and resized as in the paper."""

from __future__ import annotations

import dataclasses
import functools
from pathlib import Path
from typing import Optional

import h5py
import numpy as np
import torch

from mfcf.api import DataInfo, Dataset, DataSplit
from mfcf.config import positive
from mfcf.errors import ConfigError, DataError

from .arrays import resize_uint8, to_unit_float
from .factors import FACTOR_NAMES, SHAPES3D_SIZES, FactorSelection, check_selection, decode_shapes3d_labels
from .files import find_files, search_dirs
from .splits import paper_split

FULL_SIZE = 480_000  # images in the complete file: the product of SHAPES3D_SIZES


@dataclasses.dataclass
class Shapes3DConfig:
    """Options of ``shapes3d``.

    Factor selection as in ``shapes_procedural``: one key per factor, ``null`` for all its
    values or a list of value indices. The defaults are the paper's configuration 1 (floor hue
    0-9, wall hue {5}, object hue {6}, every scale, shape and orientation: 4,800 images);
    configuration 2 is ``floor_hue: [0], wall_hue: null``.

    * ``root``/``file`` -- where ``3dshapes.h5`` is (None searches ``$MFCF_DATA_DIR``, ``./data``);
    * ``image_size`` -- 32 (paper: bilinear from 64) or 64 (as stored);
    * ``sampling`` -- ``grid`` only: the file holds every factor combination once, and the
      selected ones are split as the paper split them (accepted so that a config keeps its
      meaning when ``data.name`` switches to ``shapes_procedural``, whose default is ``random``);
    * ``test_fraction`` -- the paper's random 80/20 split of the selected images;
    * ``max_images`` -- keep a random subset of this many selected images (before splitting),
      for large selections: all 480,000 images at 32x32 are 5.9 GB as float32;
    * ``labels`` -- the label factors, in order (default: every varying factor).
    """

    root: Optional[str] = None
    file: str = "3dshapes.h5"
    image_size: int = 32
    floor_hue: Optional[list[int]] = None
    wall_hue: Optional[list[int]] = dataclasses.field(default_factory=lambda: [5])
    object_hue: Optional[list[int]] = dataclasses.field(default_factory=lambda: [6])
    scale: Optional[list[int]] = None
    shape: Optional[list[int]] = None
    orientation: Optional[list[int]] = None
    labels: Optional[list[str]] = None
    sampling: str = "grid"
    test_fraction: float = 0.2
    max_images: Optional[int] = None

    def __post_init__(self) -> None:
        positive(self.image_size, "image_size")
        if self.image_size > 64:
            raise ConfigError(f"3dshapes.h5 stores 64x64 images; got {self.image_size}", key="image_size")
        if self.sampling != "grid":
            raise ConfigError(f"must be grid: 3dshapes.h5 holds every factor combination once, so its images "
                              f"cannot be drawn at random (got {self.sampling!r}); drop the key", key="sampling")
        if not 0.0 < self.test_fraction < 1.0:
            raise ConfigError(f"must lie strictly between 0 and 1, got {self.test_fraction}", key="test_fraction")
        positive(self.max_images, "max_images", allow_none=True)
        check_selection(self, SHAPES3D_SIZES)


def read_rows(dataset: h5py.Dataset, rows: np.ndarray) -> np.ndarray:
    """``dataset[rows]`` for sorted ``rows``, read as contiguous runs (h5py's fancy indexing is slow)."""
    out = np.empty((len(rows), *dataset.shape[1:]), dtype=dataset.dtype)
    breaks = np.flatnonzero(np.diff(rows) != 1) + 1
    for start, stop in zip(np.r_[0, breaks], np.r_[breaks, len(rows)]):
        dataset.read_direct(out, np.s_[rows[start]:rows[stop - 1] + 1], np.s_[start:stop])
    return out


class Shapes3DDataset(Dataset):
    """DeepMind's 3DShapes (``3dshapes.h5``, 480,000 RGB 64x64 images, six factors).

    Factors: ``floor_hue`` (10), ``wall_hue`` (10), ``object_hue`` (10), ``scale`` (8),
    ``shape`` (4), ``orientation`` (15); labels decoded from the file's floats with ``np.rint``
    and checked against the 3DShapes grid (defect D16). The selected images (in file order) are
    split with ``RandomState(split_seed).choice`` exactly as the official code split them, but
    without touching global RNG state (D17); images are resized with bilinear interpolation.
    """

    name = "shapes3d"
    Config = Shapes3DConfig
    layouts = ("", "3dshapes", "shapes3d", "3d-shapes")
    how_to_get = ("3dshapes.h5 from https://storage.googleapis.com/3d-shapes/3dshapes.h5\n"
                  "    (see https://github.com/google-deepmind/3d-shapes)")

    def __init__(self, config=None, *, seed: int = 0):
        super().__init__(config, seed=seed)
        self.selection = FactorSelection.from_config(self.config, SHAPES3D_SIZES)
        dirs = search_dirs(self.config.root, self.layouts)
        self.path: Path = find_files(self.name, [self.config.file], dirs, self.how_to_get)[0]
        with self._open() as h5:
            self._check_layout(h5)

    def _open(self) -> h5py.File:
        try:
            return h5py.File(self.path, "r")
        except OSError as exc:
            raise DataError(f"{self.path} cannot be opened as HDF5 ({exc}); it is truncated or corrupt, "
                            "fetch it again") from None

    def _check_layout(self, h5: h5py.File) -> None:
        for key in ("images", "labels"):
            if not isinstance(h5.get(key), h5py.Dataset):
                holds = f"'{key}' is a {type(h5[key]).__name__}" if key in h5 else f"it holds {sorted(h5)}"
                raise DataError(f"{self.path} has no dataset '{key}' ({holds}); not a 3dshapes.h5 file")
        images, labels = h5["images"], h5["labels"]
        if images.ndim != 4 or images.shape[1:] != (64, 64, 3) or images.dtype != np.uint8:
            raise DataError(f"{self.path}: 'images' is {images.dtype} {images.shape}, expected uint8 (N, 64, 64, 3)")
        if labels.shape != (images.shape[0], 6) or labels.dtype.kind != "f":
            raise DataError(f"{self.path}: 'labels' is {labels.dtype} {labels.shape}, "
                            f"expected floats ({images.shape[0]}, 6), one row per image")

    @property
    def info(self) -> DataInfo:
        size = self.config.image_size
        return DataInfo(shape=(3, size, size), factors=self.selection.label_sizes, likelihood_hint="gaussian")

    @functools.cached_property
    def factor_indices(self) -> dict[str, np.ndarray]:
        """Value index of every factor for every row of the file (decoded once)."""
        with self._open() as h5:
            try:
                raw = h5["labels"][:]
            except OSError as exc:
                raise DataError(f"{self.path}: reading 'labels' failed ({exc}); the file is truncated or corrupt") from None
        indices = decode_shapes3d_labels(raw, str(self.path))
        if len(raw) == FULL_SIZE:
            self._check_full_grid(indices)
        return indices

    @functools.cached_property
    def split_rows(self) -> dict[str, np.ndarray]:
        """File rows (sorted) of each split: the selected rows, optionally subsampled, split 80/20."""
        rows = np.flatnonzero(self.selection.contains(self.factor_indices))
        if len(rows) == 0:
            raise DataError(f"{self.path} holds no image with the selected factor values "
                            f"{dict(self.selection.allowed)}; check the factor keys of data:")
        if self.config.max_images is not None and self.config.max_images < len(rows):
            rng = np.random.default_rng(np.random.SeedSequence(self.seed, spawn_key=(2,)))
            rows = np.sort(rng.choice(rows, self.config.max_images, replace=False))
        parts = {split: rows[at] for split, at in paper_split(len(rows), self.config.test_fraction, self.seed).items()}
        if not all(len(part) for part in parts.values()):
            raise DataError(f"the selection holds only {len(rows)} images of {self.path}: too few for a train and a "
                            f"test split with test_fraction {self.config.test_fraction}; allow more factor values")
        return parts

    def _check_full_grid(self, indices: dict[str, np.ndarray]) -> None:
        """The complete file holds every combination of factor values exactly once."""
        flat = np.ravel_multi_index([indices[n] for n in FACTOR_NAMES], [SHAPES3D_SIZES[n] for n in FACTOR_NAMES])
        missing = int((np.bincount(flat, minlength=FULL_SIZE) == 0).sum())
        if missing:
            raise DataError(f"{self.path}: {missing} of the {FULL_SIZE} factor combinations have no image "
                            "(others appear twice); the labels are corrupt, fetch the file again")

    def load(self, split: str) -> DataSplit:
        rows = self.split_rows[split]
        with self._open() as h5:
            try:
                pixels = read_rows(h5["images"], rows)
            except OSError as exc:
                raise DataError(f"{self.path}: reading 'images' failed ({exc}); the file is truncated or corrupt") from None
        images = resize_uint8(torch.from_numpy(pixels).permute(0, 3, 1, 2), self.config.image_size)
        indices = {name: values[rows] for name, values in self.factor_indices.items()}
        return DataSplit(to_unit_float(images), self.selection.label_tensors(indices))
