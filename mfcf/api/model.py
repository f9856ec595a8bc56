"""Models: wire components together, train, and assign examples to clusters per facet."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from typing import ClassVar

import torch
from torch import Tensor, nn

from .component import Component
from .dataset import DataInfo, DataSplit
from .types import FacetSpec, LossOutput

#: Config sections a model may ask the builder for, in build order.
PARTS = ("priors", "encoder", "decoder", "likelihood", "elbo", "schedule")


class Model(Component, nn.Module):
    """A clustering model with one clustering (facet) or several.

    Constructed by the builder as::

        model = MyModel(config, info=data_info, facets=facet_specs, **parts)

    where ``parts`` holds one built component for every name in the class attribute ``parts``
    (a subset of :data:`PARTS`): ``priors`` is a list with one
    :class:`~mfcf.api.FacetPrior` per facet, the others come from the top-level config
    sections of the same name (``encoder:``, ``elbo:`` ...). A config section the model does
    not list is an error, so nothing is silently ignored.

    Two ways to train, chosen by ``trains_by_gradient``:

    * ``True`` (default): the trainer runs the gradient loop, calling
      :meth:`training_loss` for every batch and stepping Adam over every parameter with
      ``requires_grad``. :meth:`on_epoch_start` runs before the first step of each epoch
      (a data-dependent initialisation, say).
    * ``False``: the trainer calls :meth:`fit` once with the whole training split (k-means,
      a GMM, a two-stage baseline that runs its own loops). The fitted state must live in
      parameters or buffers so it is saved with ``state_dict()``.

    Every model answers :meth:`cluster_probs` (and so :meth:`assign`) per facet, which is all
    the evaluation needs. Anything beyond parameters and buffers that a resumed run needs
    (a schedule's state) goes into ``get_extra_state`` / ``set_extra_state``.
    """

    kind = "model"
    parts: ClassVar[tuple[str, ...]] = ()
    trains_by_gradient: ClassVar[bool] = True
    supported_facets: ClassVar[tuple[int, int | None]] = (1, None)

    def __init__(self, config=None, *, info: DataInfo | None = None, facets: Sequence[FacetSpec] = ()):
        super().__init__(config)
        self.info = info
        self.facets = tuple(facets)

    @property
    def n_facets(self) -> int:
        return len(self.facets)

    # -- training --------------------------------------------------------------------------
    def training_loss(self, x: Tensor, *, epoch: int, step: int) -> LossOutput:
        """Loss of one training batch at (epoch, step within the epoch)."""
        raise NotImplementedError(f"{type(self).__name__} trains by gradient but has no training_loss")

    def validation_loss(self, x: Tensor, *, epoch: int) -> LossOutput | None:
        """Loss of a held-out batch in eval mode (no parameter or buffer changes); None: none."""
        return None

    def on_epoch_start(self, epoch: int, train: DataSplit) -> None:
        """Hook run before the first step of every epoch (resumed runs skip epochs already begun)."""

    def on_epoch_end(self, epoch: int, train: DataSplit) -> None:
        """Hook run after the last step of every epoch, before its validation scores and its
        checkpoint (which therefore hold what the hook changed)."""

    def compile_training(self, mode: str) -> None:
        """Compile the tensor work of :meth:`training_loss` with ``torch.compile(mode=mode)``
        (``trainer.compile``), called once before the first step.

        The default compiles every child module's ``forward`` in place (parameter names and
        checkpoints are unchanged). Models whose loss is more than forward calls override it to
        compile the whole loss computation, leaving outside the compiled region anything that
        changes every step as a Python value (schedules, counters), which would otherwise
        trigger recompilation.
        """
        for child in self.children():
            child.compile(mode=mode)

    def fit(self, train: DataSplit, *, seed: int) -> None:
        """Fit without the gradient loop (``trains_by_gradient = False``)."""
        raise NotImplementedError(f"{type(self).__name__} sets trains_by_gradient=False but has no fit")

    @contextlib.contextmanager
    def evaluating(self) -> Iterator[None]:
        """``with model.evaluating(): ...`` runs the block in eval mode and restores the mode
        the model was in (train or eval) afterwards, even on an exception."""
        was_training = self.training
        self.eval()
        try:
            yield
        finally:
            self.train(was_training)

    # -- clustering ------------------------------------------------------------------------
    @property
    def has_clusters(self) -> bool:
        """Whether :meth:`cluster_probs` works yet. Models whose clusters appear mid-training
        (after an autoencoder pre-training, say) return False until then; the trainer skips
        ``trainer.score_every_epochs`` scoring while it is False."""
        return True

    def cluster_probs(self, x: Tensor) -> list[Tensor]:
        """q(c_j | x) for every facet j: a list of (B, K_j) tensors whose rows sum to 1."""
        raise NotImplementedError

    @torch.no_grad()
    def assign(self, x: Tensor) -> list[Tensor]:
        """Hard cluster ids per facet: a list of (B,) int64 tensors."""
        return [p.argmax(-1) for p in self.cluster_probs(x)]
