"""The sweep file: parsing, validation and the trial plan (no Ray here).

A sweep file names a base experiment and what to vary::

    experiment: ../shapes_mfcvae.yaml     # relative to this file, or an inline mapping
    overrides: [trainer.epochs=2]          # applied to every trial
    seeds: [0, 1, 2]
    search:                                # dotted config keys
      trainer.lr: [1.0e-3, 3.0e-4]                # a list: grid
      facets.0.n_clusters: {choice: [5, 10]}      # random choice
      trainer.grad_clip: {uniform: [0.5, 2.0]}    # random, uniform
      data.batch_size: {grid: [128, 256]}         # explicit grid
      # {loguniform: [1.0e-4, 1.0e-2]}            # random, log-uniform
    num_samples: 1          # draws of the random keys (each crossed with the grid and the seeds)
    search_seed: 0          # seeds the draws, so a sweep's settings are reproducible
    metric: val/loss        # picks the best setting: val/... or train/...; never test/...
    mode: min
    resources: {cpu: 1, gpu: 0}   # per trial; fractional GPUs share one card
    max_concurrent: 2
    max_failures: 2         # retries of a crashed trial, each from its last checkpoint
    scheduler: {asha: {grace_period: 1, reduction_factor: 2}}   # optional early stopping
    storage: sweeps         # results go to <storage>/<name>/ (made absolute)
    name: shapes-lr

Random keys are drawn once, here, with ``search_seed``; every draw is crossed with every
grid point and every seed, so each *setting* runs once per seed and the summary can report
mean ± std over seeds. :func:`load_sweep` checks the file and every trial's experiment
config (stage 2, :func:`mfcf.engine.build.resolve`) before anything starts.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import difflib
import itertools
import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Optional

import numpy as np
from omegaconf import OmegaConf
from omegaconf.errors import OmegaConfBaseException

from ..api import Model
from ..config import (SEED_MAX, TOP_LEVEL, check_numbers, load_config, load_yaml, parse_override, positive,
                      set_value, to_container, validate_section)
from ..engine.metrics import METRICS
from ..engine.summary import check_selection_metric
from ..errors import ConfigError, MfcfError, RunDirError, UnknownKeyError

SWEEP_FILE = "sweep.yaml"  # the validated sweep, written into the sweep directory
FORMAT = 1
SPACES = ("grid", "choice", "uniform", "loguniform")
#: The most trials one sweep may plan: far beyond any real sweep, and a typo such as
#: ``num_samples: 100000000`` fails at once instead of building the plan for minutes.
MAX_TRIALS = 10_000


class SweepError(ConfigError):
    """A sweep file, or the experiment of one of its settings, is not valid."""


@dataclasses.dataclass
class Resources:
    """``resources:`` -- what one trial reserves on a Ray node."""

    cpu: float = 1.0
    gpu: float = 0.0

    def __post_init__(self) -> None:
        positive(self.cpu, "cpu")
        positive(self.gpu, "gpu", allow_zero=True)
        if self.gpu > 1 and self.gpu != int(self.gpu):
            raise ConfigError(f"a trial takes a fraction of one GPU or whole GPUs, got {self.gpu}", key="gpu")


@dataclasses.dataclass
class AshaSection:
    """``scheduler: {asha: ...}`` -- asynchronous successive halving over epochs."""

    grace_period: int = 1  # epochs every trial runs before it can be stopped
    reduction_factor: float = 2.0
    brackets: int = 1

    def __post_init__(self) -> None:
        positive(self.grace_period, "grace_period")
        positive(self.brackets, "brackets")
        if self.reduction_factor <= 1:
            raise ConfigError(f"must be greater than 1, got {self.reduction_factor}", key="reduction_factor")


@dataclasses.dataclass
class Space:
    """One search key: ``kind`` in :data:`SPACES` and its list of values or [low, high]."""

    kind: str
    args: list[Any]

    @property
    def random(self) -> bool:
        return self.kind != "grid"

    def draw(self, rng: np.random.Generator) -> Any:
        if self.kind == "choice":
            return self.args[int(rng.integers(len(self.args)))]
        low, high = self.args
        if self.kind == "uniform":
            return float(f"{rng.uniform(low, high):.6g}")
        return float(f"{math.exp(rng.uniform(math.log(low), math.log(high))):.6g}")

    def to_yaml(self) -> Any:
        return list(self.args) if self.kind == "grid" else {self.kind: list(self.args)}


@dataclasses.dataclass
class Trial:
    """One (setting, seed) pair: its directory name, the values it sets and its seed."""

    name: str
    setting: int
    label: str
    values: dict[str, Any]
    seed: int


@dataclasses.dataclass
class Sweep:
    """A validated sweep: the base experiment (stage 1, overrides applied) and the plan."""

    experiment: dict[str, Any]
    seeds: list[int]
    search: dict[str, Space]
    settings: list[dict[str, Any]]
    num_samples: int = 1
    search_seed: int = 0
    metric: str = "train/loss"
    mode: str = "min"
    resources: Resources = dataclasses.field(default_factory=Resources)
    max_concurrent: Optional[int] = None
    max_failures: int = 2
    asha: Optional[AshaSection] = None
    storage: str = ""
    name: str = ""
    source: Optional[str] = None

    @property
    def directory(self) -> Path:
        return Path(self.storage) / self.name

    def label(self, setting: int) -> str:
        return f"s{setting:0{max(3, len(str(len(self.settings) - 1)))}d}"

    def trials(self) -> list[Trial]:
        """Every (setting, seed) pair, settings in order, seeds in order within a setting."""
        return [Trial(trial_dirname(self.label(i), seed), i, self.label(i), values, seed)
                for i, values in enumerate(self.settings) for seed in self.seeds]

    def trial_config(self, values: Mapping[str, Any], seed: int) -> dict[str, Any]:
        """The stage-1 experiment config of one trial: base + the setting's values + the seed."""
        return apply_values(self.experiment, {**values, "trainer.seed": seed})

    def epochs(self) -> int:
        """The largest ``trainer.epochs`` over the settings (ASHA's horizon)."""
        return max(int(self.trial_config(v, self.seeds[0]).get("trainer", {}).get("epochs", 10))
                   for v in self.settings)

    def to_dict(self) -> dict[str, Any]:
        """The form written to ``<sweep dir>/sweep.yaml`` (the experiment embedded, settings fixed)."""
        return {
            "format": FORMAT, "source": self.source, "name": self.name, "storage": self.storage,
            "experiment": self.experiment, "seeds": self.seeds,
            "search": {k: s.to_yaml() for k, s in self.search.items()},
            "num_samples": self.num_samples, "search_seed": self.search_seed,
            "metric": self.metric, "mode": self.mode, "resources": dataclasses.asdict(self.resources),
            "max_concurrent": self.max_concurrent, "max_failures": self.max_failures,
            "scheduler": {"asha": dataclasses.asdict(self.asha)} if self.asha else None,
            "settings": self.settings,
        }


