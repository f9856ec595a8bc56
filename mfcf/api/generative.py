"""Optional capabilities of generative models, found by duck typing (``isinstance`` checks).

:class:`~mfcf.api.Model` asks only for ``cluster_probs``: that is all the evaluation needs, and
a k-means baseline has nothing more to give. Models with a decoder can offer more, and tools
such as ``mfcf report`` look for it with ``isinstance(model, ClusterSampler)`` etc. -- the
model does not inherit from these protocols, it only needs methods with these names and
signatures (``typing.runtime_checkable`` checks that the methods exist, not their signatures).

* :class:`LatentCodec` -- encode to one latent per facet and decode back
  (reconstructions);
* :class:`FacetSwapper` -- decode one input's latents with one facet taken from another
  input (compositionality, MFCVAE.md §7.5);
* :class:`ClusterSampler` -- sample images from one cluster of one facet with the other
  facets held fixed (MFCVAE.md §7.4);
* :class:`GenerativeModel` -- all three.

Example::

    from mfcf.api.generative import ClusterSampler

    if isinstance(model, ClusterSampler):
        images = model.generate(facet=0, cluster=3, n=10, temperature=0.5)

Every method runs in eval mode under ``torch.no_grad()`` and leaves the model as it found it
(training flag, batch-norm statistics, the global random state).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable

import torch
from torch import Tensor


@runtime_checkable
class LatentCodec(Protocol):
    """Maps inputs to one latent per facet and latents back to images."""

    def posterior_means(self, x: Tensor) -> list[Tensor]:
        """The mean of q(z_j | x) for every facet j: a list of (B, D_j) tensors."""
        ...

    def decode_mean(self, zs: Sequence[Tensor]) -> Tensor:
        """The mean of p(x | z) for one (B, D_j) latent per facet: (B, *data_shape), in the
        data's value range."""
        ...


@runtime_checkable
class FacetSwapper(LatentCodec, Protocol):
    """Decodes inputs with one facet's latent exchanged."""

    def swap_facet(self, x_a: Tensor, x_b: Tensor, facet: int) -> Tensor:
        """Decode the posterior means of ``x_a`` with facet ``facet``'s latent taken from
        ``x_b`` (same batch size); every other facet keeps ``x_a``'s latent."""
        ...


@runtime_checkable
class ClusterSampler(Protocol):
    """Draws images from one cluster of one facet."""

    def generate(self, facet: int, cluster: int, n: int, *, temperature: float = 1.0,
                 generator: torch.Generator | None = None) -> Tensor:
        """``n`` decoded images, (n, *data_shape), whose facet-``facet`` latent is drawn from
        cluster ``cluster`` of its prior; every other facet is held at one draw from its prior
        shared by all ``n`` images. ``temperature`` multiplies the prior's standard deviation
        (not its variance). All randomness comes from ``generator`` (on the model's device)
        when one is given, so equal generator states give equal draws."""
        ...


@runtime_checkable
class GenerativeModel(FacetSwapper, ClusterSampler, Protocol):
    """A model offering reconstructions, facet swaps and per-cluster sampling."""


__all__ = ["ClusterSampler", "FacetSwapper", "GenerativeModel", "LatentCodec"]
