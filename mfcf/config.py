"""Config: YAML plus ``key=value`` overrides, resolved in two stages.

Stage 1 (:func:`load_config`) parses the file and the overrides and checks the top level: the
known sections, the ``trainer:`` section and each facet record. Stage 2
(:func:`mfcf.engine.build.resolve`) validates every component's own section against that
component's ``Config`` dataclass, once the plugins are loaded.

A config is data only: no ``_target_``, no ``eval``. The only code it can reach is the
plugins it names under ``plugins:``, imported by module name.

Example::

    plugins: []                 # extra plugin modules (installed packages need no entry)
    data: {name: digits, batch_size: 256, val_fraction: 0.1}
    model: {name: mfcvae}
    facets:
      - {latent_dim: 5, n_clusters: 10, prior: {name: mog, covariance: diag}}
    encoder: {name: ladder_fc}
    trainer: {epochs: 20, lr: 1.0e-3, seed: 0, device: auto}
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Optional

import yaml
from omegaconf import MISSING, DictConfig, OmegaConf
from omegaconf.errors import ConfigKeyError, OmegaConfBaseException

from .api import PARTS
from .errors import ConfigError, UnknownKeyError


def positive(value: Any, key: str, *, allow_zero: bool = False, allow_none: bool = False) -> None:
    """Raise :class:`ConfigError` unless ``value`` is > 0 (>= 0 with ``allow_zero``)."""
    if value is None and allow_none:
        return
    if value is None or value < 0 or (value == 0 and not allow_zero):
        bound = "0 or more" if allow_zero else "greater than 0"
        raise ConfigError(f"must be {bound}, got {value!r}", key=key)


@dataclasses.dataclass
class DataSection:
    """Core keys of ``data:``; every other key belongs to the dataset's own ``Config``."""

    name: str = MISSING
    batch_size: int = 256
    eval_batch_size: int = 1024
    val_fraction: float = 0.0
    split_seed: int = 0

    def __post_init__(self) -> None:
        positive(self.batch_size, "batch_size")
        positive(self.eval_batch_size, "eval_batch_size")
        if not 0.0 <= self.val_fraction < 1.0:
            raise ConfigError(f"must lie in [0, 1), got {self.val_fraction}", key="val_fraction")


#: ``trainer.precision`` values: full float32, or bfloat16 autocast of the networks.
PRECISIONS = ("fp32", "bf16")
#: ``trainer.compile`` values: ``eager`` (no compilation) or a ``torch.compile`` mode.
COMPILE_MODES = ("eager", "default", "reduce-overhead", "max-autotune")


@dataclasses.dataclass
class TrainerSection:
    """``trainer:`` -- how to train, where to write, how often to checkpoint."""

    epochs: int = 10
    lr: float = 1e-3
    seed: int = 0
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    threads: Optional[int] = None  # torch intra-op threads; None keeps torch's default
    log_every_steps: int = 50  # progress-bar refresh and non-finite check (host syncs)
    checkpoint_every_steps: int = 0  # 0: checkpoint at the end of every epoch only
    eval_every_epochs: int = 1  # validation loss cadence when data.val_fraction > 0
    score_every_epochs: int = 0  # clustering scores on the validation split every N epochs; 0: off
    grad_clip: Optional[float] = None  # max gradient norm; None: no clipping
    precision: str = "fp32"  # fp32 | bf16 (autocast of the networks; densities and losses stay fp32)
    compile: str = "eager"  # eager | default | reduce-overhead | max-autotune: torch.compile mode of the loss
    runs_dir: str = "runs"
    run_name: Optional[str] = None

    def __post_init__(self) -> None:
        positive(self.epochs, "epochs")
        positive(self.lr, "lr")
        positive(self.threads, "threads", allow_none=True)
        positive(self.log_every_steps, "log_every_steps")
        positive(self.checkpoint_every_steps, "checkpoint_every_steps", allow_zero=True)
        positive(self.eval_every_epochs, "eval_every_epochs")
        positive(self.score_every_epochs, "score_every_epochs", allow_zero=True)
        positive(self.grad_clip, "grad_clip", allow_none=True)
        if self.precision not in PRECISIONS:
            raise ConfigError(f"must be one of {', '.join(PRECISIONS)}, got {self.precision!r}", key="precision")
        if self.compile not in COMPILE_MODES:
            raise ConfigError(f"must be one of {', '.join(COMPILE_MODES)}, got {self.compile!r}", key="compile")
        if not (self.device in ("auto", "cpu", "cuda") or self.device.startswith("cuda:")):
            raise ConfigError(f"must be auto, cpu, cuda or cuda:N, got {self.device!r}", key="device")


@dataclasses.dataclass
class FacetSection:
    """One record of ``facets:``."""

    latent_dim: int = MISSING
    n_clusters: int = MISSING
    prior: Optional[dict[str, Any]] = None

    def __post_init__(self) -> None:
        positive(self.latent_dim, "latent_dim")
        positive(self.n_clusters, "n_clusters")


#: Top-level sections; component sections hold ``name`` plus that component's options.
TOP_LEVEL = ("plugins", "data", "model", "facets", *PARTS[1:], "trainer")


