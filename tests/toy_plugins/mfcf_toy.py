"""A test-only plugin module, loaded through a config's `plugins:` list (not installed).

It registers a tiny two-factor dataset, a small gradient model with two facets that draws
random numbers in its loss (so resume tests exercise RNG checkpointing), and a non-gradient
k-means model (so the trainer's `fit` route is exercised).
"""

from __future__ import annotations

import dataclasses

import numpy as np
import torch
from sklearn.cluster import KMeans
from torch import nn

import mfcf
from mfcf.api import DataInfo, Dataset, DataSplit, LossOutput, Model
from mfcf.config import positive
from mfcf.errors import DataError


@dataclasses.dataclass
class BlobsConfig:
    n_train: int = 240
    n_test: int = 90
    noise: float = 0.05
    missing_file: str = ""  # when set, pretend to need this file (tests the missing-data error)

    def __post_init__(self):
        positive(self.n_train, "n_train")
        positive(self.n_test, "n_test")


class ToyBlobs(Dataset):
    """4x4 grey images; factor `top` (3 values) sets the top half, `bottom` (2) the bottom half."""

    name = "toy_blobs"
    Config = BlobsConfig

    def __init__(self, config, *, seed):
        super().__init__(config, seed=seed)
        if config.missing_file:
            raise DataError(f"toy data file '{config.missing_file}' not found; set data.root")

    @property
    def info(self):
        return DataInfo(shape=(1, 4, 4), factors={"top": 3, "bottom": 2}, likelihood_hint="gaussian")

    def load(self, split):
        n = self.config.n_train if split == "train" else self.config.n_test
        rng = np.random.default_rng([self.seed, split == "test"])
        top, bottom = rng.integers(0, 3, n), rng.integers(0, 2, n)
        images = np.zeros((n, 1, 4, 4), np.float32)
        images[:, 0, :2, :] = (top[:, None, None] / 2.0)
        images[:, 0, 2:, :] = bottom[:, None, None]
        images += self.config.noise * rng.standard_normal(images.shape).astype(np.float32)
        images = images.clip(0, 1)
        return DataSplit(torch.from_numpy(images), {"top": torch.from_numpy(top), "bottom": torch.from_numpy(bottom)})


@dataclasses.dataclass
class ToyModelConfig:
    noise: float = 0.1
    nan_at_epoch: int = -1  # make the loss NaN from (nan_at_epoch, nan_at_step) on
    nan_at_step: int = 0


class ToySoftKMeans(Model):
    """Per facet: a linear code of the pixels and soft k-means on it, plus a reconstruction."""

    name = "toy_softkmeans"
    Config = ToyModelConfig

    def __init__(self, config, *, info, facets):
        super().__init__(config, info=info, facets=facets)
        n_in = int(np.prod(info.shape))
        self.proj = nn.ModuleList(nn.Linear(n_in, f.latent_dim) for f in facets)
        self.back = nn.ModuleList(nn.Linear(f.latent_dim, n_in) for f in facets)
        self.centroids = nn.ParameterList(nn.Parameter(torch.randn(f.n_clusters, f.latent_dim)) for f in facets)

    def _codes(self, x):
        return [p(x.flatten(1)) for p in self.proj]

    def training_loss(self, x, *, epoch, step):
        codes = [c + self.config.noise * torch.randn_like(c) for c in self._codes(x)]
        recon = sum(b(c) for b, c in zip(self.back, codes))
        rec = ((recon - x.flatten(1)) ** 2).sum(1).mean()
        dist = [-torch.logsumexp(-torch.cdist(c, m) ** 2, 1).mean() for c, m in zip(codes, self.centroids)]
        loss = rec + 0.1 * sum(dist)
        if self.config.nan_at_epoch >= 0 and (epoch, step) >= (self.config.nan_at_epoch, self.config.nan_at_step):
            loss = loss * float("nan")
        terms = {"recon": rec.detach(), **{f"dist/{j}": d.detach() for j, d in enumerate(dist)}}
        return LossOutput(loss, terms)

    def validation_loss(self, x, *, epoch):
        return self.training_loss(x, epoch=epoch, step=0)

    def cluster_probs(self, x):
        return [torch.softmax(-torch.cdist(c, m) ** 2, 1) for c, m in zip(self._codes(x), self.centroids)]


class ToyKMeans(Model):
    """k-means on raw pixels (scikit-learn), one facet, no gradient loop."""

    name = "toy_kmeans"
    trains_by_gradient = False
    supported_facets = (1, 1)

    def __init__(self, config, *, info, facets):
        super().__init__(config, info=info, facets=facets)
        self.register_buffer("centers", torch.zeros(facets[0].n_clusters, int(np.prod(info.shape))))

    def fit(self, train, *, seed):
        km = KMeans(self.facets[0].n_clusters, n_init=3, random_state=seed).fit(train.images.flatten(1).cpu().numpy())
        self.centers.copy_(torch.from_numpy(km.cluster_centers_))

    def cluster_probs(self, x):
        return [nn.functional.one_hot(torch.cdist(x.flatten(1), self.centers).argmin(1), len(self.centers)).float()]


@mfcf.hookimpl
def mfcf_register_datasets():
    return [ToyBlobs]


@mfcf.hookimpl
def mfcf_register_models():
    return [ToySoftKMeans, ToyKMeans]
