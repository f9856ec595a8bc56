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
import math
import os
import re
import sys
import typing
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Optional

import yaml
from omegaconf import MISSING, DictConfig, ListConfig, OmegaConf
from omegaconf.errors import ConfigKeyError, OmegaConfBaseException

from .api import PARTS
from .errors import ConfigError, UnknownKeyError

#: Limits on what a config file (or an override value) may hold; real configs are a few kB.
MAX_FILE_BYTES = 2**20
MAX_DEPTH = 64  # levels of nested lists and mappings
MAX_NODES = 100_000  # values, counting an alias's list or mapping again at every use
#: Limits on values: the most epochs a run may ask for, the most torch threads, 64-bit integers
#: and 32-bit seeds (numpy's and scikit-learn's random states take no larger ones).
MAX_EPOCHS = 10**6
MAX_THREADS = 1024
INT64_MAX = 2**63 - 1
SEED_MAX = 2**32 - 1
#: What ``trainer.run_name`` may hold: a name, never a path.
RUN_NAME_CHARS = "ASCII letters, digits and . _ - + = , @"
_RUN_NAME = re.compile(r"[A-Za-z0-9._+=,@-]{1,200}")


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
    stop_after_epochs: Optional[int] = None  # train only the first N of `epochs` (a short try); None: all
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
        if self.epochs > MAX_EPOCHS:
            raise ConfigError(f"must be at most {MAX_EPOCHS:,}, got {self.epochs:,}", key="epochs")
        positive(self.stop_after_epochs, "stop_after_epochs", allow_none=True)
        if (self.stop_after_epochs or 0) > self.epochs:
            raise ConfigError(f"must be at most trainer.epochs ({self.epochs}), got {self.stop_after_epochs}",
                              key="stop_after_epochs")
        positive(self.lr, "lr")
        positive(self.threads, "threads", allow_none=True)
        if (self.threads or 0) > MAX_THREADS:
            raise ConfigError(f"must be at most {MAX_THREADS}, got {self.threads}; torch crashes with far more "
                              "threads than cores", key="threads")
        positive(self.log_every_steps, "log_every_steps")
        positive(self.checkpoint_every_steps, "checkpoint_every_steps", allow_zero=True)
        positive(self.eval_every_epochs, "eval_every_epochs")
        positive(self.score_every_epochs, "score_every_epochs", allow_zero=True)
        positive(self.grad_clip, "grad_clip", allow_none=True)
        if self.precision not in PRECISIONS:
            raise ConfigError(f"must be one of {', '.join(PRECISIONS)}, got {self.precision!r}", key="precision")
        if self.compile not in COMPILE_MODES:
            raise ConfigError(f"must be one of {', '.join(COMPILE_MODES)}, got {self.compile!r}", key="compile")
        if not re.fullmatch(r"auto|cpu|cuda(:\d+)?", self.device):
            raise ConfigError(f"must be auto, cpu, cuda or cuda:N, got {self.device!r}", key="device")
        if not self.runs_dir or "\0" in self.runs_dir:
            raise ConfigError(f"must be a directory path (not empty, no NUL byte), got {self.runs_dir!r}",
                              key="runs_dir")
        if self.run_name is not None and (not _RUN_NAME.fullmatch(self.run_name) or set(self.run_name) == {"."}):
            raise ConfigError(f"must be a name, not a path: {RUN_NAME_CHARS} only (at most 200, not only dots), "
                              f"got {self.run_name!r}; the run directory is <trainer.runs_dir>/<run_name>-<time>",
                              key="run_name")

    @property
    def epochs_to_run(self) -> int:
        """The epochs this run trains: ``stop_after_epochs`` if set, else ``epochs``. Everything
        else (schedules, initialisation epochs) keeps following the full ``epochs``."""
        return self.stop_after_epochs or self.epochs


