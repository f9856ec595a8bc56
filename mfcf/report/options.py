"""Options of ``mfcf report`` (kept free of heavy imports: the command line reads them)."""

from __future__ import annotations

import dataclasses

#: How clusters are ordered in every figure: ``size`` (issue 6: largest first) or
#: ``confidence`` (MFCVAE.md §7.3: highest average max_c q(c|x) of its examples first).
ORDERS = ("size", "confidence")


@dataclasses.dataclass(frozen=True)
class ReportOptions:
    """Knobs of ``mfcf report`` (command-line flags of the same names).

    * ``order`` -- cluster order in every per-cluster figure, one of :data:`ORDERS`;
    * ``n_examples`` -- examples (and samples) per cluster row (paper: 10);
    * ``max_clusters`` -- rows per figure at most (the first ones in ``order``);
    * ``temperature`` -- multiplies the prior's standard deviation when sampling (paper: 0.3
      for SVHN / 3DShapes, 1.0 for MNIST);
    * ``n_pairs`` -- input pairs per facet in the compositionality figure;
    * ``seed`` -- seed of the sampling generator (the global random state is not touched).
    """

    order: str = "size"
    n_examples: int = 10
    max_clusters: int = 30
    temperature: float = 1.0
    n_pairs: int = 8
    seed: int = 0

    def __post_init__(self) -> None:
        if self.order not in ORDERS:
            raise ValueError(f"order must be one of {', '.join(ORDERS)}, got {self.order!r}")
        for key in ("n_examples", "max_clusters", "n_pairs"):
            if getattr(self, key) < 1:
                raise ValueError(f"{key} must be at least 1, got {getattr(self, key)}")
        if not self.temperature > 0:
            raise ValueError(f"temperature must be greater than 0, got {self.temperature}")
