"""The run directory: everything one training run writes, each file written atomically.

Layout::

    RUN_DIR/
      config.yaml          the user's config, overrides applied, as given
      resolved.yaml        the fully resolved config (every default filled in)
      plugins.json         plugin / package / version that provided the components
      run.json             status (running | completed | failed), versions, device, times
      metrics.csv          one row per epoch: train/<term>, val/<term>, throughput
      tb/                  TensorBoard event files
      checkpoints/last.pt  the latest resumable checkpoint
      model.pt             the final weights (written once training completed)
      eval-<split>.json    written by `mfcf evaluate`
      run.lock             while a process writes the run (:mod:`mfcf.engine.lock`)

Readers check what they read: a file that is unreadable or of the wrong shape is a
:class:`~mfcf.errors.RunDirError` naming it, never a traceback.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import os
import platform
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
import yaml

from ..config import parse_yaml
from ..errors import RunDirError
from .checkpoint import atomic_write_text
from .lock import run_lock


class RunDir:
    """Paths and atomic writers of one run directory."""

    def __init__(self, path: str | Path):
        self.path = Path(path)

    config = property(lambda self: self.path / "config.yaml")
    resolved = property(lambda self: self.path / "resolved.yaml")
    plugins = property(lambda self: self.path / "plugins.json")
    status_file = property(lambda self: self.path / "run.json")
    metrics = property(lambda self: self.path / "metrics.csv")
    tensorboard = property(lambda self: self.path / "tb")
    checkpoint = property(lambda self: self.path / "checkpoints" / "last.pt")
    final_model = property(lambda self: self.path / "model.pt")

    def evaluation(self, split: str) -> Path:
        return self.path / f"eval-{split}.json"

    @classmethod
    def create(cls, runs_dir: str | Path, name: str) -> RunDir:
        """A new, unique ``runs_dir/name-YYYYmmdd-HHMMSS[-n]`` directory."""
        stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
        base = Path(runs_dir) / f"{name}-{stamp}"
        for n in range(1000):
            path = base if n == 0 else base.with_name(f"{base.name}-{n}")
            try:
                path.mkdir(parents=True)
                return cls(path)
            except FileExistsError:
                continue
            except OSError as exc:
                raise unusable_folder(path, exc, RUNS_DIR_KEYS) from None
        raise RunDirError(f"cannot create a fresh run directory under '{runs_dir}'")  # pragma: no cover

    @classmethod
    def open(cls, path: str | Path) -> RunDir:
        """An existing run directory (checked to hold a resolved config)."""
        run = cls(path)
        if run.path.exists() and not run.path.is_dir():
            raise RunDirError(f"'{run.path}' is a file, not a run directory; pass the directory `mfcf train` created")
        if not run.path.is_dir():
            raise RunDirError(f"run directory '{run.path}' does not exist; pass a directory `mfcf train` created")
        if not run.resolved.is_file():
            raise RunDirError(f"'{run.path}' is not an mfcf run directory (no resolved.yaml in it); pass a "
                              "directory `mfcf train` created")
        return run

    def lock(self):
        """Context manager holding this directory's writer lock (:func:`mfcf.engine.lock.run_lock`)."""
        return run_lock(self.path)

    def remove_stale_temp_files(self) -> None:
        """Delete the temp files a write killed mid-way left (``.<name>.<pid>.tmp``); call it only
        while holding :meth:`lock`, when no other process can be writing."""
        for folder in (self.path, self.path / "checkpoints"):
            for p in folder.glob(".*.tmp") if folder.is_dir() else ():
                p.unlink(missing_ok=True)

    def prepare(self, user: Mapping[str, Any], resolved: Mapping[str, Any], plugins: Sequence[Mapping[str, str]]) -> None:
        self.path.mkdir(parents=True, exist_ok=True)
        (self.path / "checkpoints").mkdir(exist_ok=True)
        atomic_write_text(self.config, yaml.safe_dump(dict(user), sort_keys=False))
        atomic_write_text(self.resolved, yaml.safe_dump(dict(resolved), sort_keys=False))
        atomic_write_text(self.plugins, json.dumps(list(plugins), indent=2))

    def load_resolved(self) -> dict[str, Any]:
        parse = lambda text: parse_yaml(text, f"'{self.resolved}'", name=str(self.resolved))  # noqa: E731
        return _read(self.resolved, parse, dict, "a YAML mapping of config sections")

    def read_status(self) -> dict[str, Any]:
        """``run.json`` as a dict (empty if there is none yet)."""
        if not self.status_file.exists():
            return {}
        return _read(self.status_file, json.loads, dict, "a JSON object with the run's status")

    def write_status(self, status: str, **extra: Any) -> None:
        info = self.read_status()
        info.update(status=status, updated=dt.datetime.now().isoformat(timespec="seconds"), **extra)
        info.setdefault("created", info["updated"])
        info.setdefault("versions", {"python": platform.python_version(), "torch": torch.__version__,
                                     "mfcf": _mfcf_version()})
        info.setdefault("argv", sys.argv)
        atomic_write_text(self.status_file, json.dumps(info, indent=2))

    # -- metrics ---------------------------------------------------------------------------
    def read_metrics(self) -> list[dict[str, str]]:
        """``metrics.csv`` as rows (empty if there is none yet); each row has an integer ``epoch``."""
        if not self.metrics.exists():
            return []
        rows = _read(self.metrics, lambda text: list(csv.DictReader(io.StringIO(text))), list, "a CSV table")
        for i, row in enumerate(rows):
            try:
                int(row.get("epoch") or "")
            except ValueError:
                raise damaged(self.metrics, f"row {i + 1} has no integer 'epoch' column "
                                            f"(got {row.get('epoch')!r})") from None
            if None in row:
                raise damaged(self.metrics, f"row {i + 1} has more cells than the header") from None
        return rows

    def write_metrics(self, rows: Sequence[Mapping[str, Any]]) -> None:
        """Rewrite the whole CSV atomically (one row per epoch: small), columns in first-seen order."""
        columns: dict[str, None] = {}
        for row in rows:
            columns.update(dict.fromkeys(row))
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=list(columns), restval="")
        writer.writeheader()
        writer.writerows(rows)
        atomic_write_text(self.metrics, buf.getvalue())