def trial_dirname(label: str, seed: int) -> str:
    return f"{label}-seed{seed}"


# -- loading ------------------------------------------------------------------------------------
_KEYS = ("experiment", "overrides", "seeds", "search", "num_samples", "search_seed", "metric", "mode", "resources",
         "max_concurrent", "max_failures", "scheduler", "storage", "name")


def load_sweep(path: str | Path, overrides: Sequence[str] = (), *, check: bool = True) -> Sweep:
    """Parse and validate a sweep file; ``overrides`` are ``key=value`` strings.

    An override whose first part is a sweep-file key changes the sweep (``seeds=[0,1]``,
    ``max_concurrent=4``, ``resources.gpu=0.25``, ``search.trainer.lr=[1e-3]``); any other
    override changes the experiment of every trial (``trainer.epochs=1``), after the file's
    own ``overrides:``. With ``check`` every trial's experiment config is resolved (stage 2).
    """
    path = Path(path)
    try:
        raw = to_container(load_yaml(path))
        raw, experiment_overrides = _apply_sweep_overrides(raw, overrides)
        return _build(raw, base_dir=path.parent, source=str(path.resolve()),
                      extra_overrides=experiment_overrides, check=check,
                      default_name=f"{path.stem}-{dt.datetime.now():%Y%m%d-%H%M%S}")
    except SweepError:
        raise
    except ConfigError as exc:
        raise SweepError(f"in sweep file '{path}': {exc}") from None


