"""Training schedules: per-facet (alpha_enc, alpha_dec, beta_z, beta_c) as pure functions of
(epoch, step within the epoch).

* ``constant`` -- every coefficient 1 (optionally fixed betas), no progressive training.
* ``progressive`` -- the progressive ladder of MFCVAE.md §5.5: facets switched on top-down
  (facet J-1 first), each new facet's decoder rung and KL weights faded in linearly.

Both accept ``kl_warmup_batches`` (default 0 = off, as in the paper): every beta is multiplied
by ``w = min(1, t / kl_warmup_batches)`` where ``t = epoch * steps_per_epoch + step`` counts
batches from the start of training. The alphas are not affected; the warm-up acts on top of
(multiplies) the progressive KL fade.
"""

from __future__ import annotations

import dataclasses

from mfcf.api import Coefficients, Schedule
from mfcf.config import positive
from mfcf.errors import ConfigError


def _check_unit(value: float, key: str) -> None:
    if not 0.0 <= value <= 1.0:
        raise ConfigError(f"must lie in [0, 1], got {value}", key=key)


class _WarmupMixin:
    """KL warm-up factor shared by both schedules."""

    def _warmup(self, epoch: int, step: int) -> float:
        n = self.config.kl_warmup_batches
        if n == 0:
            return 1.0
        return min(1.0, (epoch * self.steps_per_epoch + step) / n)

    @staticmethod
    def _check_position(epoch: int, step: int) -> None:
        if epoch < 0 or step < 0:
            raise ValueError(f"epoch and step must be >= 0, got epoch={epoch}, step={step}")


@dataclasses.dataclass
class ConstantScheduleConfig:
    """``schedule: {name: constant}``: alphas 1; ``beta_z`` / ``beta_c`` for every facet
    (1 = the plain ELBO), optionally warmed up from 0 over ``kl_warmup_batches`` batches."""

    beta_z: float = 1.0
    beta_c: float = 1.0
    kl_warmup_batches: int = 0

    def __post_init__(self) -> None:
        positive(self.beta_z, "beta_z", allow_zero=True)
        positive(self.beta_c, "beta_c", allow_zero=True)
        positive(self.kl_warmup_batches, "kl_warmup_batches", allow_zero=True)


class ConstantSchedule(_WarmupMixin, Schedule):
    """No progressive training: ``alpha = 1``, ``beta = (beta_z, beta_c) * warm-up``."""

    name = "constant"
    Config = ConstantScheduleConfig

    def __init__(self, config: ConstantScheduleConfig, *, n_facets: int, steps_per_epoch: int, epochs: int):
        super().__init__(config, n_facets=n_facets, steps_per_epoch=steps_per_epoch, epochs=epochs)
        positive(steps_per_epoch, "steps_per_epoch")

    def __call__(self, epoch: int, step: int) -> Coefficients:
        self._check_position(epoch, step)
        w = self._warmup(epoch, step)
        J = self.n_facets
        one = (1.0,) * J
        return Coefficients(one, one, (self.config.beta_z * w,) * J, (self.config.beta_c * w,) * J)


@dataclasses.dataclass
class ProgressiveScheduleConfig:
    """``schedule: {name: progressive, ...}`` (§5.5).

    * ``epochs_per_step`` -- epochs of each progressive step, one per facet; step s introduces
      facet J-1-s. ``trainer.epochs`` must equal their sum (checked, never overridden);
      the default is the paper's MNIST schedule [201, 201] (J = 2);
    * ``fade_in_batches`` -- length F of the linear fade of a newly introduced facet;
    * ``pretrain_beta_z`` / ``pretrain_beta_c`` -- KL weights of facets not yet introduced
      (the fade then ramps from them to 1);
    * ``kl_warmup_batches`` -- optional global KL warm-up (module docstring); 0 = off.
    """

    epochs_per_step: list[int] = dataclasses.field(default_factory=lambda: [201, 201])
    fade_in_batches: int = 15000
    pretrain_beta_z: float = 0.0
    pretrain_beta_c: float = 0.0
    kl_warmup_batches: int = 0

    def __post_init__(self) -> None:
        if not self.epochs_per_step or min(self.epochs_per_step) <= 0:
            raise ConfigError(f"needs one epoch count > 0 per facet, got {list(self.epochs_per_step)}",
                              key="epochs_per_step")
        positive(self.fade_in_batches, "fade_in_batches")
        _check_unit(self.pretrain_beta_z, "pretrain_beta_z")
        _check_unit(self.pretrain_beta_c, "pretrain_beta_c")
        positive(self.kl_warmup_batches, "kl_warmup_batches", allow_zero=True)