def damaged(path: Path, what: str) -> RunDirError:
    """The error for a run-directory file that is there but cannot be used."""
    return RunDirError(f"'{path}' is damaged: {what}.\n  Restore it from a backup, or start a new run; mfcf "
                       "changes nothing in a damaged run directory.")


def _read(path: Path, parse: Callable[[str], Any], kind: type, shape: str) -> Any:
    """``parse(path's text)``, checked to be a ``kind``; :class:`RunDirError` naming ``path`` otherwise."""
    try:
        value = parse(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise damaged(path, f"it cannot be read ({exc.strerror or exc})") from None
    except (UnicodeDecodeError, ValueError, csv.Error) as exc:  # ValueError: ConfigError of parse_yaml too
        raise damaged(path, f"it does not parse as {shape} ({' '.join(str(exc).split())[:300]})") from None
    if not isinstance(value, kind):
        raise damaged(path, f"it should hold {shape}, not {type(value).__name__}")
    return value


#: How errors name the setting that chose the runs folder.
RUNS_DIR_KEYS = "trainer.runs_dir (or --run-dir)"


def unusable_folder(path: Path, exc: OSError, key: str) -> RunDirError:
    """The error for a run folder that cannot be created or written."""
    return RunDirError(f"cannot create or write '{path}' ({exc.strerror or exc}); set {key} to a writable folder "
                       "on a real filesystem")


def check_writable_folder(path: str | Path, key: str) -> None:
    """Fail early, creating nothing, if ``path`` cannot become a writable run folder: it (or its
    first existing ancestor) is a file, not writable, on a read-only or on a pseudo filesystem
    (proc, sysfs: no storage blocks)."""
    path = Path(path).absolute()
    existing = next(p for p in (path, *path.parents) if p.exists())
    if not existing.is_dir():
        raise RunDirError(f"'{existing}' is a file, so '{path}' cannot be a folder; set {key} to a folder")
    stat = os.statvfs(existing)
    problem = ("is on a read-only filesystem" if stat.f_flag & os.ST_RDONLY else
               "is on a pseudo filesystem (no storage)" if stat.f_blocks == 0 else
               "is not writable" if not os.access(existing, os.W_OK | os.X_OK) else None)
    if problem:
        raise RunDirError(f"'{existing}' {problem}, so '{path}' cannot be written; set {key} to a writable "
                          "folder on a real filesystem")


def _mfcf_version() -> str:
    from .. import __version__

    return __version__


def default_run_name(config: Mapping[str, Any]) -> str:
    name = config.get("trainer", {}).get("run_name")
    return name or f"{config['model']['name']}-{config['data']['name']}"


def ensure_absent(path: Path, *, ignore: Sequence[str] = ()) -> None:
    """Raise unless ``path`` is missing or a folder holding nothing but the names in ``ignore``
    (where a fresh run may go)."""
    if path.exists() and not path.is_dir():
        raise RunDirError(f"--run-dir '{path}' is a file; pass a new or empty folder")
    if path.exists() and any(p.name not in ignore for p in path.iterdir()):
        raise RunDirError(f"run directory '{path}' exists and is not empty; pass a new --run-dir or use --resume")


os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")  # quieten TensorBoard's TensorFlow probe
