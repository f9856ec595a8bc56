"""ELBO estimators: objects separate from the model that turn a batch into a loss."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from torch import Tensor, nn

from .component import Component
from .decoder import Decoder
from .encoder import Encoder
from .likelihood import Likelihood
from .prior import FacetPrior
from .types import Coefficients, LossOutput


class LatentModel(Protocol):
    """What an ELBO estimator reads from a model: its four probabilistic parts."""

    encoder: Encoder
    decoder: Decoder
    priors: Sequence[FacetPrior] | nn.ModuleList
    likelihood: Likelihood


class ELBO(Component):
    """Estimates the (negative) evidence lower bound of a batch.

    Constructed as ``MyELBO(config, n_facets=J)``. Called as ``elbo(model, x, coeffs)`` and
    returns a :class:`~mfcf.api.LossOutput`: the differentiable loss (negative, weighted ELBO,
    averaged over the batch) and detached named terms. Estimators hold no parameters; shared
    sampling logic belongs in a common base class (as in Pyro's ``ELBO`` / ``Trace_ELBO``).

    Example::

        out = elbo(model, x, schedule(epoch, step))
        out.loss.backward()
        print({k: v.item() for k, v in out.terms.items()})
    """

    kind = "elbo"

    def __init__(self, config=None, *, n_facets: int = 1):
        super().__init__(config)
        self.n_facets = n_facets

    def __call__(self, model: LatentModel, x: Tensor, coeffs: Coefficients) -> LossOutput:
        raise NotImplementedError
