"""Datasets: images plus named integer factor labels."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Literal

import torch
from torch import Tensor

from .component import Component

Split = Literal["train", "test"]


@dataclasses.dataclass(frozen=True)
class DataInfo:
    """What a model needs to know about a dataset before seeing it.

    * ``shape`` -- one example, channels first: ``(1, 28, 28)``, ``(3, 32, 32)``;
    * ``factors`` -- every labelled factor and its number of classes, in a stable order:
      ``{'label': 10}`` for MNIST, ``{'floor_hue': 10, 'shape': 4, ...}`` for shapes;
    * ``likelihood_hint`` -- ``'bernoulli'`` for grey images in [0, 1] that look binary,
      ``'gaussian'`` for continuous colour;
    * ``value_range`` -- the closed range every pixel lies in.
    """

    shape: tuple[int, ...]
    factors: Mapping[str, int]
    likelihood_hint: Literal["bernoulli", "gaussian"] = "gaussian"
    value_range: tuple[float, float] = (0.0, 1.0)


@dataclasses.dataclass
class DataSplit:
    """One split held as tensors: ``images`` float32 (N, *shape), ``factors[name]`` int64 (N,)."""

    images: Tensor
    factors: dict[str, Tensor]

    def __post_init__(self) -> None:
        for name, labels in self.factors.items():
            if labels.shape != (len(self.images),):
                raise ValueError(f"factor {name!r} has shape {tuple(labels.shape)}, expected ({len(self.images)},)")

    def __len__(self) -> int:
        return len(self.images)

    def to(self, device: torch.device | str) -> DataSplit:
        return DataSplit(self.images.to(device), {k: v.to(device) for k, v in self.factors.items()})

    def subset(self, index: Tensor) -> DataSplit:
        return DataSplit(self.images[index], {k: v[index] for k, v in self.factors.items()})


class Dataset(Component):
    """A source of labelled images with fixed train and test splits.

    Constructed as ``MyDataset(config, seed=split_seed)``; ``seed`` drives anything random in
    building the splits (a subset, a procedural renderer) so a different training seed never
    changes the test set. ``info`` must be available without loading the data, and
    ``__init__`` must fail with :class:`mfcf.errors.DataError` naming the missing file, where to
    get it and where to put it, before any training starts. A validation split is carved out of
    ``train`` by mfcf itself (``data.val_fraction``), stratified on the first factor.

    Example::

        class Digits(Dataset):
            name = "digits"

            @property
            def info(self):
                return DataInfo(shape=(1, 8, 8), factors={"label": 10})

            def load(self, split):
                ...
                return DataSplit(images, {"label": labels})
    """

    kind = "dataset"

    def __init__(self, config=None, *, seed: int = 0):
        super().__init__(config)
        self.seed = seed

    @property
    def info(self) -> DataInfo:
        raise NotImplementedError

    def load(self, split: Split) -> DataSplit:
        """Return the whole split as CPU tensors (float32 images in ``info.value_range``)."""
        raise NotImplementedError
