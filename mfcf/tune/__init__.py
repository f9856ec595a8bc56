"""Distributed sweeps on Ray Tune: one config fanned out over seeds and hyperparameters.

::

    from mfcf.tune import load_sweep, run_sweep

    sweep = load_sweep("configs/sweeps/toy_lr.yaml", ["trainer.epochs=2"])
    outcome = run_sweep(sweep)                      # a private local Ray instance
    outcome = run_sweep(sweep, address="auto")      # or an existing cluster
    print(outcome.summary.markdown())

Modules: :mod:`~mfcf.tune.spec` (the sweep file and the trial plan) and
:mod:`~mfcf.tune.results` (summaries of a sweep directory) do not import Ray;
:mod:`~mfcf.tune.cluster`, :mod:`~mfcf.tune.trainable` and :mod:`~mfcf.tune.runner` do, and
are only imported when a sweep runs. Nothing else in mfcf imports Ray.
"""

from __future__ import annotations

from .spec import Sweep, SweepError, load_stored, load_sweep


def run_sweep(sweep, **kwargs):
    """Run ``sweep`` on Ray Tune and summarise it (see :func:`mfcf.tune.runner.run_sweep`)."""
    from .runner import run_sweep as run

    return run(sweep, **kwargs)


def resume_sweep(sweep_dir, **kwargs):
    """Continue a sweep directory (see :func:`mfcf.tune.runner.resume_sweep`)."""
    from .runner import resume_sweep as resume

    return resume(sweep_dir, **kwargs)


__all__ = ["Sweep", "SweepError", "load_stored", "load_sweep", "resume_sweep", "run_sweep"]