def parse_override(text: str) -> tuple[str, Any]:
    """``'trainer.lr=1e-3'`` -> ``('trainer.lr', 0.001)``; values are parsed as YAML."""
    key, sep, raw = text.partition("=")
    key = key.strip()
    if not sep or not key:
        raise ConfigError(f"override {text!r} is not of the form key=value (e.g. trainer.epochs=5)")
    try:
        value = yaml.safe_load(raw) if raw.strip() else None
    except yaml.YAMLError as exc:
        raise ConfigError(f"value of override {text!r} does not parse as YAML: {exc}", key=key) from exc
    if isinstance(value, str):  # YAML 1.1 reads '1e-3' as a string; users mean a number
        try:
            value = float(value)
        except ValueError:
            pass
    return key, value


def load_yaml(path: str | Path) -> DictConfig:
    """Parse a YAML mapping file into a DictConfig with errors that name the file."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file '{path}' does not exist")
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise ConfigError(f"config file '{path}' does not parse as YAML:\n{exc}") from exc
    if not isinstance(data, dict):
        raise ConfigError(f"config file '{path}' must hold a mapping of sections, got {type(data).__name__}")
    return OmegaConf.create(data)


def apply_overrides(cfg: DictConfig, overrides: Sequence[str]) -> DictConfig:
    """Apply ``key=value`` overrides (dotted keys; list items as ``facets.0.latent_dim``)."""
    cfg = cfg.copy()
    for text in overrides:
        key, value = parse_override(text)
        try:
            OmegaConf.update(cfg, key, value, merge=True, force_add=True)
        except (OmegaConfBaseException, IndexError, ValueError) as exc:
            raise ConfigError(f"cannot apply override {text!r}: {exc}", key=key) from exc
    return cfg


def validate_section(schema: type, section: Mapping[str, Any] | None, key: str) -> Any:
    """``section`` checked against the dataclass ``schema`` and returned as an instance of it.

    Unknown keys, wrong types and values the dataclass's ``__post_init__`` rejects all raise
    :class:`ConfigError` subclasses naming ``key.<field>``.
    """
    section = {} if section is None else section
    if not isinstance(section, Mapping):
        raise ConfigError(f"must be a mapping of options, got {section!r}", key=key)
    valid = [f.name for f in dataclasses.fields(schema)]
    for name in section:
        if name not in valid:
            raise UnknownKeyError(str(name), key, valid)
    try:
        merged = OmegaConf.merge(OmegaConf.structured(schema), dict(section))
        return OmegaConf.to_object(merged)
    except UnknownKeyError as exc:  # raised by a nested section's own validation
        raise UnknownKeyError(exc.name, f"{key}.{exc.section}" if exc.section else key, exc.valid) from None
    except ConfigError as exc:
        raise ConfigError(str(exc).split(" (config key:")[0], key=f"{key}.{exc.key}" if exc.key else key) from None
    except ConfigKeyError as exc:  # pragma: no cover - caught above
        raise UnknownKeyError(str(exc.key), key, valid) from None
    except OmegaConfBaseException as exc:
        field = getattr(exc, "full_key", "") or ""
        msg = getattr(exc, "msg", str(exc)).splitlines()[0]
        if "missing mandatory value" in msg.lower():
            msg = "is required but was not given"
        raise ConfigError(msg, key=f"{key}.{field}" if field else key) from None


def to_container(cfg: DictConfig) -> dict[str, Any]:
    """A plain dict with every interpolation resolved (errors name the key)."""
    try:
        return OmegaConf.to_container(cfg, resolve=True)
    except OmegaConfBaseException as exc:
        raise ConfigError(f"cannot resolve interpolation: {getattr(exc, 'msg', exc)}",
                          key=getattr(exc, "full_key", None)) from None


def load_config(path: str | Path | None = None, overrides: Sequence[str] = (), *,
                base: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Stage 1: the config as a plain dict, overrides applied, top level checked.

    Either ``path`` (a YAML file) or ``base`` (a mapping) provides the starting config.
    """
    cfg = load_yaml(path) if path is not None else OmegaConf.create(dict(base or {}))
    cfg = apply_overrides(cfg, overrides)
    data = to_container(cfg)
    check_top_level(data)
    return data


def check_top_level(data: Mapping[str, Any]) -> None:
    """Check the known sections, ``trainer:``, ``data:`` core keys and each facet record."""
    for key in data:
        if key not in TOP_LEVEL:
            raise UnknownKeyError(str(key), "", TOP_LEVEL)
    for required in ("data", "model"):
        section = data.get(required)
        if not isinstance(section, Mapping) or not section.get("name"):
            raise ConfigError(f"section `{required}:` with a `name:` is required", key=f"{required}.name")
    plugins = data.get("plugins") or []
    if not isinstance(plugins, list) or not all(isinstance(p, str) for p in plugins):
        raise ConfigError("must be a list of importable module names", key="plugins")
    validate_section(TrainerSection, data.get("trainer"), "trainer")
    facets = data.get("facets") or []
    if not isinstance(facets, list):
        raise ConfigError("must be a list of facet records ({latent_dim, n_clusters, prior})", key="facets")
    for i, facet in enumerate(facets):
        validate_section(FacetSection, facet, f"facets[{i}]")
    for part in PARTS[1:]:
        section = data.get(part)
        if section is not None and (not isinstance(section, Mapping) or not section.get("name")):
            raise ConfigError(f"section `{part}:` needs a `name:`", key=f"{part}.name")
