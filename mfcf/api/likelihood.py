"""Likelihoods p(x | z) given the decoder's raw output."""

from __future__ import annotations

from torch import Tensor, nn

from .component import Component
from .dataset import DataInfo


class Likelihood(Component, nn.Module):
    """Scores data under the decoder's output and turns that output into an image.

    Constructed as ``MyLikelihood(config, info=data_info)``. Raise
    :class:`mfcf.errors.ConfigError` from ``__init__`` when the data does not fit the
    likelihood (values outside its support, say). May own parameters (a learned sigma).
    """

    kind = "likelihood"

    def __init__(self, config=None, *, info: DataInfo | None = None):
        super().__init__(config)
        self.info = info

    def log_prob(self, x: Tensor, params: Tensor) -> Tensor:
        """log p(x | z) summed over every pixel and channel: shape ``params.shape[:-len(data_shape)]``."""
        raise NotImplementedError

    def mean(self, params: Tensor) -> Tensor:
        """The image the parameters stand for (the distribution's mean), in the data's range."""
        raise NotImplementedError
