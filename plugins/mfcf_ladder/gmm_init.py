"""Initialisers run by :class:`~mfcf_ladder.model.MFCVAEModel` before training.

* :func:`encode_means` + :func:`fit_gmm` -- the MoG prior initialisation of MFCVAE.md §5.3: a
  diagonal scikit-learn ``GaussianMixture`` per facet, fitted to the posterior means of the
  whole training split; :func:`fit_spectral` the alternative of ``model.gmm_method: spectral``
  (the mixture of a spectral clustering's partition) and :func:`fit_umap` that of
  ``umap`` (the mixture of a GMM's partition of a UMAP embedding). :data:`GMM_METHODS` names them.
* :func:`data_dependent_init` -- the data-dependent initialisation of §5.2, done so that it
  also takes effect on weight-normalised layers (fixes §9 D3), or exactly as the official code.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Iterator
from typing import NamedTuple

import numpy as np
import torch
from sklearn.cluster import SpectralClustering
from sklearn.mixture import GaussianMixture
from torch import Tensor, nn

BN_MODES = ("train", "eval", "recalibrate")
_BATCH_NORMS = (nn.BatchNorm1d, nn.BatchNorm2d)


def _chunks(images: Tensor, chunk_size: int) -> tuple[Tensor, ...]:
    # near-equal chunks: no stray tiny last batch for train-mode batch norm
    return torch.tensor_split(images, max(1, math.ceil(len(images) / chunk_size)))


@contextlib.contextmanager
def batch_norm_mode(module: nn.Module, mode: str, images: Tensor, chunk_size: int, run: Callable) -> Iterator[None]:
    """Put ``module`` in the batch-norm regime ``mode`` for feature extraction (§9, D13).

    * ``train`` -- batch statistics of each chunk; running statistics are left untouched;
    * ``eval`` -- running statistics as they are (faithful to the official code);
    * ``recalibrate`` -- first re-estimate the running statistics as the exact average over
      ``images`` (``run`` is called on every chunk in train mode), then use them.

    The module's train/eval flag is restored on exit.
    """
    was_training = module.training
    norms = [m for m in module.modules() if isinstance(m, _BATCH_NORMS)]
    try:
        if mode == "train":
            module.train()
            for m in norms:
                m.track_running_stats = False
        elif mode == "recalibrate" and norms:
            momenta = [m.momentum for m in norms]
            module.train()
            for m in norms:
                m.reset_running_stats()
                m.momentum = None  # cumulative moving average = exact mean over the chunks
            for chunk in _chunks(images, chunk_size):
                run(chunk)
            for m, momentum in zip(norms, momenta):
                m.momentum = momentum
            module.eval()
        else:
            module.eval()
        yield
    finally:
        for m in norms:
            m.track_running_stats = True
        module.train(was_training)


@torch.no_grad()
def encode_means(encoder: nn.Module, images: Tensor, *, chunk_size: int, bn_mode: str,
                 device: torch.device, random_state: np.random.RandomState | None = None) -> list[np.ndarray]:
    """Posterior means of every facet for ``images``, as float64 arrays (N, D_j), row i for
    ``images[i]``.

    With ``bn_mode: train``, batch norm in ``encoder`` and a ``random_state``, the chunks are
    cut from a random permutation of ``images``, so each chunk's batch statistics are those of a random sample,
    as in a shuffled training batch: a split stored sorted by class (MNIST-5k is) would
    otherwise give chunks of one class each, whose normalisation removes what tells the
    classes apart. The other modes use per-example statistics, for which order does not matter.
    """

    def run(chunk: Tensor):
        return encoder(chunk.to(device))

    order = None
    has_norms = any(isinstance(m, _BATCH_NORMS) for m in encoder.modules())
    if bn_mode == "train" and has_norms and random_state is not None:
        order = torch.from_numpy(random_state.permutation(len(images)))
        images = images[order.to(images.device)]
    with batch_norm_mode(encoder, bn_mode, images, chunk_size, run):
        parts = [[q.mean.double().cpu() for q in run(chunk)] for chunk in _chunks(images, chunk_size)]
    means = [torch.cat(facet) for facet in zip(*parts)]
    if order is not None:
        means = [torch.empty_like(m).index_copy_(0, order, m) for m in means]
    return [m.numpy() for m in means]


class Mixture(NamedTuple):
    """A fitted mixture: ``weights`` (K,), ``means`` (K, D), ``covariances`` (K, D) diagonal
    variances or (K, D, D) full matrices."""

    weights: np.ndarray
    means: np.ndarray
    covariances: np.ndarray


def fit_gmm(features: np.ndarray, n_clusters: int, random_state: np.random.RandomState,
            n_init: int = 1, covariance_type: str = "diag", neighbours: int = 10) -> Mixture:
    """scikit-learn's Gaussian mixture (k-means init; diagonal covariances as the official code,
    or ``full``); ``n_init`` restarts, the best likelihood kept (1: scikit-learn's default, as
    the official code). ``neighbours`` is unused: EM builds no neighbour graph (the argument
    keeps every :data:`GMM_METHODS` entry callable alike)."""
    gmm = GaussianMixture(n_components=n_clusters, covariance_type=covariance_type, n_init=n_init,
                          random_state=random_state).fit(features)
    return Mixture(gmm.weights_, gmm.means_, gmm.covariances_)


def mixture_of_partition(features: np.ndarray, labels: np.ndarray, n_clusters: int,
                         random_state: np.random.RandomState, covariance_type: str = "diag",
                         reg_covar: float = 1e-6) -> Mixture:
    """The mixture whose components are the groups of a partition: group ``k`` (the rows with
    ``labels == k``) gives its share of the points, its mean and its (diagonal or full)
    covariance, plus ``reg_covar`` on the diagonal as scikit-learn's mixtures add. A group left
    empty takes a random point as its mean, the data's variance and a weight of one point."""
    n, dim = features.shape
    weights, means, covariances = np.empty(n_clusters), np.empty((n_clusters, dim)), []
    for k in range(n_clusters):
        members = features[labels == k]
        if len(members) == 0:
            members = features[random_state.randint(n)][None]
        weights[k] = len(members) / n
        means[k] = members.mean(0)
        spread = members if len(members) > 1 else features
        covariance = np.cov(spread, rowvar=False, bias=True).reshape(dim, dim) + reg_covar * np.eye(dim)
        covariances.append(covariance if covariance_type == "full" else np.diag(covariance))
    return Mixture(weights / weights.sum(), means, np.stack(covariances))


