"""Two-phase training shared by the autoencoder baselines (``ae_kmeans``, ``dec``, ``idec``, ``vade``).

Everything runs inside mfcf's ordinary gradient loop, so it checkpoints, resumes bit-exactly
and is swept like any other model:

* epochs ``0 .. pretrain_epochs - 1`` -- autoencoder pre-training: the code of x is the mean of
  the encoder's posterior q(z|x), the loss is -log p(x | decoder(code)) under the configured
  likelihood (optionally on a dropout-corrupted input, as DEC's denoising autoencoder);
* at the start of epoch ``pretrain_epochs`` (:meth:`~mfcf.api.Model.on_epoch_start`, which the
  trainer calls before the first step of every epoch and never repeats for an epoch a resumed
  run already began) -- the clustering is initialised from the codes of the whole training
  split (k-means for ``ae_kmeans`` / ``dec`` / ``idec``, a Gaussian mixture for ``vade``);
* later epochs -- the model's own clustering loss.

Parameters that a phase does not use get no gradient (``None``), so Adam leaves them, and their
moment estimates, untouched until they first receive one.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Optional

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from mfcf.api import DataInfo, DataSplit, Decoder, Encoder, FacetSpec, Likelihood, LossOutput, Model
from mfcf.config import positive
from mfcf.errors import ConfigError

from .common import chunks, require, resolve_seed, sklearn_threads


@dataclasses.dataclass
class PretrainConfig:
    """Options of the autoencoder pre-training phase, shared by every autoencoder baseline.

    * ``pretrain_epochs`` -- epochs of autoencoder training before the clustering is initialised
      (0: initialise from the untrained encoder). ``trainer.epochs`` must exceed it;
    * ``pretrain_dropout`` -- dropout rate on the *input* during pre-training (DEC's denoising
      autoencoder used 0.2; 0 = a plain autoencoder);
    * ``encode_chunk_size`` -- examples per encoder call when the whole training split is encoded;
    * ``seed`` -- random state of the scikit-learn fit at initialisation; ``None``: the trainer's
      seed.
    """

    pretrain_epochs: int = 50
    pretrain_dropout: float = 0.0
    encode_chunk_size: int = 1024
    seed: Optional[int] = None

    def __post_init__(self) -> None:
        positive(self.pretrain_epochs, "pretrain_epochs", allow_zero=True)
        if not 0.0 <= self.pretrain_dropout < 1.0:
            raise ConfigError(f"must lie in [0, 1), got {self.pretrain_dropout}", key="pretrain_dropout")
        positive(self.encode_chunk_size, "encode_chunk_size")
        positive(self.seed, "seed", allow_zero=True, allow_none=True)


class PretrainedAutoencoder(Model):
    """Base of the single-facet autoencoder baselines; subclasses say how to cluster.

    Subclasses implement :meth:`initialise_clusters` (from the training codes),
    :meth:`clustering_loss` and :meth:`clustering_probs`, and may override
    :meth:`clustering_epoch_start`. Built as ``Cls(config, info=..., facets=..., encoder=...,
    decoder=..., likelihood=..., **more_parts)``.
    """

    parts = ("encoder", "decoder", "likelihood")
    supported_facets = (1, 1)

    def __init__(self, config: PretrainConfig, *, info: DataInfo, facets: Sequence[FacetSpec], encoder: Encoder,
                 decoder: Decoder, likelihood: Likelihood):
        super().__init__(config, info=info, facets=facets)
        self.encoder = encoder
        self.decoder = decoder
        self.likelihood = likelihood
        self.register_buffer("initialised", torch.tensor(False))

    # -- phases ----------------------------------------------------------------------------
    def training_loss(self, x: Tensor, *, epoch: int, step: int) -> LossOutput:
        if epoch < self.config.pretrain_epochs:
            return self.autoencoder_loss(x)
        self._require_initialised()
        return self.clustering_loss(x, epoch=epoch, step=step)

    @torch.no_grad()
    def validation_loss(self, x: Tensor, *, epoch: int) -> LossOutput | None:
        with self.evaluating():
            if epoch < self.config.pretrain_epochs:
                return self.autoencoder_loss(x)
            return self.clustering_loss(x, epoch=epoch, step=0) if bool(self.initialised) else None

    def on_epoch_start(self, epoch: int, train: DataSplit) -> None:
        if epoch < self.config.pretrain_epochs:
            return
        if not bool(self.initialised):
            codes = self.encode(train.images).double().cpu().numpy()
            with sklearn_threads():
                self.initialise_clusters(codes, resolve_seed(self.config.seed))
            self.initialised.fill_(True)
        self.clustering_epoch_start(epoch, train)

    # -- the autoencoder -------------------------------------------------------------------
    def code(self, x: Tensor) -> Tensor:
        """The code of a batch: the mean of q(z|x), (B, D)."""
        return self.encoder(x)[0].mean

    def reconstruction(self, x: Tensor, inputs: Tensor | None = None) -> Tensor:
        """-log p(x | decoder(code(inputs))) per example, summed over pixels: (B,)."""
        code = self.code(x if inputs is None else inputs)
        return -self.likelihood.log_prob(x, self.decoder([code]))

    def autoencoder_loss(self, x: Tensor) -> LossOutput:
        p = self.config.pretrain_dropout
        inputs = F.dropout(x, p, training=self.training) if p > 0 else x
        recon = self.reconstruction(x, inputs).mean()
        return LossOutput(recon, {"recon": recon.detach()})

    @torch.no_grad()
    def encode(self, images: Tensor) -> Tensor:
        """Codes of many images in eval mode, ``encode_chunk_size`` at a time: (N, D)."""
        device = self.initialised.device
        with self.evaluating():
            return torch.cat([self.code(chunk.to(device)) for chunk in chunks(images, self.config.encode_chunk_size)])

    # -- clustering ------------------------------------------------------------------------
    def initialise_clusters(self, codes: np.ndarray, seed: int) -> None:
        """Fit the clustering to the training codes (N, D) float64 (once, after pre-training)."""
        raise NotImplementedError

    def clustering_epoch_start(self, epoch: int, train: DataSplit) -> None:
        """Per-epoch work of the clustering phase (DEC's target update); default: nothing."""

    def clustering_loss(self, x: Tensor, *, epoch: int, step: int) -> LossOutput:
        raise NotImplementedError

    def clustering_probs(self, x: Tensor) -> Tensor:
        """q(c|x) of a batch in eval mode: (B, K)."""
        raise NotImplementedError

    @torch.no_grad()
    def cluster_probs(self, x: Tensor) -> list[Tensor]:
        self._require_initialised()
        with self.evaluating():
            return [self.clustering_probs(x)]

    @property
    def has_clusters(self) -> bool:
        return bool(self.initialised)

    # -- helpers ---------------------------------------------------------------------------
    def _require_initialised(self) -> None:
        P = self.config.pretrain_epochs
        require(self.initialised, self.name,
                f"they are initialised at the start of epoch {P} (model.pretrain_epochs), after the autoencoder "
                f"pre-training, so trainer.epochs must be at least {P + 1}")

