"""The trainer: one loop for gradient models, a single ``fit`` call for the others.

A run can be killed at any moment (SIGKILL included) and continued with :func:`resume`. A
checkpoint holds the model (with any extra state such as a schedule's), the optimiser, every
RNG state, the position (epoch, step) and the running epoch sums of the logged terms; the data
order of an epoch is a pure function of (seed, epoch). So on the CPU a resumed run ends with
weights bit-identical to an uninterrupted one. Checkpoints are written by a
:class:`~mfcf.engine.checkpoint.CheckpointWriter` on a background thread; the loop waits only for
the copy of the state to the CPU.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import shutil
import time
import traceback
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from tqdm.auto import tqdm

from ..api import LossOutput
from ..config import load_config
from ..errors import PluginError, RunDirError, TrainingError
from ..plugins import describe_exception
from ..registry import Entry
from .batches import DeviceBatches
from .build import Experiment, build, resolve
from .checkpoint import (CHECKPOINT_FORMAT, TRAINING_KEYS, WEIGHTS_KEYS, CheckpointWriter, load_checkpoint,
                         rng_state, save_checkpoint, set_rng_state)
from .evaluation import evaluate_experiment, resolve_stored
from .lock import LOCK_NAME, ensure_unlocked
from .rundir import (RUNS_DIR_KEYS, RunDir, check_writable_folder, damaged, default_run_name, ensure_absent,
                     unusable_folder)
from .summary import flatten_evaluation


class _EpochSums:
    """Running Σ term·batch_size of one epoch, kept on the device (no host sync per step)."""

    def __init__(self, keys: Sequence[str], device: torch.device, values: torch.Tensor | None = None,
                 count: int = 0, first_bad: int = -1):
        self.keys = list(keys)
        self.values = values.to(device) if values is not None else torch.zeros(len(keys), device=device, dtype=torch.float64)
        self.count = count
        self.first_bad = torch.tensor(first_bad, device=device)

    @classmethod
    def for_output(cls, out: LossOutput, device: torch.device) -> _EpochSums:
        return cls(["loss", *[k for k in out.terms if k != "loss"]], device)

    def add(self, out: LossOutput, batch_size: int, global_step: int) -> None:
        loss = out.loss.detach()
        terms = torch.stack([loss, *[out.terms[k] for k in self.keys[1:]]]).to(torch.float64)
        self.values += terms * batch_size
        self.count += batch_size
        self.first_bad = torch.where((self.first_bad < 0) & ~torch.isfinite(loss), global_step, self.first_bad)

    def bad_step(self) -> int:
        return int(self.first_bad)

    def means(self) -> dict[str, float]:
        return dict(zip(self.keys, (self.values / max(self.count, 1)).tolist()))

    def state(self) -> dict[str, Any]:
        return {"keys": self.keys, "values": self.values.cpu(), "count": self.count, "first_bad": int(self.first_bad)}


@dataclasses.dataclass
class _Start:
    """Where a training loop starts: a fresh run, or a checkpoint's position and state."""

    optimizer: torch.optim.Optimizer
    epoch: int = 0
    step: int = 0
    global_step: int = 0
    sums: _EpochSums | None = None
    rows: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    train_seconds: float = 0.0

    def resume_sums(self, saved: Mapping[str, Any] | None, device: torch.device) -> None:
        if saved is not None:
            self.sums = _EpochSums(saved["keys"], device, saved["values"], saved["count"], saved["first_bad"])


def make_optimizer(params: Sequence[torch.nn.Parameter], lr: float) -> torch.optim.Adam:
    """The trainer's optimiser: Adam, with torch's fused kernel wherever it exists (CPU, CUDA).

    The fused kernel updates every parameter in one call instead of a Python loop of
    element-wise ops per parameter: on a 2-core CPU one Adam step of the paper's MNIST ladder
    (3.1 M parameters) takes ~1 ms instead of ~8 ms. Benchmarks build their bare baselines
    with this same function, so ratios compare like with like.
    """
    params = list(params)
    fused = all(p.device.type in ("cpu", "cuda") and p.is_floating_point() for p in params)
    return torch.optim.Adam(params, lr=lr, fused=fused or None)