def load_stored(sweep_dir: str | Path) -> Sweep:
    """The sweep stored in a sweep directory (for ``--resume`` and summaries).

    Its trials' experiments are not resolved again; a stored plan that does not load is
    reported as damaged (:class:`RunDirError`)."""
    sweep_dir = Path(sweep_dir)
    stored = sweep_dir / SWEEP_FILE
    if not sweep_dir.is_dir():
        state = "is a file" if sweep_dir.exists() else "does not exist"
        raise RunDirError(f"sweep directory '{sweep_dir}' {state}; pass the directory `mfcf sweep` printed")
    if not stored.is_file():
        raise RunDirError(f"'{sweep_dir}' is not an mfcf sweep directory (no {SWEEP_FILE} in it); "
                          "pass the directory `mfcf sweep` printed")
    try:
        raw = to_container(load_yaml(stored))
        settings = raw.pop("settings", None)
        if not isinstance(settings, list) or not settings or not all(isinstance(s, dict) for s in settings):
            raise ConfigError(f"must be a non-empty list of mappings, got {settings!r}", key="settings")
        raw.pop("format", None)
        source = raw.pop("source", None)
        raw["storage"], raw["name"] = str(sweep_dir.resolve().parent), sweep_dir.resolve().name
        sweep = _build(raw, base_dir=sweep_dir, source=source, extra_overrides=(), check=False, default_name=None)
    except ConfigError as exc:
        raise RunDirError(f"'{stored}' is damaged: {exc}\n  It is the plan `mfcf sweep` wrote: restore it from a "
                          "backup, or start the sweep again under another name.") from None
    sweep.settings = settings
    return sweep


def _apply_sweep_overrides(raw: dict[str, Any], overrides: Sequence[str]) -> tuple[dict[str, Any], list[str]]:
    experiment: list[str] = []
    for text in overrides:
        if text.startswith("~") and text[1:].partition(".")[0] in TOP_LEVEL:  # deletes an experiment key
            experiment.append(text)
            continue
        key, value = parse_override(text)
        head, _, rest = key.partition(".")
        if head in TOP_LEVEL:
            experiment.append(text)
        elif head not in _KEYS:
            raise UnknownKeyError(head, "", [*_KEYS, *TOP_LEVEL])
        elif head == "search" and rest:
            raw.setdefault("search", {})
            if not isinstance(raw["search"], dict):
                raise ConfigError("must be a mapping of dotted config keys", key="search")
            raw["search"][rest] = value
        else:
            cfg = OmegaConf.create(raw)
            try:
                OmegaConf.update(cfg, key, value, merge=True, force_add=True)
            except OmegaConfBaseException as exc:
                raise ConfigError(f"cannot apply override {text!r}: {exc}", key=key) from None
            raw = OmegaConf.to_container(cfg)
    return raw, experiment


