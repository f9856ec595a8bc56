"""Training schedules: pure functions of (epoch, step) -> per-facet coefficients."""

from __future__ import annotations

from typing import Any

from .component import Component
from .types import Coefficients


class Schedule(Component):
    """Maps (epoch, step within the epoch) to :class:`~mfcf.api.Coefficients`.

    A schedule is a pure function: calling it never changes it, so evaluation passes and
    visualisation can ask for coefficients without side effects. Constructed as
    ``MySchedule(config, n_facets=J, steps_per_epoch=N_b, epochs=E)`` where ``epochs`` is the
    trainer's epoch count. When a schedule fixes the total itself (a progressive schedule's
    steps) it must raise :class:`mfcf.errors.ConfigError` on a mismatch rather than override
    anything silently.

    ``state_dict()`` captures whatever the coefficients depend on beyond the config (by default
    ``steps_per_epoch``) and is stored in every checkpoint; ``load_state_dict`` restores it so
    a resumed run continues with exactly the same coefficients.

    Example::

        class ConstantSchedule(Schedule):
            name = "constant"

            def __call__(self, epoch, step):
                return Coefficients.ones(self.n_facets)
    """

    kind = "schedule"

    def __init__(self, config=None, *, n_facets: int = 1, steps_per_epoch: int = 1, epochs: int = 1):
        super().__init__(config)
        self.n_facets = n_facets
        self.steps_per_epoch = steps_per_epoch
        self.epochs = epochs

    @classmethod
    def total_epochs(cls, config: Any) -> int | None:
        """The number of epochs ``config`` fixes, if it fixes one (a progressive schedule's
        ``sum(epochs_per_step)``); ``None`` when any ``trainer.epochs`` will do. The builder
        checks ``trainer.epochs`` against it before any data is loaded."""
        return None

    def __call__(self, epoch: int, step: int) -> Coefficients:
        raise NotImplementedError

    def state_dict(self) -> dict[str, Any]:
        return {"steps_per_epoch": self.steps_per_epoch}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.steps_per_epoch = int(state["steps_per_epoch"])