def precision_autocast(device_type: str, precision: str) -> torch.autocast:
    """The autocast a loss's forward pass runs under for ``trainer.precision``: bfloat16 for
    ``bf16``, disabled for ``fp32``. The backward pass runs outside it, as torch recommends;
    bf16 needs no gradient scaling."""
    return torch.autocast(device_type, dtype=torch.bfloat16, enabled=precision == "bf16")


#: Called after every epoch's checkpoint is on disk: ``callback(metrics_row, run_dir)``.
EpochCallback = Callable[[dict[str, Any], RunDir], None]


class Trainer:
    """Trains ``experiment.model`` into ``run`` (see :class:`~mfcf.engine.rundir.RunDir`).

    ``on_epoch_end`` (optional) is called after each epoch once its metrics row and
    checkpoint are written, e.g. to report to Ray Tune; models with their own ``fit`` call it
    once, after fitting.
    """

    def __init__(self, experiment: Experiment, run: RunDir, *, quiet: bool = False,
                 on_epoch_end: EpochCallback | None = None):
        self.exp = experiment
        self.run = run
        self.quiet = quiet
        self.on_epoch_end = on_epoch_end
        self.cfg = experiment.trainer
        self.batch_size = experiment.resolved.data.batch_size
        self._checkpoints: CheckpointWriter | None = None

    def fit(self) -> None:
        """Train from the run's last checkpoint (or its start) to the end, then write ``model.pt``.

        The checkpoint and ``metrics.csv`` are checked and loaded before anything is written, so
        a damaged run directory is a :class:`RunDirError` that leaves it as it was. Once training
        has started, every failure marks ``run.json`` failed with the reason; a write that fails
        (disk full, file-size limit, a folder replaced by a file) ends as a :class:`TrainingError`
        naming the file.
        """
        start = self._restore()
        self.run.write_status("running", device=str(self.exp.device))
        try:
            if self.exp.model.trains_by_gradient:
                self._gradient_loop(start)
            else:
                self._direct_fit()
            save_checkpoint(self.run.final_model, {"format": CHECKPOINT_FORMAT, "model": self.exp.model.state_dict()})
        except TrainingError as exc:
            self._mark_failed(str(exc))
            raise
        except RunDirError as exc:  # a write failed mid-run
            error = TrainingError(f"training stopped: {exc}")
            self._mark_failed(str(error))
            raise error from exc
        except KeyboardInterrupt:
            self.run.write_status("interrupted")
            raise
        except Exception as exc:
            self._mark_failed(repr(exc), traceback="".join(traceback.format_exception(exc)))
            blamed = self.exp.resolved.registry.blame(exc)
            if blamed is None:
                raise
            raise self._plugin_failure(exc, *blamed) from exc
        self.run.write_status("completed")

    def _mark_failed(self, reason: str, **extra: str) -> None:
        with contextlib.suppress(RunDirError):  # the disk may be full: the error itself still reaches the user
            self.run.write_status("failed", error=reason, **extra)

    def _plugin_failure(self, exc: Exception, entry: Entry, method: str) -> PluginError:
        """The error for an exception raised inside a registered component's method; its last
        line is the original exception (what a sweep shows for a crashed trial)."""
        return PluginError(
            f"{entry.kind} '{entry.name}' ({entry.cls.__module__}.{entry.cls.__qualname__}, from {entry.provider}) "
            f"failed in {method}() during training. The run '{self.run.path}' is marked failed, its last "
            "checkpoint is intact and run.json holds the full traceback; report it to the plugin's authors, or "
            f"pick another {entry.kind} in the config.\n  {describe_exception(exc)}")

    def _restore(self) -> _Start | None:
        """The position, optimiser, RNG and logged rows to start from, loaded and checked
        (read-only: nothing is written); ``None`` for models with their own ``fit``."""
        model, cfg, path = self.exp.model, self.cfg, self.run.checkpoint
        if not model.trains_by_gradient:
            if path.is_file():
                load_checkpoint(path, WEIGHTS_KEYS)  # a damaged checkpoint is reported, not overwritten
            return None
        start = _Start(make_optimizer([p for p in model.parameters() if p.requires_grad], cfg.lr))
        if not path.is_file():
            return start
        state = load_checkpoint(path, TRAINING_KEYS)
        steps_per_epoch = math.ceil(len(self.exp.train) / self.batch_size)
        position = tuple(state[k] for k in ("epoch", "step", "global_step"))
        if not all(isinstance(v, int) and v >= 0 for v in position):
            raise damaged(path, f"its position (epoch, step, global step) {position} is not three counts")
        epoch, step, global_step = position
        if epoch > cfg.epochs:
            raise damaged(path, f"it is at epoch {epoch}, beyond this run's trainer.epochs = {cfg.epochs}")
        if step >= steps_per_epoch or global_step != epoch * steps_per_epoch + step:
            raise damaged(path, f"its position (epoch {epoch}, step {step}, global step {global_step}) does not "
                                f"fit this run's {steps_per_epoch} steps per epoch")
        for what, load in (("model weights", lambda: model.load_state_dict(state["model"])),
                           ("optimiser state", lambda: start.optimizer.load_state_dict(state["optimizer"])),
                           ("random-number states", lambda: set_rng_state(state["rng"])),
                           ("running sums", lambda: start.resume_sums(state["sums"], self.exp.device))):
            try:
                load()
            except (RuntimeError, KeyError, IndexError, TypeError, ValueError, AttributeError) as exc:
                raise damaged(path, f"its {what} do not fit this run's config ({str(exc).splitlines()[0]}); "
                                    "it may come from another config") from None
        start.epoch, start.step, start.global_step = epoch, step, global_step
        start.rows = [r for r in self.run.read_metrics() if int(r["epoch"]) < epoch]
        try:
            start.train_seconds = float(start.rows[-1].get("time/train_s") or 0.0) if start.rows else 0.0
        except ValueError:
            raise damaged(self.run.metrics, "its time/train_s column is not a number") from None
        return start

    # -- models with their own fit ---------------------------------------------------------
    def _direct_fit(self) -> None:
        start = time.perf_counter()
        self.exp.model.fit(self.exp.train, seed=self.cfg.seed)
        seconds = round(time.perf_counter() - start, 3)
        row = {"epoch": 0, "fit_seconds": seconds, "time/train_s": seconds}
        self.run.write_metrics([row])
        save_checkpoint(self.run.checkpoint, {"format": CHECKPOINT_FORMAT, "epoch": 1, "step": 0, "global_step": 0,
                                              "model": self.exp.model.state_dict()})
        if self.on_epoch_end is not None:
            self.on_epoch_end(row, self.run)

    # -- gradient models -------------------------------------------------------------------
    def _gradient_loop(self, start: _Start) -> None:
        from torch.utils.tensorboard import SummaryWriter

        exp, cfg, model = self.exp, self.cfg, self.exp.model
        params = [p for p in model.parameters() if p.requires_grad]
        optimizer = start.optimizer
        if cfg.compile != "eager":
            model.compile_training(cfg.compile)
        batches = DeviceBatches(exp.train.images, self.batch_size, shuffle=True, seed=cfg.seed)
        steps_per_epoch = len(batches)
        epoch, step, global_step, sums, rows = start.epoch, start.step, start.global_step, start.sums, start.rows
        train_seconds = start.train_seconds
        resumed = self.run.checkpoint.is_file()
        writer = SummaryWriter(str(self.run.tensorboard), purge_step=global_step if resumed else None)

        def save(next_epoch: int, next_step: int) -> None:
            self._check_finite(sums, steps_per_epoch)
            self._checkpoints.save(self.run.checkpoint, {
                "format": CHECKPOINT_FORMAT, "epoch": next_epoch, "step": next_step, "global_step": global_step,
                "model": model.state_dict(), "optimizer": optimizer.state_dict(), "rng": rng_state(),
                "sums": sums.state() if sums is not None and next_step > 0 else None,
            })

        # checkpoints are written in the background; leaving the block waits for the last one
        with writer, CheckpointWriter() as self._checkpoints:
            for epoch in range(epoch, cfg.epochs_to_run):
                epoch_started = time.perf_counter()
                if step == 0:
                    model.on_epoch_start(epoch, exp.train)
                model.train()
                bar = tqdm(total=len(exp.train), initial=min(step * self.batch_size, len(exp.train)), unit="ex",
                           desc=f"epoch {epoch + 1}/{cfg.epochs_to_run}", disable=self.quiet, leave=False,
                           dynamic_ncols=True)
                started = time.perf_counter()
                first_step = step
                for x in batches.epoch(epoch, step):
                    with self._autocast():
                        out = model.training_loss(x, epoch=epoch, step=step)
                    optimizer.zero_grad(set_to_none=True)
                    out.loss.backward()
                    if cfg.grad_clip:
                        torch.nn.utils.clip_grad_norm_(params, cfg.grad_clip)
                    optimizer.step()
                    if sums is None:
                        sums = _EpochSums.for_output(out, exp.device)
                    sums.add(out, len(x), global_step)
                    step += 1
                    global_step += 1
                    bar.update(len(x))
                    if step % cfg.log_every_steps == 0 or step == steps_per_epoch:
                        self._check_finite(sums, steps_per_epoch)
                        bar.set_postfix({k: f"{v:.4g}" for k, v in list(sums.means().items())[:4]}, refresh=False)
                    if cfg.checkpoint_every_steps and global_step % cfg.checkpoint_every_steps == 0 \
                            and step < steps_per_epoch:
                        save(epoch, step)
                bar.close()
                seconds = time.perf_counter() - started
                model.on_epoch_end(epoch, exp.train)
                train_seconds += time.perf_counter() - epoch_started
                self._check_finite(sums, steps_per_epoch)
                row: dict[str, Any] = {"epoch": epoch, "global_step": global_step}
                row.update({f"train/{k}": v for k, v in sums.means().items()})
                row["lr"] = optimizer.param_groups[0]["lr"]
                row["examples_per_s"] = round((step - first_step) * self.batch_size / max(seconds, 1e-9), 1)
                row["time/train_s"] = round(train_seconds, 3)
                if exp.val is not None and (epoch + 1) % cfg.eval_every_epochs == 0:
                    row.update({f"val/{k}": v for k, v in self._validation(epoch).items()})
                if exp.val is not None and cfg.score_every_epochs and (epoch + 1) % cfg.score_every_epochs == 0 \
                        and model.has_clusters:
                    row.update(self._validation_scores())
                rows.append(row)
                self.run.write_metrics(rows)
                for key, value in row.items():
                    if key != "epoch" and isinstance(value, (int, float)):
                        writer.add_scalar(key, value, global_step)
                writer.flush()
                step, sums = 0, None
                save(epoch + 1, 0)
                if self.on_epoch_end is not None:
                    self._checkpoints.wait()
                    self.on_epoch_end(row, self.run)
                if not self.quiet:
                    shown = {k: row[k] for k in ("train/loss", "val/loss") if k in row}
                    tqdm.write(f"epoch {epoch + 1}/{cfg.epochs_to_run}  " +
                               "  ".join(f"{k} {v:.4f}" for k, v in shown.items()) +
                               f"  {row['examples_per_s']:.0f} ex/s")

    @torch.no_grad()
    def _validation(self, epoch: int) -> dict[str, float]:
        model = self.exp.model
        sums = None
        # validation never shifts the training RNG stream
        with model.evaluating(), torch.random.fork_rng(devices=self._cuda_devices()):
            for x in DeviceBatches(self.exp.val.images, self.exp.resolved.data.eval_batch_size, shuffle=False).epoch(0):
                with self._autocast():
                    out = model.validation_loss(x, epoch=epoch)
                if out is None:
                    return {}
                sums = sums or _EpochSums.for_output(out, self.exp.device)
                sums.add(out, len(x), 0)
        return sums.means() if sums is not None else {}

    def _autocast(self) -> torch.autocast:
        return precision_autocast(self.exp.device.type, self.cfg.precision)

    def _cuda_devices(self) -> list[torch.device]:
        return [self.exp.device] if self.exp.device.type == "cuda" else []

    def _validation_scores(self) -> dict[str, float]:
        """Clustering scores of every facet against every factor on the validation split,
        ``val/facet<j>/<factor>/<metric>``: logged to follow training, never used to select."""
        with torch.random.fork_rng(devices=self._cuda_devices()):
            return flatten_evaluation(evaluate_experiment(self.exp, "val"))

    def _check_finite(self, sums: _EpochSums | None, steps_per_epoch: int) -> None:
        if sums is None or sums.bad_step() < 0:
            return
        epoch, step = divmod(sums.bad_step(), steps_per_epoch)
        if self._checkpoints is not None:
            self._checkpoints.wait()
        last = load_checkpoint(self.run.checkpoint) if self.run.checkpoint.is_file() else None
        where = (f"the last good checkpoint '{self.run.checkpoint}' (epoch {last['epoch']}, step {last['step']}) "
                 "is intact") if last else "no checkpoint had been written yet"
        raise TrainingError(
            f"the training loss became non-finite at epoch {epoch}, step {step}; training stopped and {where}.\n"
            "  Try a lower trainer.lr, set trainer.grad_clip, or check the data and the likelihood.")