def fit_spectral(features: np.ndarray, n_clusters: int, random_state: np.random.RandomState,
                 n_init: int = 1, covariance_type: str = "diag", neighbours: int = 10) -> Mixture:
    """The mixture of a spectral clustering's partition: ``features`` are split into
    ``n_clusters`` groups by scikit-learn's ``SpectralClustering`` on their symmetrised
    ``neighbours``-nearest-neighbour graph (10, scikit-learn's default; Ng, Jordan and Weiss
    2001; the labels by ``cluster_qr``, so ``n_init`` has nothing to restart), and each group becomes one component
    (:func:`mixture_of_partition`). Clusters that follow the data's neighbourhoods rather than
    Gaussian blobs (what N2D, McConville et al. 2020, gets from a manifold embedding of an
    autoencoder's codes); the prior then holds the Gaussians of those clusters."""
    labels = SpectralClustering(n_clusters, affinity="nearest_neighbors", n_neighbors=neighbours,
                                assign_labels="cluster_qr", random_state=random_state).fit_predict(features)
    return mixture_of_partition(features, labels, n_clusters, random_state, covariance_type)


#: embedding dimensions of :func:`fit_umap` (at most the features'), as N2D's
UMAP_DIMS = 10


def fit_umap(features: np.ndarray, n_clusters: int, random_state: np.random.RandomState,
             n_init: int = 1, covariance_type: str = "diag", neighbours: int = 10) -> Mixture:
    """The mixture of the partition N2D finds (McConville et al. 2020): ``features`` are
    embedded by UMAP (McInnes et al. 2018; ``neighbours`` per point -- N2D's scripts use 20,
    UMAP's default is 15 --, ``UMAP_DIMS`` dimensions, ``min_dist`` 0: points packed tightly,
    as for clustering, N2D §3), a full-covariance Gaussian mixture (``n_init`` EM restarts)
    clusters the embedding, and each of its groups becomes one component in the features' own
    space (:func:`mixture_of_partition`): the prior holds the Gaussians of clusters that follow
    the codes' manifold. Seeded by ``random_state``, UMAP runs on one thread and is
    deterministic."""
    from umap import UMAP  # numba compiles on first import: only paid by runs that ask for it

    dims = min(UMAP_DIMS, features.shape[1])
    seed = random_state.randint(2**31 - 1)
    embedding = UMAP(n_components=dims, n_neighbors=neighbours, min_dist=0.0, random_state=seed,
                     n_jobs=1).fit_transform(features)  # float32
    def clusters(points: np.ndarray) -> np.ndarray:
        return GaussianMixture(n_clusters, covariance_type="full", n_init=n_init,
                               random_state=random_state).fit_predict(points)

    try:
        labels = clusters(embedding)
    except ValueError as error:
        # EM in float32 on the tight clusters of min_dist 0 can lose a covariance's positive
        # definiteness (scikit-learn: "ill-defined empirical covariance"); float64 keeps it
        if "ill-defined empirical covariance" not in str(error):
            raise
        labels = clusters(embedding.astype(np.float64))
    return mixture_of_partition(features, labels, n_clusters, random_state, covariance_type)


