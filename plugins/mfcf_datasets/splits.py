"""Deterministic train/test splits from a seed, never touching global RNG state (defect D17)."""

from __future__ import annotations

import math

import numpy as np

#: Stream id of each split, so train and test draw from independent seeded generators.
SPLIT_STREAMS = {"train": 0, "test": 1}


def split_rng(seed: int, split: str) -> np.random.Generator:
    """A generator private to ``(seed, split)``."""
    return np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(SPLIT_STREAMS[split],)))


def stratified_split(labels: np.ndarray, test_fraction: float, seed: int) -> dict[str, np.ndarray]:
    """Indices of a class-stratified split: ``{'train': ..., 'test': ...}``, each sorted."""
    from sklearn.model_selection import train_test_split  # imported on use: sklearn takes ~1 s to import

    train, test = train_test_split(
        np.arange(len(labels)), test_size=test_fraction, stratify=labels, random_state=seed
    )
    return {"train": np.sort(train), "test": np.sort(test)}


def paper_split(n: int, test_fraction: float, seed: int) -> dict[str, np.ndarray]:
    """The official 3DShapes split of ``n`` items, with a private generator.

    The official code calls ``np.random.seed(seed)`` and draws ``int(0.8 * n)`` training
    indices with ``np.random.choice(n, ..., replace=False)``; a dedicated ``RandomState(seed)``
    yields the same indices without touching the global state. Both index arrays are sorted.
    """
    n_train = math.floor((1.0 - test_fraction) * n + 1e-9)
    train = np.random.RandomState(seed).choice(n, n_train, replace=False)
    mask = np.zeros(n, dtype=bool)
    mask[train] = True
    return {"train": np.flatnonzero(mask), "test": np.flatnonzero(~mask)}