@dataclasses.dataclass
class FacetSection:
    """One record of ``facets:``."""

    latent_dim: int = MISSING
    n_clusters: int = MISSING
    prior: Optional[dict[str, Any]] = None

    def __post_init__(self) -> None:
        positive(self.latent_dim, "latent_dim")
        if self.n_clusters < 2:
            raise ConfigError(f"must be 2 or more (one cluster tells nothing apart), got {self.n_clusters}",
                              key="n_clusters")
        K, D = self.n_clusters, self.latent_dim
        full = (self.prior or {}).get("covariance") == "full"
        need = 4 * K * D * (1 + (D if full else 1))  # float32 means + variances (D x D each for full)
        have = physical_memory()
        if have and need > have:
            raise ConfigError(
                f"the facet's prior would need at least {need / 2**30:,.1f} GiB for {K:,} clusters x {D:,} dimensions "
                f"(means and {'full' if full else 'diagonal'} variances), more than this machine's "
                f"{have / 2**30:,.1f} GiB of memory; lower n_clusters or latent_dim",
                key="latent_dim" if D >= K else "n_clusters")


def physical_memory() -> int | None:
    """Bytes of RAM of this machine, or None where the OS does not say."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, ValueError, OSError):
        return None


#: Top-level sections; component sections hold ``name`` plus that component's options.
TOP_LEVEL = ("plugins", "data", "model", "facets", *PARTS[1:], "trainer")


class _Refused(yaml.YAMLError):
    """YAML that parses but that a config may not hold; ``mark`` is where."""

    def __init__(self, problem: str, mark: yaml.Mark):
        super().__init__(problem)
        self.mark = mark


def _shown_tag(node: yaml.Node) -> str:
    return node.tag.replace("tag:yaml.org,2002:", "!!")


def _refuse_tag(loader: yaml.SafeLoader, node: yaml.Node) -> None:
    raise _Refused(f"the tag {_shown_tag(node)} is not allowed: a config holds mappings, lists, strings, numbers, "
                   "booleans and null only", node.start_mark)


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.MappingNode):
        return [child for pair in node.value for child in pair]
    return node.value if isinstance(node, yaml.SequenceNode) else []


class ConfigLoader(yaml.SafeLoader):
    """PyYAML's safe loader, stricter: plain data only (dates stay strings), string keys given
    once per mapping, at most :data:`MAX_DEPTH` levels and :data:`MAX_NODES` values with every
    alias expanded, counted while composing so that an alias bomb fails fast."""

    def __init__(self, stream: str):
        super().__init__(stream)
        self._depth = 0
        self._sizes: dict[int, int] = {}  # id(node) -> number of values in it, aliases expanded

    def compose_node(self, parent: yaml.Node | None, index: Any) -> yaml.Node:
        alias, mark = self.check_event(yaml.AliasEvent), self.peek_event().start_mark
        self._depth += 1
        if self._depth > MAX_DEPTH:
            raise _Refused(f"lists and mappings are nested more than {MAX_DEPTH} levels deep (the most mfcf "
                           "reads); flatten the config", mark)
        node = super().compose_node(parent, index)
        self._depth -= 1
        if alias and id(node) not in self._sizes:
            raise _Refused("an alias is used inside the list or mapping it names; a config cannot contain "
                           "itself", mark)
        if not alias:
            self._sizes[id(node)] = 1 + sum(self._sizes[id(child)] for child in _children(node))
        if self._sizes[id(node)] > MAX_NODES:
            raise _Refused(f"it expands to more than {MAX_NODES:,} values once its aliases (*name) are "
                           f"expanded, the most mfcf reads; use fewer aliases", mark)
        return node

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        lines: dict[str, int] = {}
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue
            key = self.construct_object(key_node, deep=deep)
            if not isinstance(key, str):
                text = key_node.value if isinstance(key_node, yaml.ScalarNode) else _shown_tag(key_node)
                raise _Refused(f"the key {text!r} is not a name (YAML reads it as {_shown_tag(key_node)}); quote it "
                               f"(\"{text}\") or rename it", key_node.start_mark)
            if key in lines:
                raise _Refused(f"the key '{key}' is given twice in one mapping (first on line {lines[key]}); "
                               "keep one of them", key_node.start_mark)
            lines[key] = key_node.start_mark.line + 1
        return super().construct_mapping(node, deep=deep)


for _tag in ("binary", "omap", "pairs", "set"):
    ConfigLoader.add_constructor(f"tag:yaml.org,2002:{_tag}", _refuse_tag)
ConfigLoader.add_constructor(None, _refuse_tag)
ConfigLoader.add_constructor("tag:yaml.org,2002:timestamp", yaml.SafeLoader.construct_yaml_str)


def parse_yaml(text: str, source: str, *, name: str | None = None, key: str | None = None) -> Any:
    """``text`` read with :class:`ConfigLoader`; errors name ``source`` (a file, an override) and ``key``.

    ``name`` is what PyYAML's own syntax errors call the text (e.g. the file's path).
    """
    loader = ConfigLoader(text)
    loader.name = name or loader.name
    try:
        return loader.get_single_data()
    except _Refused as exc:
        raise ConfigError(f"{source}, line {exc.mark.line + 1}: {exc}", key=key) from None
    except (yaml.YAMLError, ValueError) as exc:  # ValueError: an integer of more than 4300 digits
        raise ConfigError(f"{source} does not parse as YAML:\n{exc}", key=key) from None
    finally:
        loader.dispose()


#: An integer, possibly with an exponent (``1e6``, which YAML 1.1 reads as a string).
_INTEGER = re.compile(r"[+-]?\d+([eE]\+?\d+)?")


def parse_override(text: str) -> tuple[str, Any]:
    """``'trainer.lr=1e-3'`` -> ``('trainer.lr', 0.001)``; values are parsed as YAML."""
    key, sep, raw = text.partition("=")
    key = key.strip()
    if not sep or not key:
        raise ConfigError(f"override {text!r} is not of the form key=value (e.g. trainer.epochs=5)")
    parts = key.replace("[", ".").replace("]", "").split(".")
    if "" in parts:
        raise ConfigError(f"override {text!r}: the key has an empty part; write dotted keys such as trainer.lr "
                          "or facets.0.latent_dim", key=key)
    if any(re.fullmatch(r"-\d+", part) for part in parts):
        raise ConfigError(f"override {text!r}: list indices count from 0 and cannot be negative "
                          "(facets.0 is the first facet)", key=key)
    value = parse_yaml(raw, f"value of override {text!r}", key=key) if raw.strip() else None
    if isinstance(value, str):  # YAML 1.1 reads '1e-3' and '1e6' as strings; users mean numbers
        try:
            number = float(value)
        except ValueError:
            number = math.nan
        if math.isfinite(number):  # 'nan' and 'inf' stay strings: a float option converts them itself
            value = int(number) if _INTEGER.fullmatch(value.strip()) else number
    return key, value


def load_yaml(path: str | Path) -> DictConfig:
    """Parse a YAML mapping file into a DictConfig with errors that name the file."""
    path = Path(path)
    try:
        if path.is_dir():
            raise ConfigError(f"config file '{path}' is a directory; give the path of a YAML file "
                              "(e.g. configs/shapes_mfcvae.yaml)")
        if not path.exists():
            raise ConfigError(f"config file '{path}' does not exist")
        if not path.is_file():
            raise ConfigError(f"config file '{path}' is not a regular file; give the path of a YAML file")
        if path.stat().st_size > MAX_FILE_BYTES:
            raise ConfigError(f"config file '{path}' is {path.stat().st_size:,} bytes, more than the "
                              f"{MAX_FILE_BYTES:,} mfcf reads; a config is a few kB of YAML")
        raw = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"cannot read config file '{path}': {exc.strerror}; check that it is readable") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"config file '{path}' is not UTF-8 text: byte 0x{raw[exc.start]:02x} at offset "
                          f"{exc.start} ({exc.reason}); save it as UTF-8") from None
    data = parse_yaml(text, f"config file '{path}'", name=str(path))
    if not isinstance(data, dict):
        got = "nothing (it is empty)" if data is None else f"a value of type {type(data).__name__}"
        raise ConfigError(f"config file '{path}' must hold a mapping of sections (data:, model:, ...), got {got}")
    return OmegaConf.create(data)


def apply_overrides(cfg: DictConfig, overrides: Sequence[str]) -> DictConfig:
    """Apply overrides, in order (dotted keys; list items as ``facets.0.latent_dim``):

    * ``key=value`` sets a value; a mapping value (``schedule={name: constant}``) replaces the
      whole section, as in Hydra, instead of merging into it;
    * ``~key`` deletes a key (``~trainer.grad_clip``) or a whole section;
    * ``section.name=other`` switching a component drops the options of the old component
      that the new one does not have, saying which on stderr (:func:`switch_component`).
    """
    cfg = cfg.copy()
    for text in overrides:
        if text.startswith("~"):
            _delete(cfg, text)
            continue
        set_value(cfg, *parse_override(text), source=f"override {text!r}")
    return cfg


def set_value(cfg: DictConfig, key: str, value: Any, *, source: str) -> None:
    """Set dotted ``key`` of ``cfg`` to ``value`` in place, as an override does: a mapping or list
    replaces what was there, and a changed component ``name`` drops the old component's options
    (:func:`switch_component`). ``source`` names the override in errors."""
    old_name = OmegaConf.select(cfg, key, default=None) if key.endswith(".name") else None
    try:
        OmegaConf.update(cfg, key, value, merge=False, force_add=True)
    except (OmegaConfBaseException, IndexError, ValueError) as exc:
        reason = getattr(exc, "msg", str(exc)).splitlines()[0]  # OmegaConf appends its full key and type
        raise ConfigError(f"cannot apply {source}: {reason}", key=key) from None
    if old_name is not None and value != old_name:
        switch_component(cfg, key.removesuffix(".name"), str(old_name), str(value))


def _delete(cfg: DictConfig, text: str) -> None:
    """``~key``: remove ``key`` from ``cfg`` (a mapping key or a list item)."""
    key = text[1:].strip()
    parent_key, _, last = key.rpartition(".")
    parse_override(f"{key}=")  # the same key rules as for setting
    parent = OmegaConf.select(cfg, parent_key) if parent_key else cfg
    if parent is None or OmegaConf.select(cfg, key, default=_ABSENT) is _ABSENT:
        raise ConfigError(f"override {text!r}: there is no key '{key}' to delete", key=key)
    if isinstance(parent, ListConfig):
        del parent[int(last)]
    else:
        del parent[last]


_ABSENT = object()

#: Section key -> component kind, for the sections whose ``name`` picks a registered component.
_SECTION_KINDS = {"data": "dataset", "model": "model", **{part: part for part in PARTS[1:]}}


def switch_component(cfg: DictConfig, section_key: str, old: str, new: str) -> None:
    """Drop from ``section_key`` the options of component ``old`` that component ``new`` does not
    have (core ``data:`` keys stay), and say which on stderr. Nothing happens when ``new`` is not
    registered: resolution then names it as an unknown component."""
    from .registry import Registry  # plugins are loaded only when a component is switched
    from .plugins import plugin_manager

    kind = "prior" if re.fullmatch(r"facets\.\d+\.prior", section_key) else _SECTION_KINDS.get(section_key)
    section = OmegaConf.select(cfg, section_key)
    if kind is None or not isinstance(section, DictConfig):
        return
    registry = Registry(plugin_manager(list(cfg.get("plugins") or [])))
    if new not in registry.names(kind):
        return
    keep = {"name", *(f.name for f in dataclasses.fields(registry.get(kind, new).Config))}
    if kind == "dataset":
        keep |= {f.name for f in dataclasses.fields(DataSection)}
    dropped = [k for k in section if k not in keep]
    for k in dropped:
        del section[k]
    if dropped:
        print(f"{section_key}.name={new}: dropped {', '.join(f'{section_key}.{k}' for k in dropped)} "
              f"(options of {kind} '{old}' that '{new}' does not have)", file=sys.stderr)


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
    hints = typing.get_type_hints(schema)
    for name, value in section.items():  # OmegaConf would read any number as a boolean
        if hints[name] in (bool, Optional[bool]) and isinstance(value, (int, float)) and not isinstance(value, bool):
            raise ConfigError(f"must be true or false, got {value!r}", key=f"{key}.{name}")
    try:
        check_numbers(section)  # before OmegaConf, whose float conversion overflows on huge integers
        merged = OmegaConf.merge(OmegaConf.structured(schema), dict(section))
        check_numbers(OmegaConf.to_container(merged))  # strings such as 'nan' are floats now
        return OmegaConf.to_object(merged)
    except UnknownKeyError as exc:  # raised by a nested section's own validation
        raise UnknownKeyError(exc.name, f"{key}.{exc.section}" if exc.section else key, exc.valid) from None
    except ConfigError as exc:
        raise ConfigError(str(exc).split(" (config key:")[0], key=f"{key}.{exc.key}" if exc.key else key) from None
    except ConfigKeyError as exc:  # pragma: no cover - caught above
        raise UnknownKeyError(str(exc.key), key, valid) from None
    except OmegaConfBaseException as exc:
        field = re.sub(r"\[(\d+)\]", r".\1", getattr(exc, "full_key", "") or "")  # li[0] -> li.0
        msg = getattr(exc, "msg", str(exc)).splitlines()[0]
        if "missing mandatory value" in msg.lower():
            msg = "is required but was not given"
        raise ConfigError(msg, key=f"{key}.{field}" if field else key) from None


def check_numbers(value: Any, key: str = "") -> None:
    """Raise :class:`ConfigError` naming the key of any non-finite float, any integer beyond 64
    bits or any seed (a key named ``seed`` or ``*_seed``) outside 0 to :data:`SEED_MAX` in
    ``value``; ``key`` is where ``value`` sits in the config."""
    if isinstance(value, Mapping):
        for name, item in value.items():
            check_numbers(item, f"{key}.{name}" if key else str(name))
    elif isinstance(value, (list, tuple)):
        for i, item in enumerate(value):
            check_numbers(item, f"{key}.{i}")
    elif isinstance(value, float) and not math.isfinite(value):
        raise ConfigError(f"must be a finite number, got {value}", key=key)
    elif isinstance(value, int) and not isinstance(value, bool):
        if re.search(r"(^|[._])seed$", key) and not 0 <= value <= SEED_MAX:
            shown = value if abs(value) <= INT64_MAX else "a number beyond 64 bits"
            raise ConfigError(f"must be a seed from 0 to {SEED_MAX} (2**32 - 1), got {shown}", key=key)
        if abs(value) > INT64_MAX:
            raise ConfigError(f"is too large: integers must fit in 64 bits (at most {INT64_MAX})", key=key)


def to_container(cfg: DictConfig) -> dict[str, Any]:
    """A plain dict with every interpolation resolved (errors name the key)."""
    try:
        return OmegaConf.to_container(cfg, resolve=True)
    except OmegaConfBaseException as exc:
        reason = str(getattr(exc, "msg", exc)).splitlines()[0]  # OmegaConf appends its full key and type
        raise ConfigError(f"cannot resolve interpolation: {reason}", key=getattr(exc, "full_key", None)) from None


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
        validate_section(FacetSection, facet, f"facets.{i}")
    for part in PARTS[1:]:
        section = data.get(part)
        if section is not None and (not isinstance(section, Mapping) or not section.get("name")):
            raise ConfigError(f"section `{part}:` needs a `name:`", key=f"{part}.name")
