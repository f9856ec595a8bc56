"""The six 3DShapes factors: their values, which of them a config selects, and label decoding.

A factor's *value index* ``k`` names one of its discrete values (floor hue ``k / 10``, scale
``0.75 + 0.5 k / 7``, ...). A selection allows a set of indices per factor; the factors it lets
vary (two or more allowed values) become the labels, each relabelled to its position in the
sorted allowed set so a factor with ``m`` allowed values has labels ``0 .. m-1``.
"""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Mapping, Sequence
from typing import Optional

import numpy as np
import torch

from mfcf.errors import ConfigError, DataError

FACTOR_NAMES = ("floor_hue", "wall_hue", "object_hue", "scale", "shape", "orientation")
SHAPE_NAMES = ("cube", "cylinder", "sphere", "capsule")
#: Number of values of each factor in DeepMind's 3dshapes.h5 (480,000 = their product).
SHAPES3D_SIZES = {"floor_hue": 10, "wall_hue": 10, "object_hue": 10, "scale": 8, "shape": 4, "orientation": 15}


def factor_values(name: str, size: int) -> np.ndarray:
    """The physical values of a factor with ``size`` evenly spaced values (3DShapes' spacing)."""
    ends = {"scale": (0.75, 1.25), "orientation": (-30.0, 30.0)}
    if name.endswith("_hue"):
        return np.arange(size) / size  # evenly spaced in [0, 1)
    if name == "shape":
        return np.arange(size, dtype=np.float64)
    low, high = ends[name]
    return np.linspace(low, high, size) if size > 1 else np.array([(low + high) / 2])


def check_selection(config: object, sizes: Mapping[str, int]) -> None:
    """Validate a config's per-factor ``Optional[list[int]]`` fields and its ``labels`` list."""
    for name in FACTOR_NAMES:
        allowed = getattr(config, name)
        if allowed is None:
            continue
        if not allowed:
            raise ConfigError("an empty list allows no image; give value indices, or null for all values", key=name)
        bad = [k for k in allowed if not 0 <= k < sizes[name]]
        if bad:
            raise ConfigError(f"value indices {bad} are out of range: {name} has {sizes[name]} values, "
                              f"indices 0..{sizes[name] - 1}", key=name)
        if len(set(allowed)) != len(allowed):
            raise ConfigError(f"lists a value index twice: {list(allowed)}", key=name)
    varying = [n for n in FACTOR_NAMES if len(_allowed(config, n, sizes)) > 1]
    if not varying:
        raise ConfigError("every factor is held at one value, so no image differs from another in a labelled "
                          "factor; let at least one factor vary (null or two or more value indices)", key=FACTOR_NAMES[0])
    labels = getattr(config, "labels", None)
    if labels is not None:
        bad = [n for n in labels if n not in varying]
        if bad or len(set(labels)) != len(labels) or not labels:
            raise ConfigError(f"must be a non-empty list of distinct varying factors, from: {', '.join(varying)}; "
                              f"got {list(labels)} (a factor held at one value is not a label)", key="labels")


def _allowed(config: object, name: str, sizes: Mapping[str, int]) -> tuple[int, ...]:
    allowed = getattr(config, name)
    return tuple(range(sizes[name])) if allowed is None else tuple(sorted(allowed))


@dataclasses.dataclass(frozen=True)
class FactorSelection:
    """The allowed value indices of every factor and the label factors, in order."""

    sizes: Mapping[str, int]
    allowed: Mapping[str, tuple[int, ...]]
    labels: tuple[str, ...]

    @classmethod
    def from_config(cls, config: object, sizes: Mapping[str, int]) -> FactorSelection:
        """From a config with one field per factor (None: all values) and ``labels``."""
        allowed = {name: _allowed(config, name, sizes) for name in FACTOR_NAMES}
        labels: Optional[Sequence[str]] = getattr(config, "labels", None)
        if labels is None:
            labels = [name for name in FACTOR_NAMES if len(allowed[name]) > 1]
        return cls(dict(sizes), allowed, tuple(labels))

    @property
    def label_sizes(self) -> dict[str, int]:
        return {name: len(self.allowed[name]) for name in self.labels}

    def grid(self) -> dict[str, np.ndarray]:
        """Every allowed combination once, in row-major factor order (3dshapes.h5's order)."""
        combos = np.array(list(itertools.product(*(self.allowed[n] for n in FACTOR_NAMES))), dtype=np.int64)
        return {name: combos[:, i] for i, name in enumerate(FACTOR_NAMES)}

    def sample(self, n: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
        """``n`` combinations, each factor drawn uniformly and independently from its allowed set."""
        return {name: rng.choice(np.array(self.allowed[name], dtype=np.int64), size=n) for name in FACTOR_NAMES}

    def contains(self, indices: Mapping[str, np.ndarray]) -> np.ndarray:
        """Boolean mask of the rows whose every factor lies in its allowed set."""
        mask = np.ones(len(indices[FACTOR_NAMES[0]]), dtype=bool)
        for name in FACTOR_NAMES:
            mask &= np.isin(indices[name], self.allowed[name])
        return mask

    def label_tensors(self, indices: Mapping[str, np.ndarray]) -> dict[str, torch.Tensor]:
        """Label factors as int64 tensors: positions in each factor's sorted allowed set."""
        return {name: torch.from_numpy(np.searchsorted(self.allowed[name], indices[name]).astype(np.int64))
                for name in self.labels}


def decode_shapes3d_labels(raw: np.ndarray, what: str) -> dict[str, np.ndarray]:
    """3dshapes.h5 ``labels`` (N, 6) floats -> value index per factor (defect D16 fixed).

    Each column is mapped with ``np.rint`` onto the nearest grid value; a value off the grid by
    more than 1% of the grid step, or outside the grid, is a :class:`DataError`.
    """
    out = {}
    for col, name in enumerate(FACTOR_NAMES):
        grid = factor_values(name, SHAPES3D_SIZES[name])
        step = grid[1] - grid[0]
        finite = np.isfinite(raw[:, col])
        index = np.rint(np.where(finite, (raw[:, col] - grid[0]) / step, -1.0))
        inside = finite & (index >= 0) & (index < len(grid))
        clipped = np.clip(index, 0, len(grid) - 1).astype(np.int64)
        bad = ~inside | (np.abs(grid[clipped] - raw[:, col]) > 0.01 * step)
        if bad.any():
            row = int(np.flatnonzero(bad)[0])
            raise DataError(
                f"{what}: {int(bad.sum())} labels of factor '{name}' (column {col}) are not 3DShapes values, "
                f"for example {raw[row, col]!r} in row {row} (expected one of {np.round(grid, 4).tolist()}); "
                "the file is corrupt or not DeepMind's 3dshapes.h5"
            )
        out[name] = clipped
    return out