def _build(raw: Mapping[str, Any], *, base_dir: Path, source: str | None, extra_overrides: Sequence[str],
           check: bool, default_name: str | None) -> Sweep:
    for key in raw:
        if key not in _KEYS:
            raise UnknownKeyError(str(key), "", _KEYS)
    check_numbers({k: v for k, v in raw.items() if k != "experiment"})  # NaN, inf, beyond 64 bits
    if raw.get("experiment") is None:
        raise ConfigError("is required: a path to an experiment YAML (relative to the sweep file) or an "
                          "inline mapping", key="experiment")
    overrides = _str_list(raw.get("overrides") or [], "overrides")
    experiment = _experiment(raw["experiment"], base_dir, [*overrides, *extra_overrides])
    seeds = raw.get("seeds", [0])
    if not isinstance(seeds, list) or not seeds or not all(isinstance(s, int) and not isinstance(s, bool)
                                                           for s in seeds):
        raise ConfigError(f"must be a non-empty list of integers, got {seeds!r}", key="seeds")
    if len(set(seeds)) != len(seeds):
        raise ConfigError(f"holds a seed twice: {seeds}", key="seeds")
    if not all(0 <= s <= SEED_MAX for s in seeds):
        raise ConfigError(f"seeds run from 0 to {SEED_MAX} (2**32 - 1), got {seeds}", key="seeds")
    search = _search(raw.get("search") or {})
    num_samples = _int(raw.get("num_samples", 1), "num_samples")
    search_seed = _int(raw.get("search_seed", 0), "search_seed", allow_zero=True)
    if num_samples > 1 and not any(s.random for s in search.values()):
        raise ConfigError(f"is {num_samples} but no search key is random (choice, uniform, loguniform); add more "
                          "seeds instead, or a random key", key="num_samples")
    planned = num_samples * math.prod(len(s.args) for s in search.values() if not s.random) * len(seeds)
    if planned > MAX_TRIALS:
        raise ConfigError(f"plans {planned:,} trials (num_samples x grid points x seeds), more than the "
                          f"{MAX_TRIALS:,} one sweep may hold; shrink the search or split the sweep", key="search")
    metric = raw.get("metric", "train/loss")
    if not isinstance(metric, str):
        raise ConfigError(f"must be a metric name such as val/loss, got {metric!r}", key="metric")
    check_selection_metric(metric)
    mode = raw.get("mode", "min")
    if mode not in ("min", "max"):
        raise ConfigError(f"must be min or max, got {mode!r}", key="mode")
    resources = validate_section(Resources, raw.get("resources"), "resources")
    max_concurrent = raw.get("max_concurrent")
    if max_concurrent is not None:
        max_concurrent = _int(max_concurrent, "max_concurrent")
    max_failures = _int(raw.get("max_failures", 2), "max_failures", allow_zero=True)
    asha = _scheduler(raw.get("scheduler"))
    storage = raw.get("storage", "sweeps")
    if not isinstance(storage, str) or not storage or "\0" in storage:
        raise ConfigError(f"must be a directory path, got {storage!r}", key="storage")
    if "://" in storage:
        raise ConfigError(f"'{storage}' is a URI; sweeps need a local or shared (e.g. NFS) filesystem path that "
                          "every node can write, because each trial writes its mfcf run directory there",
                          key="storage")
    name = raw.get("name") or default_name
    if not isinstance(name, str) or not name or "/" in name or "\0" in name or name.startswith("."):
        raise ConfigError(f"must be a plain directory name, got {name!r}", key="name")

    sweep = Sweep(experiment, list(seeds), search, _settings(search, num_samples, search_seed), num_samples,
                  search_seed, metric, mode, resources, max_concurrent, max_failures, asha,
                  str(_expanded(storage, "storage").resolve()), name, source)
    _check_devices(sweep)
    if check:
        check_storage(sweep.directory)
        check_trials(sweep)
    return sweep


def check_storage(directory: Path) -> None:
    """Check, creating nothing, that the sweep directory can be made: the nearest existing of
    it and its parents must be a directory this process may write in."""
    existing = directory
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise ConfigError(f"'{existing}' is a file, so the sweep directory '{directory}' cannot be made; choose "
                          "another storage=... or name=...", key="storage")
    if existing != directory and not os.access(existing, os.W_OK | os.X_OK):
        raise ConfigError(f"cannot write in '{existing}', so the sweep directory '{directory}' cannot be made; "
                          "choose a writable storage=...", key="storage")


def _experiment(spec: Any, base_dir: Path, overrides: Sequence[str]) -> dict[str, Any]:
    path = _expanded(spec, "experiment") if isinstance(spec, str) else None
    try:
        if path is not None:
            return load_config(path if path.is_absolute() else base_dir / path, overrides)
        if isinstance(spec, Mapping):
            return load_config(base=spec, overrides=overrides)
    except MfcfError as exc:
        raise ConfigError(f"the experiment is not valid: {type(exc).__name__}: {exc}", key="experiment") from None
    raise ConfigError(f"must be a path or a mapping, got {spec!r}", key="experiment")


