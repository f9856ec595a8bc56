"""Aggregate results over seeds: mean ± std per hyperparameter setting, per facet and factor.

A *record* is one finished (or unfinished) run: the setting it belongs to, its seed, its status
and a flat dict of scores named like the metrics Ray Tune sees::

    train/loss, val/loss, val/<term>        last logged value of metrics.csv
    <split>/facet<j>/<factor>/<metric>      from eval-<split>.json (metric in METRICS)

:func:`summarise` groups records by setting and computes, for every score, the mean, the
sample standard deviation (``ddof=1``; none for a single seed) and the number of seeds. The
best setting is picked on a *selection* score -- a validation score or the training loss,
never a ``test/`` one. The result renders as markdown (:meth:`Summary.markdown`) and as a long
CSV (:meth:`Summary.write_csv`, one row per setting x score).

Reuse for several plain run directories (``mfcf evaluate RUN_DIR...``)::

    records = [record_from_run(d) for d in run_dirs]
    keys = varying_keys([r.config for r in records])
    records = [r.with_setting({k: lookup(r.config, k) for k in keys}) for r in records]
    print(summarise(records).markdown())
"""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import math
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from ..errors import ConfigError
from .checkpoint import atomic_write_text
from .metrics import METRIC_TITLES, METRICS
from .rundir import RunDir

#: Config keys that differ between seeds of one setting, never a hyperparameter.
NOT_HYPERPARAMETERS = ("trainer.seed", "trainer.run_name", "trainer.runs_dir", "trainer.device", "trainer.threads")


@dataclasses.dataclass
class RunRecord:
    """One run: where it is, which setting and seed, whether it finished, and its scores."""

    run: str
    setting: dict[str, Any]
    seed: int | None
    status: str  # completed | incomplete | failed | stopped | missing
    scores: dict[str, float]
    config: dict[str, Any] = dataclasses.field(default_factory=dict, repr=False)
    label: str | None = None  # a short setting name (e.g. "s002"); derived from `setting` if None

    def with_setting(self, setting: Mapping[str, Any], label: str | None = None) -> RunRecord:
        return dataclasses.replace(self, setting=dict(setting), label=label)


def flatten_evaluation(result: Mapping[str, Any]) -> dict[str, float]:
    """``{"<split>/facet<j>/<factor>/<metric>": value}`` from an ``evaluate_run`` result."""
    split = result["split"]
    return {f"{split}/facet{f['facet']}/{factor}/{metric}": float(value)
            for f in result["facets"] for factor, scores in f["factors"].items() for metric, value in scores.items()}


def last_logged(rows: Sequence[Mapping[str, Any]]) -> dict[str, float]:
    """The last non-empty value of every ``train/*`` and ``val/*`` column of metrics rows."""
    out: dict[str, float] = {}
    for row in rows:
        for key, value in row.items():
            if key.startswith(("train/", "val/")) and value not in ("", None):
                try:
                    out[key] = float(value)
                except ValueError:
                    pass
    return out


def record_from_run(run_dir: str | Path, *, setting: Mapping[str, Any] | None = None,
                    label: str | None = None) -> RunRecord:
    """Read a run directory's logged losses and its ``eval-*.json`` files into a record.

    The status is ``completed`` when the run finished training and was evaluated on the test
    split, ``failed`` when ``run.json`` says so, otherwise ``incomplete``.
    """
    run = RunDir(run_dir)
    if not run.resolved.is_file():
        return RunRecord(str(run.path), dict(setting or {}), None, "missing", {}, label=label)
    config = run.load_resolved()
    scores = last_logged(run.read_metrics())
    for split in ("train", "val", "test"):
        if run.evaluation(split).is_file():
            scores.update(flatten_evaluation(json.loads(run.evaluation(split).read_text())))
    state = run.read_status().get("status")
    if state == "failed":
        status = "failed"
    elif run.evaluation("test").is_file() and (state == "completed" or run.final_model.is_file()):
        status = "completed"
    else:
        status = "incomplete"
    seed = config.get("trainer", {}).get("seed")
    return RunRecord(str(run.path), dict(setting or {}), seed, status, scores, config, label)


def lookup(config: Mapping[str, Any], dotted: str) -> Any:
    """``config['facets'][0]['n_clusters']`` for ``'facets.0.n_clusters'`` (None if absent)."""
    node: Any = config
    for part in dotted.split("."):
        if isinstance(node, Mapping) and part in node:
            node = node[part]
        elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
        else:
            return None
    return node


