"""The Ray Tune function trainable: one (setting, seed) trial of a sweep.

A trial trains through :func:`mfcf.engine.trainer.train` into ``<sweep dir>/<trial>/run`` and
reports each epoch's metrics row to Tune with a checkpoint: a snapshot of the run directory's
small files (``checkpoints/last.pt``, ``metrics.csv``, the configs, ``run.json``). When Tune
restarts the trial (a crash, or ``mfcf sweep --resume``), the snapshot is put back into the run
directory and :func:`mfcf.engine.trainer.resume` continues it, so the trainer's bit-exact
resume is reused. Once training is done the run is evaluated on the validation split (when
there is one) and the test split, and a last report carries those scores.

The final epoch is reported only after training finished and the run was evaluated, so a
scheduler that stops the trial at that point loses nothing. A trial that finished just before
the driver was killed (so Tune never recorded it) is not run again on ``--resume``: its stored
results are reported once more.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
from pathlib import Path
from typing import Any

from ray import tune

from ..engine.build import resolve
from ..engine.checkpoint import atomic_write_text
from ..engine.evaluation import evaluate_run
from ..engine.rundir import RunDir
from ..engine.summary import flatten_evaluation, last_logged
from ..engine.trainer import resume, train
from ..errors import ConfigError
from .results import TRIAL_FILE, read_json
from .spec import apply_values

#: Files of a run directory that a Tune checkpoint carries (TensorBoard files stay out).
SNAPSHOT = ("config.yaml", "resolved.yaml", "plugins.json", "run.json", "metrics.csv", "checkpoints/last.pt")


def train_trial(config: dict[str, Any], plan: dict[str, Any]) -> None:
    """Run one trial. ``config['trial']`` is a :class:`~mfcf.tune.spec.Trial` as a dict; ``plan``
    holds the sweep directory, the base experiment, the metric and the CPUs per trial."""
    trial = config["trial"]
    trial_dir = Path(plan["sweep_dir"]) / trial["name"]
    run_dir = trial_dir / "run"
    values = {**trial["values"], "trainer.seed": trial["seed"]}
    if plan["experiment"].get("trainer", {}).get("threads") is None:
        values["trainer.threads"] = max(1, int(plan["cpu"]))  # torch would otherwise use every core of the node
    experiment = apply_values(plan["experiment"], values)
    resolved = resolve(experiment)
    last_epoch = resolved.trainer.epochs_to_run - 1 if resolved.classes["model"].trains_by_gradient else None
    staging = trial_dir / ".checkpoint-staging"

    def report(row: dict[str, Any], run: RunDir) -> None:
        if last_epoch is None or row.get("epoch") == last_epoch:
            return  # the final epoch is reported after evaluation, below
        tune.report(_numbers(row), checkpoint=_snapshot(run, staging))
        shutil.rmtree(staging, ignore_errors=True)

    if _finished(trial_dir, run_dir):  # done before the driver stopped, but Tune had not recorded it
        _write_json(trial_dir / TRIAL_FILE, _bump(read_json(trial_dir / TRIAL_FILE), "reported_again"))
        tune.report({**_final_metrics(RunDir(run_dir), plan["metric"]), "already_finished": 1.0})
        return
    checkpoint = tune.get_checkpoint()
    info = _update_trial_file(trial_dir, trial, checkpoint is not None)
    if checkpoint is not None:
        with checkpoint.as_directory() as snapshot:
            _restore(Path(snapshot), run_dir)
        resume(run_dir, quiet=True, on_epoch_end=report)
    else:
        if run_dir.exists():  # a previous attempt that never reported: start again from scratch
            shutil.rmtree(run_dir)
        train(experiment, run_dir=run_dir, quiet=True, on_epoch_end=report)

    _evaluate(run_dir, resolved.data.val_fraction > 0)
    run = RunDir(run_dir)
    metrics = _final_metrics(run, plan["metric"])
    _write_json(trial_dir / TRIAL_FILE, {**info, "status": "completed"})
    tune.report(metrics, checkpoint=_snapshot(run, staging))
    shutil.rmtree(staging, ignore_errors=True)


def _finished(trial_dir: Path, run_dir: Path) -> bool:
    run = RunDir(run_dir)
    return (read_json(trial_dir / TRIAL_FILE).get("status") == "completed" and run.final_model.is_file()
            and run.evaluation("test").is_file())


def _final_metrics(run: RunDir, metric: str) -> dict[str, float]:
    """The last epoch's row, the last value of every train/val column, and the evaluations."""
    rows = run.read_metrics()
    metrics = {**(_numbers(rows[-1]) if rows else {}), **last_logged(rows)}  # val/* may skip epochs
    for split in ("val", "test"):
        if run.evaluation(split).is_file():
            metrics.update(flatten_evaluation(json.loads(run.evaluation(split).read_text())))
    if metric not in metrics:
        raise ConfigError(f"this trial never reported '{metric}', so it cannot rank the settings; it reported: "
                          f"{', '.join(sorted(metrics))}", key="metric")
    return metrics


def _evaluate(run_dir: Path, has_val: bool) -> None:
    """Evaluate the trained run on val (if any) and test; write ``eval-<split>.json``."""
    for split in ("val", "test") if has_val else ("test",):
        evaluate_run(run_dir, split)


def _snapshot(run: RunDir, staging: Path) -> tune.Checkpoint:
    shutil.rmtree(staging, ignore_errors=True)
    for name in SNAPSHOT:
        source = run.path / name
        if source.is_file():
            (staging / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, staging / name)
    return tune.Checkpoint.from_directory(str(staging))


def _restore(snapshot: Path, run_dir: Path) -> None:
    for name in SNAPSHOT:
        source = snapshot / name
        if source.is_file():
            (run_dir / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, run_dir / name)
    for stale in run_dir.glob("eval-*.json"):
        stale.unlink()
    (run_dir / "model.pt").unlink(missing_ok=True)


def _update_trial_file(trial_dir: Path, trial: dict[str, Any], restored: bool) -> dict[str, Any]:
    """Record this attempt in ``<trial dir>/trial.json`` (attempts count, where it ran)."""
    info = read_json(trial_dir / TRIAL_FILE)
    info.update(trial=trial["name"], setting=trial["label"], values=trial["values"], seed=trial["seed"],
                trial_id=tune.get_context().get_trial_id(), attempts=info.get("attempts", 0) + 1,
                host=socket.gethostname(), pid=os.getpid(), status="running")
    info.setdefault("restored_from_checkpoint", [])
    if restored:
        info["restored_from_checkpoint"].append(info["attempts"])
    _write_json(trial_dir / TRIAL_FILE, info)
    return info


def _bump(info: dict[str, Any], key: str) -> dict[str, Any]:
    return {**info, key: info.get(key, 0) + 1}


def _write_json(path: Path, data: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, json.dumps(data, indent=2))


def _numbers(row: dict[str, Any]) -> dict[str, float]:
    out = {}
    for key, value in row.items():
        try:
            out[key] = float(value)
        except (TypeError, ValueError):
            continue
    if "epoch" in out:
        out["epochs_done"] = out["epoch"] + 1
    return out