def _expanded(text: str, key: str) -> Path:
    try:
        return Path(text).expanduser()
    except RuntimeError:  # ~name of no user
        raise ConfigError(f"'{text}' starts with ~ but names no user this machine knows", key=key) from None


def _search(raw: Any) -> dict[str, Space]:
    if not isinstance(raw, Mapping):
        raise ConfigError(f"must be a mapping of dotted config keys to values, got {raw!r}", key="search")
    out = {}
    for key, spec in raw.items():
        where = f"search.{key}"
        if key == "trainer.seed":
            raise ConfigError("seeds are not searched: list them under `seeds:`", key=where)
        if str(key).split(".")[0] == "plugins":
            raise ConfigError("plugins cannot be searched; list them in the experiment", key=where)
        if isinstance(spec, list):
            spec = {"grid": spec}
        if not isinstance(spec, Mapping) or len(spec) != 1:
            raise ConfigError(f"needs a list (a grid) or one of {{choice: [...]}}, {{uniform: [low, high]}}, "
                              f"{{loguniform: [low, high]}}, got {spec!r}; to fix a value for every trial, put it "
                              "under `overrides:`", key=where)
        (kind, args), = spec.items()
        if kind not in SPACES:
            close = difflib.get_close_matches(str(kind), SPACES, n=1)
            hint = f"; did you mean: {close[0]}" if close else ""
            raise ConfigError(f"unknown search space '{kind}'{hint} (one of {', '.join(SPACES)})", key=where)
        if not isinstance(args, list) or not args:
            raise ConfigError(f"{kind} needs a non-empty list, got {args!r}", key=where)
        twice = [a for i, a in enumerate(args) if a in args[:i]] if kind == "grid" else []
        if twice:
            raise ConfigError(f"the grid holds {twice[0]!r} twice: the same setting would run twice", key=where)
        if kind in ("uniform", "loguniform"):
            if len(args) != 2 or not all(isinstance(a, (int, float)) and not isinstance(a, bool) for a in args) \
                    or not args[0] < args[1]:
                raise ConfigError(f"{kind} needs [low, high] with low < high, got {args!r}", key=where)
            if kind == "loguniform" and args[0] <= 0:
                raise ConfigError(f"loguniform needs low > 0, got {args!r}", key=where)
        out[str(key)] = Space(kind, list(args))
    return out


def _settings(search: Mapping[str, Space], num_samples: int, search_seed: int) -> list[dict[str, Any]]:
    """Each of ``num_samples`` draws of the random keys crossed with every grid point."""
    grid = {k: s.args for k, s in search.items() if not s.random}
    rng = np.random.default_rng(search_seed)
    settings = []
    for _ in range(num_samples):
        drawn = {k: s.draw(rng) for k, s in search.items() if s.random}
        for point in itertools.product(*grid.values()):
            chosen = {**dict(zip(grid, point)), **drawn}
            settings.append({k: chosen[k] for k in search})
    return settings


def _scheduler(raw: Any) -> AshaSection | None:
    if raw is None:
        return None
    if not isinstance(raw, Mapping) or len(raw) != 1:
        raise ConfigError(f"must be {{asha: {{grace_period: 1, reduction_factor: 2}}}}, got {raw!r}", key="scheduler")
    (kind, options), = raw.items()
    if kind != "asha":
        raise UnknownKeyError(str(kind), "scheduler", ["asha"])
    return validate_section(AshaSection, options, "scheduler.asha")


def _check_devices(sweep: Sweep) -> None:
    device = str(sweep.experiment.get("trainer", {}).get("device", "auto"))
    if sweep.resources.gpu == 0 and device.startswith("cuda"):
        raise ConfigError(f"trials reserve no GPU (resources.gpu: 0) but trainer.device is '{device}'; set "
                          "resources.gpu (e.g. 0.25 to share a GPU between 4 trials) or trainer.device=auto",
                          key="resources.gpu")
    if sweep.resources.gpu > 0 and device == "cpu":
        raise ConfigError("trials reserve a GPU but trainer.device is 'cpu'; set resources.gpu: 0 or "
                          "trainer.device=auto", key="resources.gpu")


