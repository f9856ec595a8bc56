"""``shapes_procedural``: 3DShapes-like scenes rendered on the fly, exact labels, no files."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Optional

import numpy as np

from mfcf.api import DataInfo, Dataset, DataSplit
from mfcf.config import positive
from mfcf.errors import ConfigError

from .arrays import to_unit_float
from .cache import cache_dir_chosen, cache_key, cached_arrays, default_cache_dir
from .factors import FACTOR_NAMES, FactorSelection, check_selection, factor_values
from .render import render_scenes
from .splits import paper_split, split_rng

#: Bump when the renderer's pixels change, so stale cache files are not reused.
RENDER_VERSION = 2
SAMPLINGS = ("random", "grid")


@dataclasses.dataclass
class ShapesProceduralConfig:
    """Options of ``shapes_procedural``.

    Factor selection -- one key per factor (``floor_hue``, ``wall_hue``, ``object_hue``,
    ``scale``, ``shape``, ``orientation``): ``null`` lets it vary over all its values, a list of
    value indices restricts it (``wall_hue: [5]`` holds the wall at hue 0.5). Factors with two
    or more allowed values are the labels, in that order unless ``labels`` lists them.

    * ``image_size`` -- side in pixels (32 and 64 as 3DShapes; any size >= 16 renders);
    * ``sampling`` -- ``random``: ``n_train``/``n_test`` scenes, factors drawn uniformly and
      independently per image; ``grid``: every allowed combination once, split
      ``1 - test_fraction`` / ``test_fraction`` as the paper split 3DShapes;
    * ``n_hues``, ``n_scales``, ``n_orientations`` -- values per factor (3DShapes: 10, 8, 15;
      4 shapes); more values make harder tasks;
    * ``shading`` -- shade the object (value only; hue stays exact);
    * ``cache``/``cache_dir`` -- keep rendered arrays on disk (default ``$MFCF_CACHE_DIR`` or
      ``~/.cache/mfcf``), keyed by every option and the split seed. A chosen folder that cannot
      be written is an error; the default one only a warning (the run goes on uncached).
    """

    image_size: int = 32
    sampling: str = "random"
    n_train: int = 50_000
    n_test: int = 10_000
    test_fraction: float = 0.2
    floor_hue: Optional[list[int]] = None
    wall_hue: Optional[list[int]] = None
    object_hue: Optional[list[int]] = None
    scale: Optional[list[int]] = None
    shape: Optional[list[int]] = None
    orientation: Optional[list[int]] = None
    labels: Optional[list[str]] = None
    n_hues: int = 10
    n_scales: int = 8
    n_orientations: int = 15
    shading: bool = True
    cache: bool = True
    cache_dir: Optional[str] = None

    def __post_init__(self) -> None:
        if self.image_size < 16:
            raise ConfigError(f"must be at least 16 pixels, got {self.image_size}", key="image_size")
        if self.sampling not in SAMPLINGS:
            raise ConfigError(f"must be one of {', '.join(SAMPLINGS)}, got {self.sampling!r}", key="sampling")
        for key in ("n_train", "n_test", "n_hues", "n_scales", "n_orientations"):
            positive(getattr(self, key), key)
        if not 0.0 < self.test_fraction < 1.0:
            raise ConfigError(f"must lie strictly between 0 and 1, got {self.test_fraction}", key="test_fraction")
        check_selection(self, self.sizes)

    @property
    def sizes(self) -> dict[str, int]:
        """Number of values of each factor."""
        hues = self.n_hues
        return {"floor_hue": hues, "wall_hue": hues, "object_hue": hues, "scale": self.n_scales,
                "shape": 4, "orientation": self.n_orientations}


class ShapesProceduralDataset(Dataset):
    """3DShapes-like scenes drawn by :mod:`mfcf_datasets.render`: RGB (3, S, S) in [0, 1].

    Factors (3DShapes names and default value counts): ``floor_hue`` (10), ``wall_hue`` (10),
    ``object_hue`` (10), ``scale`` (8), ``shape`` (4: cube, cylinder, sphere, capsule),
    ``orientation`` (15). Labels are exact: each image is a pure function of its factors.
    Deterministic given the split seed; train and test use independent generators.

    The paper's 3DShapes configuration 1 (floor hue and shape as the facets)::

        data: {name: shapes_procedural, sampling: grid, wall_hue: [5], object_hue: [6]}
    """

    name = "shapes_procedural"
    Config = ShapesProceduralConfig

    def __init__(self, config=None, *, seed: int = 0):
        super().__init__(config, seed=seed)
        self.selection = FactorSelection.from_config(self.config, self.config.sizes)

    @property
    def info(self) -> DataInfo:
        size = self.config.image_size
        return DataInfo(shape=(3, size, size), factors=self.selection.label_sizes, likelihood_hint="gaussian")

    def factor_indices(self, split: str) -> dict[str, np.ndarray]:
        """Value index of every factor for every image of ``split``."""
        if self.config.sampling == "random":
            n = self.config.n_train if split == "train" else self.config.n_test
            return self.selection.sample(n, split_rng(self.seed, split))
        grid = self.selection.grid()
        rows = paper_split(len(grid[FACTOR_NAMES[0]]), self.config.test_fraction, self.seed)[split]
        return {name: values[rows] for name, values in grid.items()}

    def render(self, indices: dict[str, np.ndarray]):
        """uint8 images (N, 3, S, S) of the scenes with these factor value indices."""
        sizes = self.config.sizes
        values = {name: factor_values(name, sizes[name])[indices[name]] for name in FACTOR_NAMES}
        return render_scenes(**values, image_size=self.config.image_size, shading=self.config.shading)

    def cache_path(self, split: str) -> Path:
        """Cache file of ``split``: named by a hash of every option that changes its pixels."""
        params = {k: v for k, v in dataclasses.asdict(self.config).items() if k not in ("cache", "cache_dir")}
        key = cache_key({"version": RENDER_VERSION, "seed": self.seed, "split": split, **params})
        return default_cache_dir(self.config.cache_dir) / self.name / f"{split}-{key}.npz"

    def load(self, split: str) -> DataSplit:
        indices = self.factor_indices(split)
        if not self.config.cache:
            images = self.render(indices)
        else:
            def matches(stored: dict[str, np.ndarray]) -> bool:  # guards against a stale or foreign file
                return (stored["images"].shape == (len(indices["shape"]), *self.info.shape)
                        and stored["images"].dtype == np.uint8
                        and all(np.array_equal(stored[name], indices[name]) for name in FACTOR_NAMES))

            make = lambda: {"images": self.render(indices).numpy(), **indices}  # noqa: E731
            optional = not cache_dir_chosen(self.config.cache_dir)  # the default folder may not be writable
            images = cached_arrays(self.cache_path(split), make, matches, optional=optional)["images"]
        return DataSplit(to_unit_float(images), self.selection.label_tensors(indices))