class ProgressiveSchedule(_WarmupMixin, Schedule):
    """Progressive ladder training (§5.5).

    At (epoch e, batch b): step s is the first with e < n_0 + ... + n_s, t = b + N_b * (e -
    start of s) batches into the step, and k = J-1-s is the facet being introduced. With
    f = min(t / F, 1) (f = 1 during step 0) and g = min(f (1 - pretrain) + pretrain, 1):

    ===========  =========  =========  ===============
    facet j      alpha_enc  alpha_dec  beta_z / beta_c
    ===========  =========  =========  ===============
    j > k        1          1          1
    j = k        1          f          g_z / g_c
    j < k        1          0          pretrain_beta_z / pretrain_beta_c
    ===========  =========  =========  ===============

    Epochs past the last step continue it (its fade keeps running to 1), so evaluating after
    training is well defined. ``steps_per_epoch`` travels in :meth:`state_dict` (§9, D15).
    """

    name = "progressive"
    Config = ProgressiveScheduleConfig

    def __init__(self, config: ProgressiveScheduleConfig, *, n_facets: int, steps_per_epoch: int, epochs: int):
        super().__init__(config, n_facets=n_facets, steps_per_epoch=steps_per_epoch, epochs=epochs)
        positive(steps_per_epoch, "steps_per_epoch")
        steps = list(config.epochs_per_step)
        if len(steps) != n_facets:
            raise ConfigError(
                f"needs one entry per facet: got {len(steps)} ({steps}) for {n_facets} facet(s)",
                key="epochs_per_step",
            )
        if epochs != sum(steps):
            raise ConfigError(
                f"trainer.epochs is {epochs} but the progressive schedule runs sum(schedule.epochs_per_step) "
                f"= {sum(steps)} epochs ({steps}); set trainer.epochs: {sum(steps)} or change "
                "schedule.epochs_per_step",
                key="trainer.epochs",
            )
        self._starts = [sum(steps[:s]) for s in range(n_facets)]

    @classmethod
    def total_epochs(cls, config: ProgressiveScheduleConfig) -> int:
        return sum(config.epochs_per_step)

    def __call__(self, epoch: int, step: int) -> Coefficients:
        self._check_position(epoch, step)
        c, J = self.config, self.n_facets
        s = next((s for s in reversed(range(J)) if epoch >= self._starts[s]), 0)
        k = J - 1 - s
        if s == 0:
            f = g_z = g_c = 1.0
        else:
            ramp = (step + self.steps_per_epoch * (epoch - self._starts[s])) / c.fade_in_batches
            f = min(ramp, 1.0)
            g_z = min(ramp * (1 - c.pretrain_beta_z) + c.pretrain_beta_z, 1.0)
            g_c = min(ramp * (1 - c.pretrain_beta_c) + c.pretrain_beta_c, 1.0)
        alpha_dec = tuple(1.0 if j > k else f if j == k else 0.0 for j in range(J))
        beta_z = tuple(1.0 if j > k else g_z if j == k else c.pretrain_beta_z for j in range(J))
        beta_c = tuple(1.0 if j > k else g_c if j == k else c.pretrain_beta_c for j in range(J))
        w = self._warmup(epoch, step)
        if w != 1.0:
            beta_z, beta_c = tuple(b * w for b in beta_z), tuple(b * w for b in beta_c)
        return Coefficients((1.0,) * J, alpha_dec, beta_z, beta_c)

    def state_dict(self) -> dict:
        return {"steps_per_epoch": int(self.steps_per_epoch),
                "epochs_per_step": [int(n) for n in self.config.epochs_per_step]}

    def load_state_dict(self, state: dict) -> None:
        saved = state.get("epochs_per_step")
        if saved is not None and list(saved) != list(self.config.epochs_per_step):
            raise ConfigError(
                f"the checkpoint was trained with epochs_per_step {list(saved)}, the config says "
                f"{list(self.config.epochs_per_step)}; resume with the original schedule",
                key="schedule.epochs_per_step",
            )
        super().load_state_dict(state)
