"""Encoders: images -> one Gaussian posterior per facet."""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

from torch import Tensor, nn

from .component import Component
from .types import FacetSpec, GaussianPosterior


class Encoder(Component, nn.Module):
    """Maps a batch of images to one diagonal Gaussian ``q(z_j | x)`` per facet.

    A ladder encoder taps each facet from a different depth; a flat encoder may read every
    facet from the same features. Constructed by the builder as::

        encoder = MyEncoder(config, data_shape=(1, 28, 28), facets=[FacetSpec(...), ...])

    Keyword-only context:

    * ``data_shape`` -- shape of one example, channels first, e.g. ``(3, 32, 32)``;
    * ``facets`` -- the facet specs, index 0 first.

    ``supported_facets`` is the inclusive range of facet counts the architecture can host
    (``None`` as the upper bound: any); the builder checks it before construction. Raise
    :class:`mfcf.errors.ConfigError` from ``__init__`` for any other unsupported combination
    (an image size the architecture cannot take, say).

    Example::

        class MLPEncoder(Encoder):
            name = "mlp"
            Config = MLPConfig

            def __init__(self, config, *, data_shape, facets):
                super().__init__(config)
                ...

            def forward(self, x, alpha_enc=None):
                h = self.body(x.flatten(1))
                return [GaussianPosterior(m(h), v(h)) for m, v in zip(self.means, self.logvars)]
    """

    kind = "encoder"
    supported_facets: ClassVar[tuple[int, int | None]] = (1, None)

    def __init__(self, config=None, *, data_shape: Sequence[int] = (), facets: Sequence[FacetSpec] = ()):
        super().__init__(config)
        self.data_shape = tuple(data_shape)
        self.facets = tuple(facets)

    def forward(self, x: Tensor, alpha_enc: Sequence[float] | None = None) -> list[GaussianPosterior]:
        """Return ``[q(z_0|x), ..., q(z_{J-1}|x)]`` for a batch ``x`` of shape (B, *data_shape).

        ``alpha_enc[j]`` (default all 1) multiplies the input of facet j's rung (progressive
        training).
        """
        raise NotImplementedError