def train(config: str | Path | Mapping[str, Any], overrides: Sequence[str] = (), *,
          run_dir: str | Path | None = None, quiet: bool = False, on_epoch_end: EpochCallback | None = None) -> Path:
    """Train the experiment a config describes into a new run directory and return its path.

    ``config`` is a YAML path or a mapping; ``overrides`` are ``key=value`` strings. Everything is
    validated and the data loaded before the run directory is created; a failure before training
    starts leaves no run directory behind. The run holds its directory's lock
    (:mod:`mfcf.engine.lock`) while it writes.
    """
    user = (load_config(config, overrides) if isinstance(config, (str, Path))
            else load_config(base=config, overrides=overrides))
    resolved = resolve(user)
    if run_dir is not None:
        ensure_absent(Path(run_dir))
        check_writable_folder(run_dir, "--run-dir")
    else:
        check_writable_folder(resolved.trainer.runs_dir, RUNS_DIR_KEYS)
    experiment = build(resolved)
    run, created = _new_run_dir(experiment, run_dir)
    # Refused by the lock, a process removes nothing: the holder may be a second run that found
    # the directory this process had just created, and is writing into it.
    with run.lock():
        try:
            if run_dir is not None:  # another process may have filled it since the check above
                ensure_absent(run.path, ignore=[LOCK_NAME])
            run.prepare(user, experiment.config, experiment.resolved.registry.providers())
            if not quiet:
                tqdm.write(f"run directory: {run.path}")
            Trainer(experiment, run, quiet=quiet, on_epoch_end=on_epoch_end).fit()
        except RunDirError:
            if created and not run.status_file.exists():  # nothing of a run was written: leave nothing behind
                shutil.rmtree(run.path, ignore_errors=True)
            raise
    return run.path


