"""Run a sweep on Ray Tune, or continue one, and summarise it."""

from __future__ import annotations

import dataclasses
import json
import logging
import re
import sys
from pathlib import Path
from typing import Any

import yaml
from ray import tune

from ..engine.checkpoint import atomic_write_text
from ..engine.summary import Summary
from ..errors import ConfigError, RunDirError, TrainingError
from .cluster import check_resources, connect, current_nodes
from .results import TRIAL_FILE, read_json, write_sweep_summary
from .spec import SWEEP_FILE, Sweep, SweepError, check_storage, load_stored
from .trainable import train_trial

log = logging.getLogger("mfcf.tune")
#: Failed trials an all-failed sweep's error lists one by one.
LISTED_FAILURES = 10


@dataclasses.dataclass
class SweepOutcome:
    directory: Path
    summary: Summary
    summary_files: tuple[Path, Path]
    failed: list[str]  # trials that failed after all their retries
    unfinished: list[str]  # trials neither completed, failed nor stopped early (an interrupted driver)


def run_sweep(sweep: Sweep, *, address: str | None = None, quiet: bool = False, num_cpus: int | None = None,
              num_gpus: int | None = None) -> SweepOutcome:
    """Start ``sweep`` in ``<storage>/<name>`` (which must not exist yet) and wait for it."""
    directory = sweep.directory
    check_storage(directory)
    if directory.is_dir() and any(directory.iterdir()):
        raise SweepError(f"sweep directory '{directory}' already exists; continue it with "
                         f"`mfcf sweep --resume {directory}` or choose another name (name=...)")
    return _fit(sweep, restore=False, address=address, quiet=quiet, num_cpus=num_cpus, num_gpus=num_gpus)


def resume_sweep(sweep_dir: str | Path, *, address: str | None = None, quiet: bool = False,
                 num_cpus: int | None = None, num_gpus: int | None = None) -> SweepOutcome:
    """Continue a sweep whose driver stopped: finished trials stay, running ones restart from
    their last checkpoint, failed ones get another round of retries."""
    sweep = load_stored(sweep_dir)
    return _fit(sweep, restore=True, address=address, quiet=quiet, num_cpus=num_cpus, num_gpus=num_gpus)


def _fit(sweep: Sweep, *, restore: bool, address: str | None, quiet: bool, num_cpus: int | None,
         num_gpus: int | None) -> SweepOutcome:
    _configure_output(quiet)
    directory = sweep.directory
    trials = sweep.trials()
    with connect(address, plugin_modules=sweep.experiment.get("plugins") or [], num_cpus=num_cpus,
                 num_gpus=num_gpus) as where:
        check_resources(sweep.resources.cpu, sweep.resources.gpu, current_nodes())
        if not restore:  # the directory appears once Ray is up and able to run the trials
            try:
                directory.mkdir(parents=True, exist_ok=True)
                atomic_write_text(directory / SWEEP_FILE, yaml.safe_dump(sweep.to_dict(), sort_keys=False))
            except OSError as exc:
                raise ConfigError(f"cannot create the sweep directory '{directory}': {exc.strerror or exc}; "
                                  "choose a writable storage=...", key="storage") from None
        shape = f"{_count(len(sweep.settings), 'setting')} x {_count(len(sweep.seeds), 'seed')}"
        log.info("sweep %s: %s (%s) on %s", sweep.name, _count(len(trials), "trial"), shape, where)
        log.info("sweep directory: %s", directory)
        plan = {"sweep_dir": str(directory), "experiment": sweep.experiment, "metric": sweep.metric,
                "cpu": sweep.resources.cpu}
        trainable = tune.with_resources(tune.with_parameters(train_trial, plan=plan),
                                        {"cpu": sweep.resources.cpu, "gpu": sweep.resources.gpu})
        if restore and tune.Tuner.can_restore(str(directory)):
            log.info("resuming: finished trials are kept, the others continue from their last checkpoint")
            tuner = _restore_tuner(directory, trainable)
        else:
            tuner = tune.Tuner(
                trainable,
                param_space={"trial": tune.grid_search([dataclasses.asdict(t) for t in trials])},
                # reuse_actors: a worker process runs trial after trial, importing torch and the
                # plugins once; every trial still builds its own experiment from its config
                tune_config=tune.TuneConfig(num_samples=1, max_concurrent_trials=sweep.max_concurrent,
                                            reuse_actors=True, scheduler=_scheduler(sweep),
                                            trial_name_creator=trial_name, trial_dirname_creator=trial_name),
                run_config=tune.RunConfig(
                    name=sweep.name, storage_path=sweep.storage, verbose=0,
                    failure_config=tune.FailureConfig(max_failures=sweep.max_failures),
                    checkpoint_config=tune.CheckpointConfig(num_to_keep=2),
                    callbacks=[ProgressCallback(len(trials), sweep.metric)]),
            )
        grid = tuner.fit()
    # a trial's directory is named after it; a trial that never reported has no config in its result
    failed = sorted(Path(r.path).name for r in grid if r.error is not None)
    summary, md, csv_path = write_sweep_summary(directory)
    if len(failed) == len(trials):
        raise TrainingError(_all_failed(directory, failed, md))
    unfinished = [Path(r.run).parent.name for s in summary.settings for r in s.records
                  if r.status in ("incomplete", "missing") and Path(r.run).parent.name not in failed]
    return SweepOutcome(directory, summary, (md, csv_path), failed, unfinished)


