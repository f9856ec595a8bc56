"""Small helpers shared by the baseline models."""

from __future__ import annotations

import math

import numpy as np
import torch
from threadpoolctl import threadpool_limits
from torch import Tensor

from mfcf.errors import ConfigError, TrainingError


def resolve_seed(seed: int | None) -> int:
    """``seed`` itself, or the trainer's seed (``torch.initial_seed()``) when it is ``None``."""
    return int(seed) if seed is not None else torch.initial_seed() % 2**32


def as_numpy(images: Tensor, dtype=np.float32) -> np.ndarray:
    """Images (N, *shape) on any device -> flattened (N, P) host array for scikit-learn."""
    return images.detach().flatten(1).cpu().numpy().astype(dtype, copy=False)


def chunks(images: Tensor, chunk_size: int) -> tuple[Tensor, ...]:
    """Near-equal chunks of at most ``chunk_size`` rows (no stray tiny last chunk)."""
    return torch.tensor_split(images, max(1, math.ceil(len(images) / chunk_size)))


def check_enough_examples(n_examples: int, n_clusters: int, what: str = "clusters") -> None:
    """k-means and mixtures need at least one training example per cluster."""
    if n_examples < n_clusters:
        raise ConfigError(f"cannot fit {n_clusters} {what} to {n_examples} training examples; lower "
                          "n_clusters or use more data", key="facets.0.n_clusters")


def nearest_one_hot(x: Tensor, centres: Tensor) -> Tensor:
    """One-hot rows of the nearest centre (squared Euclidean, computed in the centres' dtype): (B, K)."""
    x = x.to(centres.dtype)
    dist = (x.square().sum(-1, keepdim=True) - 2 * x @ centres.T + centres.square().sum(-1))
    return torch.nn.functional.one_hot(dist.argmin(-1), len(centres)).to(torch.float32)


def require(flag: Tensor, model: str, when: str) -> None:
    """Raise a :class:`TrainingError` saying the clustering step never ran."""
    if not bool(flag):
        raise TrainingError(f"{model} has no clusters yet: {when}")


def sklearn_threads() -> threadpool_limits:
    """Limit scikit-learn's native thread pools (OpenMP, BLAS) to torch's intra-op thread count,
    i.e. ``trainer.threads`` when set. Their default, one thread per core, busy-waits and runs
    several times slower than one thread when the cores are shared."""
    return threadpool_limits(limits=torch.get_num_threads())