def _leaves(node: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(node, Mapping):
        out: dict[str, Any] = {}
        for key, value in node.items():
            out.update(_leaves(value, f"{prefix}{key}."))
        return out
    if isinstance(node, list) and node and all(isinstance(v, Mapping) for v in node):
        out = {}
        for i, value in enumerate(node):
            out.update(_leaves(value, f"{prefix}{i}."))
        return out
    return {prefix[:-1]: node}


def varying_keys(configs: Iterable[Mapping[str, Any]], ignore: Sequence[str] = NOT_HYPERPARAMETERS) -> list[str]:
    """Dotted config keys whose values differ between ``configs`` (seeds and paths ignored)."""
    leaves = [_leaves(c) for c in configs]
    keys = dict.fromkeys(k for leaf in leaves for k in leaf)
    return [k for k in keys if k not in ignore and len({json.dumps(leaf.get(k), sort_keys=True) for leaf in leaves}) > 1]


def check_selection_metric(metric: str) -> None:
    """Refuse to select on test labels: the metric must start with ``val/`` or ``train/``."""
    if metric.startswith("test/"):
        raise ConfigError(f"cannot choose the best setting on '{metric}': that would select on test labels. "
                          "Use a validation score (val/loss, val/facet0/<factor>/nmi, ...; needs "
                          "data.val_fraction > 0) or the training loss (train/loss)", key="metric")
    if not metric.startswith(("val/", "train/")):
        raise ConfigError(f"metric '{metric}' must start with val/ or train/ (e.g. val/loss, train/loss, "
                          "val/facet0/<factor>/nmi)", key="metric")


@dataclasses.dataclass
class Stat:
    mean: float
    std: float | None  # sample standard deviation; None for a single value
    n: int

    def text(self) -> str:
        if self.std is None:
            return f"{_num(self.mean)} (n=1)"
        return f"{_num(self.mean)} ± {_num(self.std, 2)}"


def _num(x: float, digits: int = 4) -> str:
    return f"{x:.{digits}g}" if math.isfinite(x) else str(x)


def stat(values: Sequence[float]) -> Stat:
    n = len(values)
    mean = sum(values) / n
    std = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1)) if n > 1 else None
    return Stat(mean, std, n)


@dataclasses.dataclass
class SettingSummary:
    label: str
    values: dict[str, Any]
    planned: int  # runs planned for this setting (seeds)
    records: list[RunRecord]
    stats: dict[str, Stat]  # over the completed runs

    @property
    def completed(self) -> int:
        return sum(r.status == "completed" for r in self.records)


@dataclasses.dataclass
class Summary:
    """Per-setting statistics over seeds, and the best setting by a selection metric."""

    title: str
    keys: list[str]  # hyperparameter keys, in order
    settings: list[SettingSummary]
    metric: str | None
    mode: str
    best: SettingSummary | None
    note: str = ""

    # -- rendering -------------------------------------------------------------------------
    def best_line(self) -> str:
        if self.metric is None:
            return ""
        if self.best is None:
            return f"Best setting: none (no setting has a completed run reporting {self.metric})"
        s = self.best.stats[self.metric]
        seeds = f"{s.n} seed{'s' if s.n != 1 else ''}"
        values = _values_text(self.best.values) or "the only setting"
        name = self.best.label if values == self.best.label else f"{self.best.label} ({values})"
        return (f"Best setting: {name}, "
                f"chosen by {self.metric} ({self.mode}) = {s.text()} over {seeds}; "
                "test scores never take part in the choice.")

    def markdown(self) -> str:
        lines = [f"# {self.title}", ""]
        if self.note:
            lines += [self.note, ""]
        if self.metric:
            lines += [self.best_line(), ""]
        lines += ["## Settings", ""]
        shown = [m for m in dict.fromkeys([self.metric, "train/loss", "val/loss"]) if m]
        header = ["setting", *self.keys, "runs done", *shown]
        rows = []
        for s in self.settings:
            mark = " (best)" if s is self.best else ""
            rows.append([f"{s.label}{mark}", *(_value_text(s.values.get(k)) for k in self.keys),
                         f"{s.completed}/{s.planned}", *(s.stats[m].text() if m in s.stats else "-" for m in shown)])
        lines += _md_table(header, rows)
        for split in ("val", "test"):
            rows = []
            for s in self.settings:
                for facet, factor in _facet_factors(s.stats, split):
                    cells = [s.stats.get(f"{split}/facet{facet}/{factor}/{m}") for m in METRICS]
                    rows.append([s.label, str(facet), factor, *(c.text() if c else "-" for c in cells)])
            if rows:
                lines += ["", f"## {split} split: mean ± std over seeds", ""]
                lines += _md_table(["setting", "facet", "factor", *(METRIC_TITLES[m] for m in METRICS)], rows)
        unfinished = [r for s in self.settings for r in s.records if r.status != "completed"]
        if unfinished:
            lines += ["", "## Runs not in the statistics", ""]
            lines += _md_table(["setting", "seed", "status", "run"],
                               [[s.label, str(r.seed), r.status, r.run] for s in self.settings for r in s.records
                                if r.status != "completed"])
        return "\n".join(lines) + "\n"

    def csv_rows(self) -> list[dict[str, Any]]:
        rows = []
        for s in self.settings:
            base = {"setting": s.label, **{k: _value_text(s.values.get(k)) for k in self.keys},
                    "runs_done": s.completed, "runs_planned": s.planned, "best": s is self.best}
            for score, st in s.stats.items():
                split, facet, factor, metric = _split_score(score)
                rows.append({**base, "score": score, "split": split, "facet": facet, "factor": factor,
                             "metric": metric, "mean": st.mean, "std": "" if st.std is None else st.std, "n": st.n})
        return rows

    def csv_text(self) -> str:
        columns = ["setting", *self.keys, "runs_done", "runs_planned", "best", "score", "split", "facet", "factor",
                   "metric", "mean", "std", "n"]
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=columns)
        writer.writeheader()
        writer.writerows(self.csv_rows())
        return buf.getvalue()

    def write(self, directory: str | Path, stem: str = "summary") -> tuple[Path, Path]:
        """Write ``<stem>.md``, ``<stem>.csv`` and ``<stem>.json`` into ``directory`` (atomically);
        return the markdown and CSV paths (the JSON lies beside them)."""
        directory = Path(directory)
        md, csv_path = directory / f"{stem}.md", directory / f"{stem}.csv"
        atomic_write_text(md, self.markdown())
        atomic_write_text(csv_path, self.csv_text())
        atomic_write_text(directory / f"{stem}.json", json.dumps(
            {"title": self.title, "metric": self.metric, "mode": self.mode, "best": self.best_line(),
             "rows": self.csv_rows()}, indent=2, default=str))
        return md, csv_path