def _restore_tuner(directory: Path, trainable: Any) -> tune.Tuner:
    try:
        return tune.Tuner.restore(str(directory), trainable=trainable, resume_errored=True)
    except Exception as exc:  # a damaged tuner.pkl or experiment state: pickle, JSON or Tune errors
        reason = (str(exc).splitlines() or [""])[0]
        raise RunDirError(f"Tune's saved state in '{directory}' cannot be read ({type(exc).__name__}: {reason}).\n"
                          f"  Move '{directory / 'tuner.pkl'}' away and resume again: finished trials are kept, "
                          "unfinished ones start over") from None


def failure_lines(directory: Path, failed: list[str]) -> list[str]:
    """Two lines per failed trial (at most :data:`LISTED_FAILURES`): its exception and its error file."""
    lines = []
    for name in failed[:LISTED_FAILURES]:
        error_file = directory / name / "error.txt"
        lines.append(f"  {name}: {_error_line(error_file)}\n    full error: {error_file}")
    if len(failed) > LISTED_FAILURES:
        lines.append(f"  ... and {len(failed) - LISTED_FAILURES} more (see <trial>/error.txt in {directory})")
    return lines


def _all_failed(directory: Path, failed: list[str], summary: Path) -> str:
    """The error of a sweep whose every trial failed: each trial's exception and its error file."""
    lines = [f"all {len(failed)} trials failed after all their retries:", *failure_lines(directory, failed)]
    lines.append(f"  The summary, every trial marked failed, is in {summary}. Fix the cause, then retry the trials "
                 f"with: mfcf sweep --resume {directory}")
    return "\n".join(lines)


def trial_name(trial: Any) -> str:
    """Tune trial name and directory name: the plan's ``s000-seed0``."""
    return trial.config["trial"]["name"]


def _scheduler(sweep: Sweep):
    if sweep.asha is None:
        return None
    # one report per epoch: training_iteration counts epochs
    return tune.schedulers.ASHAScheduler(time_attr="training_iteration", metric=sweep.metric, mode=sweep.mode,
                                         max_t=sweep.epochs(), grace_period=sweep.asha.grace_period,
                                         reduction_factor=sweep.asha.reduction_factor, brackets=sweep.asha.brackets)


