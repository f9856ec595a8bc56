"""What every report section reads: the trained run, its evaluation and per-facet cluster facts.

Built once by :func:`mfcf.report.build_report`; sections never recompute q(c|x).
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..api import DataSplit, Model
from ..engine.build import Experiment
from ..engine.rundir import RunDir
from .options import ORDERS, ReportOptions


@dataclasses.dataclass(frozen=True)
class ClusterFacts:
    """One non-empty cluster of one facet on the report's split.

    ``members`` are indices into the split, most confident first (ties: lower index first);
    ``confidence`` is the mean of max_c q(c|x) over them.
    """

    cluster: int
    members: np.ndarray
    confidence: float

    @property
    def size(self) -> int:
        return len(self.members)


def order_clusters(probs: np.ndarray, order: str = "size") -> list[ClusterFacts]:
    """The non-empty clusters of one facet's (N, K) ``probs``, ordered by ``order``.

    Each example belongs to its argmax cluster with confidence max_c q(c|x). ``size``: most
    examples first; ``confidence``: highest mean confidence first (§7.3). Ties keep the lower
    cluster id first. Empty clusters are left out.
    """
    if order not in ORDERS:
        raise ValueError(f"order must be one of {', '.join(ORDERS)}, got {order!r}")
    assigned, conf = probs.argmax(axis=1), probs.max(axis=1)
    facts = []
    for k in np.unique(assigned):
        idx = np.flatnonzero(assigned == k)
        idx = idx[np.argsort(-conf[idx], kind="stable")]
        facts.append(ClusterFacts(int(k), idx, float(conf[idx].mean())))
    key = (lambda f: (-f.size, f.cluster)) if order == "size" else (lambda f: (-f.confidence, f.cluster))
    return sorted(facts, key=key)


@dataclasses.dataclass
class ReportContext:
    """A trained run loaded for reporting, with its evaluation on ``split``."""

    run: RunDir
    experiment: Experiment
    weights: str
    split: str
    data: DataSplit
    evaluation: dict[str, Any]
    probs: list[np.ndarray]  # q(c_j | x) per facet on the split: (N, K_j)
    out: Path
    options: ReportOptions
    _orders: dict[int, list[ClusterFacts]] = dataclasses.field(default_factory=dict, repr=False)

    @property
    def model(self) -> Model:
        return self.experiment.model

    @property
    def n_facets(self) -> int:
        return len(self.probs)

    @property
    def factors(self) -> list[str]:
        return list(self.data.factors)

    @property
    def value_range(self) -> tuple[float, float]:
        info = self.model.info
        return tuple(info.value_range) if info is not None else (0.0, 1.0)

    def images(self, index: np.ndarray | Sequence[int]) -> torch.Tensor:
        """The split's examples at ``index`` (on the experiment's device)."""
        return self.data.images[torch.as_tensor(np.asarray(index), device=self.data.images.device)]

    @functools.cached_property
    def labels(self) -> dict[str, np.ndarray]:
        return {name: y.cpu().numpy() for name, y in self.data.factors.items()}

    def clusters(self, facet: int) -> list[ClusterFacts]:
        """Facet ``facet``'s non-empty clusters in the report's order."""
        if facet not in self._orders:
            self._orders[facet] = order_clusters(self.probs[facet], self.options.order)
        return self._orders[facet]

    def shown_clusters(self, facet: int) -> list[ClusterFacts]:
        """The clusters a per-cluster figure shows (at most ``options.max_clusters``)."""
        return self.clusters(facet)[:self.options.max_clusters]

    def matched_factor(self, facet: int) -> str | None:
        return self.evaluation["facets"][facet].get("matched_factor")

    def display_factor(self, facet: int) -> str | None:
        """The matched factor, else (more facets than factors) the facet's highest-NMI factor."""
        if self.matched_factor(facet) is not None or not self.factors:
            return self.matched_factor(facet)
        row = self.evaluation["nmi_matrix"]["values"][facet]
        return self.factors[int(np.argmax(row))]

    def facet_name(self, facet: int) -> str:
        """``facet 0 (floor_hue)`` -- with the matched factor when there is one."""
        factor = self.matched_factor(facet)
        return f"facet {facet} ({factor})" if factor else f"facet {facet}"

    def clusters_note(self, facet: int) -> str:
        """How many clusters a per-cluster figure of ``facet`` shows, in words."""
        k = self.experiment.resolved.facets[facet].n_clusters
        used, shown = len(self.clusters(facet)), len(self.shown_clusters(facet))
        order = "largest first" if self.options.order == "size" else "highest mean confidence first"
        text = f"{used} of {k} clusters are non-empty on the {self.split} split"
        if shown < used:
            text += f"; the first {shown} are shown"
        return f"{text}; rows ordered {order}"