def summarise(records: Sequence[RunRecord], *, metric: str | None = None, mode: str = "min",
              planned: Mapping[str, int] | None = None, title: str = "Results over seeds",
              note: str = "") -> Summary:
    """Group ``records`` by setting and aggregate every score over the completed runs.

    ``metric``/``mode`` pick the best setting (``test/`` metrics are refused). A setting is
    eligible when all its planned runs completed; if none is, any setting with at least one
    completed run is. ``planned`` maps a setting label to its number of planned runs
    (default: the number of records).
    """
    if metric is not None:
        check_selection_metric(metric)
    if mode not in ("min", "max"):
        raise ConfigError(f"mode must be min or max, got {mode!r}", key="mode")
    groups: dict[str, list[RunRecord]] = {}
    values: dict[str, dict[str, Any]] = {}
    for r in records:
        label = r.label or _values_text(r.setting) or "all"
        groups.setdefault(label, []).append(r)
        values.setdefault(label, r.setting)
    keys = list(dict.fromkeys(k for v in values.values() for k in v))
    settings = []
    for label, group in groups.items():
        done = [r for r in group if r.status == "completed"]
        names = dict.fromkeys(k for r in done for k in r.scores)
        stats = {k: stat([r.scores[k] for r in done if k in r.scores]) for k in names}
        settings.append(SettingSummary(label, values[label], (planned or {}).get(label, len(group)), group, stats))
    best = None
    if metric is not None:
        scored = [s for s in settings if metric in s.stats]
        eligible = [s for s in scored if s.completed == s.planned] or scored
        if eligible:
            sign = 1 if mode == "min" else -1
            best = min(eligible, key=lambda s: sign * s.stats[metric].mean)
    return Summary(title, keys, settings, metric, mode, best, note)


# -- helpers ----------------------------------------------------------------------------------
def _value_text(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return json.dumps(value) if isinstance(value, (list, dict)) else str(value)


def _values_text(values: Mapping[str, Any]) -> str:
    return ", ".join(f"{k}={_value_text(v)}" for k, v in values.items())


def _split_score(score: str) -> tuple[str, str, str, str]:
    parts = score.split("/")
    if len(parts) == 4 and parts[1].startswith("facet") and parts[3] in METRICS:
        return parts[0], parts[1][5:], parts[2], parts[3]
    return parts[0], "", "", "/".join(parts[1:])


def _facet_factors(stats: Mapping[str, Stat], split: str) -> list[tuple[int, str]]:
    pairs = {}
    for score in stats:
        s, facet, factor, _ = _split_score(score)
        if s == split and facet:
            pairs[(int(facet), factor)] = None
    return list(pairs)


def _md_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    esc = lambda c: str(c).replace("|", "\\|")
    return ["| " + " | ".join(map(esc, header)) + " |", "|" + "|".join("---" for _ in header) + "|",
            *("| " + " | ".join(map(esc, row)) + " |" for row in rows)]
