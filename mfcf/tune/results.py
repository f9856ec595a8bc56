"""A sweep directory's results: one record per planned trial, the summary over seeds (no Ray)."""

from __future__ import annotations

import json
from pathlib import Path

import yaml

from ..engine.summary import RunRecord, Summary, record_from_run, summarise
from ..errors import MfcfError
from .spec import SWEEP_FILE, load_stored

TRIAL_FILE = "trial.json"


def is_sweep_dir(path: str | Path) -> bool:
    return (Path(path) / SWEEP_FILE).is_file()


def sweep_records(sweep_dir: str | Path) -> list[RunRecord]:
    """A record for every planned trial, in plan order: ``missing`` when it never started,
    ``failed`` or ``stopped early`` as the driver recorded, ``damaged`` when its run directory
    cannot be read."""
    sweep_dir = Path(sweep_dir)
    sweep = load_stored(sweep_dir)
    records = []
    for trial in sweep.trials():
        trial_dir = sweep_dir / trial.name
        try:
            record = record_from_run(trial_dir / "run", setting=trial.values, label=trial.label)
        except (MfcfError, OSError, ValueError, yaml.YAMLError):  # one bad trial leaves the others summarised
            record = RunRecord(str(trial_dir / "run"), dict(trial.values), trial.seed, "damaged", {},
                               label=trial.label)
        record.seed = trial.seed
        info = read_json(trial_dir / TRIAL_FILE)
        if record.status in ("incomplete", "missing") and info.get("status") in ("failed", "stopped early"):
            record.status = info["status"]
        records.append(record)
    return records


def summarise_sweep(sweep_dir: str | Path) -> Summary:
    """Mean ± std over seeds per setting; the best setting by the sweep's metric and mode."""
    sweep_dir = Path(sweep_dir)
    sweep = load_stored(sweep_dir)
    records = sweep_records(sweep_dir)
    planned = {sweep.label(i): len(sweep.seeds) for i in range(len(sweep.settings))}
    done = sum(r.status == "completed" for r in records)
    n_set, n_seed = len(sweep.settings), len(sweep.seeds)
    shape = f"{n_set} setting{'s' if n_set != 1 else ''} x {n_seed} seed{'s' if n_seed != 1 else ''}"
    note = (f"{done} of {len(records)} trials completed ({shape}); sweep directory: {sweep_dir.resolve()}. "
            "Statistics are over the completed trials: mean ± sample standard deviation (ddof=1) over seeds.")
    return summarise(records, metric=sweep.metric, mode=sweep.mode, planned=planned,
                     title=f"Sweep {sweep.name}", note=note)


def write_sweep_summary(sweep_dir: str | Path) -> tuple[Summary, Path, Path]:
    """Summarise a sweep directory and write ``summary.md`` and ``summary.csv`` into it."""
    summary = summarise_sweep(sweep_dir)
    md, csv_path = summary.write(sweep_dir)
    return summary, md, csv_path


def read_json(path: Path) -> dict:
    """A JSON object file as a dict; empty when it is missing, unreadable or not an object."""
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}
