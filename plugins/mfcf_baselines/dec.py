"""Deep Embedded Clustering (Xie, Girshick & Farhadi, ICML 2016) and Improved DEC (Guo, Gao,
Liu & Yin, IJCAI 2017).

After autoencoder pre-training, k-means on the codes z_i gives centres mu_j. Then the encoder
and the centres are trained to sharpen the Student-t soft assignment (DEC eq. 1)

    q_ij = (1 + |z_i - mu_j|^2 / alpha)^(-(alpha+1)/2) / sum_j' (...)

towards the target distribution (DEC eq. 3)

    p_ij = (q_ij^2 / f_j) / sum_j' (q_ij'^2 / f_j'),   f_j = sum_i q_ij

by minimising KL(P || Q) (DEC eq. 2). P is held fixed between target updates. IDEC keeps the
decoder and adds its reconstruction loss: L = L_r + gamma * KL(P || Q) (IDEC eq. 5).

The target is exact without indexing the training set: at every update the model keeps a
frozen copy of the encoder and centres and the cluster frequencies f_j over the whole training
split; p_ij of any batch then follows from that snapshot, row by row, exactly as the full
target matrix would give it. The snapshot lives in the state dict, so a resumed run
continues with the same target.
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Sequence

import numpy as np
import torch
from sklearn.cluster import KMeans
from torch import Tensor, nn

from mfcf.api import DataInfo, DataSplit, Decoder, Encoder, FacetSpec, Likelihood, LossOutput
from mfcf.config import positive

from .autoencoder import PretrainConfig, PretrainedAutoencoder
from .common import check_enough_examples, chunks


def student_t_log_probs(z: Tensor, centres: Tensor, alpha: float) -> Tensor:
    """log q_ij of the Student-t soft assignment (DEC eq. 1): (B, K)."""
    sq_dist = (z.unsqueeze(-2) - centres).square().sum(-1)
    return torch.log_softmax(-(alpha + 1) / 2 * torch.log1p(sq_dist / alpha), dim=-1)


def target_log_probs(log_q: Tensor, log_freq: Tensor) -> Tensor:
    """log p_ij of the sharpened target (DEC eq. 3) given log q_ij and log f_j: (B, K)."""
    return torch.log_softmax(2 * log_q - log_freq, dim=-1)


@dataclasses.dataclass
class DECConfig(PretrainConfig):
    """``model: {name: dec, ...}``: the pre-training options of
    :class:`~mfcf_baselines.autoencoder.PretrainConfig` plus

    * ``alpha`` -- degrees of freedom of the Student-t kernel (DEC: 1);
    * ``kmeans_n_init`` -- k-means restarts for the initial centres (DEC: 20);
    * ``target_update_epochs`` -- recompute the target P every this many epochs of the
      clustering phase (DEC updates every T iterations; see docs/baselines.md).
    """

    alpha: float = 1.0
    kmeans_n_init: int = 20
    target_update_epochs: int = 1

    def __post_init__(self) -> None:
        super().__post_init__()
        positive(self.alpha, "alpha")
        positive(self.kmeans_n_init, "kmeans_n_init")
        positive(self.target_update_epochs, "target_update_epochs")


class DECModel(PretrainedAutoencoder):
    """DEC: autoencoder pre-training, k-means initialisation, then KL(P || Q) self-training of the
    encoder and the centres (the decoder is used for pre-training only).

    ``cluster_probs`` is the Student-t assignment q of the current encoder and centres. The
    centres are the parameter ``centres`` (K, latent_dim); the target snapshot is
    ``target_encoder`` (frozen), ``target_centres`` and ``target_log_freq``.

    Example config (the paper's MNIST network)::

        model: {name: dec, pretrain_epochs: 50, pretrain_dropout: 0.2}
        encoder: {name: mlp}            # d-500-500-2000-10
        decoder: {name: mlp}
        likelihood: {name: bernoulli}
        facets: [{latent_dim: 10, n_clusters: 10}]
    """

    name = "dec"
    Config = DECConfig

    def __init__(self, config: DECConfig, *, info: DataInfo, facets: Sequence[FacetSpec], encoder: Encoder,
                 decoder: Decoder, likelihood: Likelihood):
        super().__init__(config, info=info, facets=facets, encoder=encoder, decoder=decoder, likelihood=likelihood)
        K, D = facets[0].n_clusters, facets[0].latent_dim
        self.centres = nn.Parameter(torch.zeros(K, D))
        self.target_encoder = copy.deepcopy(encoder).requires_grad_(False).eval()
        self.register_buffer("target_centres", torch.zeros(K, D))
        self.register_buffer("target_log_freq", torch.zeros(K))

    def train(self, mode: bool = True) -> DECModel:
        super().train(mode)
        self.target_encoder.eval()  # the snapshot always sees its inputs as at the update
        return self

    # -- clustering phase ------------------------------------------------------------------
    def initialise_clusters(self, codes: np.ndarray, seed: int) -> None:
        K = self.facets[0].n_clusters
        check_enough_examples(len(codes), K)
        kmeans = KMeans(K, n_init=self.config.kmeans_n_init, random_state=seed).fit(codes)
        with torch.no_grad():
            self.centres.copy_(torch.from_numpy(kmeans.cluster_centers_))

    @torch.no_grad()
    def clustering_epoch_start(self, epoch: int, train: DataSplit) -> None:
        if (epoch - self.config.pretrain_epochs) % self.config.target_update_epochs:
            return
        self.target_encoder.load_state_dict(self.encoder.state_dict())
        self.target_centres.copy_(self.centres)
        freq = torch.zeros_like(self.target_log_freq)
        device = self.target_log_freq.device
        for chunk in chunks(train.images, self.config.encode_chunk_size):
            freq += self._target_q(chunk.to(device)).exp().sum(0)
        self.target_log_freq.copy_(freq.log())

    def _target_q(self, x: Tensor) -> Tensor:
        """log q_ij of the snapshot taken at the last target update: (B, K)."""
        return student_t_log_probs(self.target_encoder(x)[0].mean, self.target_centres, self.config.alpha)

    def kl_to_target(self, x: Tensor, z: Tensor) -> Tensor:
        """KL(P || Q) of a batch, summed over clusters and averaged over examples (DEC eq. 2)."""
        with torch.no_grad():
            log_p = target_log_probs(self._target_q(x), self.target_log_freq)
        log_q = student_t_log_probs(z, self.centres, self.config.alpha)
        return (log_p.exp() * (log_p - log_q)).sum(-1).mean()

    def clustering_loss(self, x: Tensor, *, epoch: int, step: int) -> LossOutput:
        kl = self.kl_to_target(x, self.code(x))
        return LossOutput(kl, {"kl": kl.detach()})

    def clustering_probs(self, x: Tensor) -> Tensor:
        return student_t_log_probs(self.code(x), self.centres, self.config.alpha).exp()


@dataclasses.dataclass
class IDECConfig(DECConfig):
    """``model: {name: idec, ...}``: DEC's options plus ``gamma``, the weight of the clustering
    loss against the reconstruction loss (IDEC: 0.1). The reconstruction loss is -log p(x|z)
    per pixel (a mean over pixels, as IDEC's mean squared error), averaged over the batch."""

    gamma: float = 0.1

    def __post_init__(self) -> None:
        super().__post_init__()
        positive(self.gamma, "gamma")


class IDECModel(DECModel):
    """IDEC: DEC whose clustering phase keeps training the decoder,
    L = L_r + gamma * KL(P || Q), so the embedding keeps the local structure of the data.

    Example config (the paper's MNIST setting)::

        model: {name: idec, gamma: 0.1, pretrain_epochs: 200}
    """

    name = "idec"
    Config = IDECConfig

    def clustering_loss(self, x: Tensor, *, epoch: int, step: int) -> LossOutput:
        z = self.code(x)
        kl = self.kl_to_target(x, z)
        n_pixels = x[0].numel()
        recon = (-self.likelihood.log_prob(x, self.decoder([z])) / n_pixels).mean()
        loss = recon + self.config.gamma * kl
        return LossOutput(loss, {"kl": kl.detach(), "recon_per_pixel": recon.detach()})
