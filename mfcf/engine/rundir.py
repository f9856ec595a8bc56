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
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import os
import platform
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
import yaml

from ..errors import RunDirError
from .checkpoint import atomic_write_text


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
        raise RunDirError(f"cannot create a fresh run directory under '{runs_dir}'")  # pragma: no cover

    @classmethod
    def open(cls, path: str | Path) -> RunDir:
        """An existing run directory (checked to hold a resolved config)."""
        run = cls(path)
        if not run.path.is_dir():
            raise RunDirError(f"run directory '{run.path}' does not exist; pass a directory `mfcf train` created")
        if not run.resolved.is_file():
            raise RunDirError(f"'{run.path}' is not an mfcf run directory (no resolved.yaml in it)")
        return run

    def prepare(self, user: Mapping[str, Any], resolved: Mapping[str, Any], plugins: Sequence[Mapping[str, str]]) -> None:
        self.path.mkdir(parents=True, exist_ok=True)
        (self.path / "checkpoints").mkdir(exist_ok=True)
        atomic_write_text(self.config, yaml.safe_dump(dict(user), sort_keys=False))
        atomic_write_text(self.resolved, yaml.safe_dump(dict(resolved), sort_keys=False))
        atomic_write_text(self.plugins, json.dumps(list(plugins), indent=2))

    def load_resolved(self) -> dict[str, Any]:
        return yaml.safe_load(self.resolved.read_text())

    def read_status(self) -> dict[str, Any]:
        return json.loads(self.status_file.read_text()) if self.status_file.is_file() else {}

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
        if not self.metrics.is_file():
            return []
        with open(self.metrics, newline="") as fh:
            return list(csv.DictReader(fh))

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


def _mfcf_version() -> str:
    from .. import __version__

    return __version__


def default_run_name(config: Mapping[str, Any]) -> str:
    name = config.get("trainer", {}).get("run_name")
    return name or f"{config['model']['name']}-{config['data']['name']}"


def ensure_absent(path: Path) -> None:
    if path.exists() and any(path.iterdir()):
        raise RunDirError(f"run directory '{path}' exists and is not empty; pass a new --run-dir or use --resume")


os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")  # quieten TensorBoard's TensorFlow probe