def _new_run_dir(experiment: Experiment, run_dir: str | Path | None) -> tuple[RunDir, bool]:
    """The run directory a fresh run writes into, and whether this call created it."""
    if run_dir is None:
        return RunDir.create(experiment.trainer.runs_dir, default_run_name(experiment.config)), True
    path = Path(run_dir)
    try:
        path.mkdir(parents=True)
        return RunDir(path), True
    except FileExistsError:
        return RunDir(path), False
    except OSError as exc:
        raise unusable_folder(path, exc, "--run-dir") from None


def resume(run_dir: str | Path, *, quiet: bool = False, on_epoch_end: EpochCallback | None = None) -> Path:
    """Continue a killed or interrupted run from its last checkpoint (or its start).

    Refused at once while another process writes the run (its lock is held). A damaged run
    directory is a :class:`RunDirError` naming the file, and nothing in it is changed; temp files
    left by a write that was killed mid-way are removed.
    """
    run = RunDir.open(run_dir)
    ensure_unlocked(run.path)
    status = run.read_status()
    if status.get("status") == "completed" and run.final_model.is_file():
        if not quiet:
            tqdm.write(f"run '{run.path}' is already complete")
        return run.path
    experiment = build(resolve_stored(run))
    with run.lock():
        run.remove_stale_temp_files()
        if not quiet:
            where = "its last checkpoint" if run.checkpoint.is_file() else "the start"
            tqdm.write(f"resuming {run.path} from {where}")
        Trainer(experiment, run, quiet=quiet, on_epoch_end=on_epoch_end).fit()
    return run.path