def check_trials(sweep: Sweep) -> None:
    """Resolve every setting's experiment (stage 2) and check the metric against it."""
    from ..engine.build import resolve
    from ..plugins import plugin_manager
    from ..registry import Registry

    registry = Registry(plugin_manager(sweep.experiment.get("plugins") or []))
    for i, values in enumerate(sweep.settings):
        try:
            resolved = resolve(sweep.trial_config(values, sweep.seeds[0]), registry)
            _check_metric(sweep.metric, resolved, bool(sweep.asha))
        except MfcfError as exc:
            shown = ", ".join(f"{k}={v}" for k, v in values.items()) or "the base experiment"
            raise SweepError(f"setting {sweep.label(i)} ({shown}) is not a valid experiment:\n"
                             f"  {type(exc).__name__}: {exc}") from None


def _check_metric(metric: str, resolved: Any, asha: bool) -> None:
    model = resolved.classes["model"]
    parts = metric.split("/")
    evaluation = len(parts) == 4 and parts[1].startswith("facet")
    if metric.startswith("val/") and resolved.data.val_fraction == 0:
        raise ConfigError(f"metric '{metric}' needs a validation split: add data.val_fraction=0.1 (for example) to "
                          "the sweep's overrides, or select on train/loss", key="metric")
    if evaluation:
        facet = parts[1][5:]
        if not facet.isdigit() or int(facet) >= len(resolved.facets):
            raise ConfigError(f"metric '{metric}' names facet '{parts[1]}' but the experiment has facets "
                              f"0..{len(resolved.facets) - 1}", key="metric")
        if parts[3] not in METRICS:
            raise ConfigError(f"metric '{metric}' ends in '{parts[3]}'; evaluation metrics are "
                              f"{', '.join(METRICS)}", key="metric")
        if asha:
            raise ConfigError(f"ASHA stops trials on a per-epoch metric, but '{metric}' is only known after "
                              "training; use val/loss or train/loss with a scheduler", key="metric")
        return
    if not model.trains_by_gradient:
        raise ConfigError(f"model '{model.name}' has no training loop, so it logs no '{metric}'; select on an "
                          "evaluation metric such as val/facet0/<factor>/nmi", key="metric")
    if metric.startswith("val/") and resolved.trainer.eval_every_epochs > resolved.trainer.epochs:
        raise ConfigError(f"'{metric}' is computed every trainer.eval_every_epochs="
                          f"{resolved.trainer.eval_every_epochs} epochs, more than the {resolved.trainer.epochs} "
                          "epochs a trial trains, so it is never logged", key="metric")
    if metric.startswith("val/") and model.validation_loss is Model.validation_loss:
        raise ConfigError(f"model '{model.name}' computes no validation loss, so '{metric}' is never logged; "
                          "select on train/loss or val/facet0/<factor>/nmi", key="metric")


def apply_values(config: Mapping[str, Any], values: Mapping[str, Any]) -> dict[str, Any]:
    """``config`` with dotted ``values`` set as overrides set them (a mapping replaces a section, a
    switched component drops the old one's options: :func:`mfcf.config.set_value`), stage-1 checked."""
    cfg = OmegaConf.create(dict(config))
    for key, value in values.items():
        set_value(cfg, key, value, source=f"{key}={value!r}")
    return load_config(base=OmegaConf.to_container(cfg, resolve=True))


def _int(value: Any, key: str, *, allow_zero: bool = False) -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        raise ConfigError(f"must be an integer, got {value!r}", key=key)
    positive(value, key, allow_zero=allow_zero)
    return value


def _str_list(value: Any, key: str) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ConfigError(f"must be a list of key=value strings, got {value!r}", key=key)
    return list(value)