class _DropRestoreHint(logging.Filter):
    """Tune's "Resume experiment with: Tuner.restore(...)" and "Trials did not complete: [...]";
    mfcf says `mfcf sweep --resume` and names the failed trials itself."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        return "Tuner.restore(" not in message and "Trials did not complete" not in message


def _configure_output(quiet: bool) -> None:
    tune_logger = logging.getLogger("ray.tune.tune")
    if not any(isinstance(f, _DropRestoreHint) for f in tune_logger.filters):
        tune_logger.addFilter(_DropRestoreHint())
    if not any(getattr(h, "_mfcf", False) for h in log.handlers):
        handler = logging.StreamHandler(sys.stdout)
        handler.setFormatter(logging.Formatter("%(message)s"))
        handler._mfcf = True  # type: ignore[attr-defined]
        log.addHandler(handler)
        log.propagate = False
    log.setLevel(logging.WARNING if quiet else logging.INFO)


class ProgressCallback(tune.Callback):
    """One line per finished, stopped, crashed or failed trial (runs in the driver)."""

    def __init__(self, total: int, metric: str):
        self.total = total
        self.metric = metric

    def _done(self, trials: list, trial: Any) -> int:
        return 1 + sum(t.status in ("TERMINATED", "ERROR") for t in trials if t is not trial)

    def _line(self, trials: list, trial: Any, status: str, detail: str) -> str:
        width = len(str(self.total))
        values = "  ".join(f"{k}={_short(v)}" for k, v in trial.config["trial"]["values"].items())
        return f"[{self._done(trials, trial):>{width}}/{self.total}] {trial_name(trial)}  {status:<8} {values}  {detail}"

    def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        result = trial.last_result or {}
        seconds = result.get("time_total_s", 0.0)
        if any(k.startswith("test/") for k in result):
            score = result.get(self.metric)
            detail = f"{self.metric} {score:.4g}" if isinstance(score, (int, float)) else ""
            when = "finished before the resume" if result.get("already_finished") else f"{seconds:.0f} s"
            log.info(self._line(trials, trial, "done", f"{detail}  ({when})"))
        else:
            epochs = int(result.get("epochs_done", 0))
            _set_status(trial, "stopped early")
            log.info(self._line(trials, trial, "stopped", f"by the scheduler after {epochs} epoch(s)"))

    def on_trial_recover(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        epochs = int((trial.last_result or {}).get("epochs_done", 0))
        log.info(f"{'':>{2 * len(str(self.total)) + 3}} {trial_name(trial)}  crashed  ({_trial_error(trial)}); "
                 f"retrying from its last checkpoint ({epochs} epoch(s) done)")

    def on_trial_error(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        _set_status(trial, "failed")
        log.warning(self._line(trials, trial, "FAILED", f"{_trial_error(trial)}  (see {trial.path}/error.txt)"))


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}{'s' if n != 1 else ''}"


def _short(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


#: A line naming a Python exception: ``RuntimeError: ...``, ``mfcf.errors.X: ...``, or indented,
#: the cause an mfcf error quotes on its last line.
_EXCEPTION = re.compile(r" *[A-Za-z_][\w.]*: \S")  # not Ray's tab-indented actor details


def _trial_error(trial: Any) -> str:
    return _error_line(Path(trial.error_file)) if trial.error_file else "error"


def _error_line(error_file: Path) -> str:
    """The last exception an error file names (the cause, where Ray or mfcf wrap one: a worker
    that could not import the trainable, a plugin that failed), shortened; else its last line."""
    try:
        lines = [ln for ln in error_file.read_text(errors="replace").splitlines() if ln.strip()]
    except OSError:
        return "error (no error file)"
    headers = [ln for ln in lines if _EXCEPTION.match(ln)]
    line = (headers or lines or ["error"])[-1].strip()
    return line if len(line) <= 200 else line[:197] + "..."


def _set_status(trial: Any, status: str) -> None:
    path = Path(trial.path) / TRIAL_FILE
    try:
        info = read_json(path)
        if info.get("status") != "completed":
            atomic_write_text(path, json.dumps({**info, "status": status}, indent=2))
    except (OSError, RunDirError):  # best effort: without it the summary shows the trial as missing
        pass

