"""Decoders: one latent per facet -> the likelihood's parameters."""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

from torch import Tensor, nn

from .component import Component
from .types import FacetSpec


class Decoder(Component, nn.Module):
    """Maps one latent per facet to the parameters of ``p(x | z)`` with shape (B, *data_shape).

    The output is raw (logits for a Bernoulli likelihood, the pre-activation mean for a
    Gaussian); the configured :class:`~mfcf.api.Likelihood` turns it into a density and an
    image. Constructed as ``MyDecoder(config, data_shape=..., facets=...)`` (see
    :class:`~mfcf.api.Encoder` for the context and ``supported_facets``).
    """

    kind = "decoder"
    supported_facets: ClassVar[tuple[int, int | None]] = (1, None)

    def __init__(self, config=None, *, data_shape: Sequence[int] = (), facets: Sequence[FacetSpec] = ()):
        super().__init__(config)
        self.data_shape = tuple(data_shape)
        self.facets = tuple(facets)

    def forward(self, zs: Sequence[Tensor], alpha_dec: Sequence[float] | None = None) -> Tensor:
        """Decode ``zs[j]`` of shape (..., D_j) into (..., *data_shape) raw parameters.

        ``alpha_dec[j]`` (default all 1) multiplies facet j's rung output, so a facet with
        ``alpha_dec[j] == 0`` contributes nothing (progressive training).
        """
        raise NotImplementedError