#: ``model.gmm_method`` names: how a facet's mixture is fitted to its posterior means.
GMM_METHODS = {"em": fit_gmm, "spectral": fit_spectral, "umap": fit_umap}


_INIT_LAYERS = (nn.Linear, nn.Conv2d, nn.ConvTranspose2d)


@torch.no_grad()
def data_dependent_init(module: nn.Module, forward: Callable[[], object], *, scale: float = 0.1,
                        eps: float = 1e-5, official: bool = False) -> None:
    """Data-dependent initialisation of every Linear / (transposed) conv in ``module`` (§5.2).

    Weights (``v`` of weight-normalised layers) are redrawn Kaiming-normal, biases zeroed; then
    ``forward()`` runs once while a hook on every such layer rescales it so that its output has,
    per unit / channel, mean 0 and standard deviation ``scale`` on that batch, and passes the
    corrected output on. Weight-normalised layers are rescaled through their gain ``g`` so the
    change persists (the official code loses it, §9 D3).

    ``official`` reproduces the official initialisation instead: the output variance is the
    unbiased one, and a weight-normalised layer keeps the weight it had (its Kaiming draw is
    made and thrown away, and its rescaling is lost), so only its new bias -- computed from the
    output of the old weight -- persists (§5.2 step 3, §9 D3). The official code's extra forward
    pass before this one is the caller's (:meth:`MFCVAEModel.data_init`).
    """
    layers = [m for m in module.modules() if isinstance(m, _INIT_LAYERS)]
    for layer in layers:
        if not nn.utils.parametrize.is_parametrized(layer, "weight"):
            nn.init.kaiming_normal_(layer.weight)
        elif official:
            nn.init.kaiming_normal_(torch.empty_like(layer.weight))  # drawn, then lost (D3)
        else:
            originals = layer.parametrizations.weight
            nn.init.kaiming_normal_(originals.original1)
            dim = 1 if isinstance(layer, nn.ConvTranspose2d) else 0
            others = [d for d in range(originals.original1.dim()) if d != dim]
            originals.original0.copy_(torch.linalg.vector_norm(originals.original1, dim=others, keepdim=True))
        if layer.bias is not None:
            layer.bias.zero_()

    def hook(layer: nn.Module, _inputs, output: Tensor) -> Tensor:
        channel = 1
        dims = [d for d in range(output.dim()) if d != channel]
        mean, var = output.mean(dims), output.var(dims, unbiased=official)
        factor = scale / torch.sqrt(var + eps)
        shape = [1] * output.dim()
        shape[channel] = -1
        out_dim = 1 if isinstance(layer, nn.ConvTranspose2d) else 0
        w_shape = [1] * layer.weight.dim()
        w_shape[out_dim] = -1
        if not nn.utils.parametrize.is_parametrized(layer, "weight"):
            layer.weight.mul_(factor.view(w_shape))
        elif not official:
            gain = layer.parametrizations.weight.original0
            gain.mul_(factor.view(gain.shape))
        if layer.bias is not None:
            layer.bias.copy_((layer.bias - mean) * factor)
        return (output - mean.view(shape)) * factor.view(shape)

    handles = [layer.register_forward_hook(hook) for layer in layers]
    try:
        forward()
    finally:
        for handle in handles:
            handle.remove()
