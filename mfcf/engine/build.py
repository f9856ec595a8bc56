"""Assemble an experiment from a config: plugins -> sections -> data -> model.

Everything that can be wrong with a config is checked here, before any training starts:
component names (stage 2 of config resolution), each component's own section, facet counts
the chosen parts can host, data files, device.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from typing import Any

import numpy as np
import torch
from sklearn.model_selection import train_test_split

from ..api import PARTS, DataInfo, DataSplit, FacetSpec, Model
from ..config import DataSection, TrainerSection, check_top_level, validate_section
from ..errors import ConfigError
from ..plugins import plugin_manager
from ..registry import Registry
from .checkpoint import seed_everything

_CORE_DATA_KEYS = tuple(f.name for f in dataclasses.fields(DataSection))


@dataclasses.dataclass
class Resolved:
    """Stage-2 result: every section validated against its schema, nothing built yet."""

    config: dict[str, Any]  # the fully resolved config, defaults filled in
    registry: Registry
    trainer: TrainerSection
    data: DataSection
    facets: list[FacetSpec]
    classes: dict[str, type]  # kind -> class for dataset, model and each part
    configs: dict[str, Any]  # kind -> validated Config instance
    prior_classes: list[type]
    prior_configs: list[Any]


@dataclasses.dataclass
class Experiment:
    """A built experiment: data splits on the device and the model, ready to train."""

    resolved: Resolved
    device: torch.device
    train: DataSplit
    val: DataSplit | None
    test: DataSplit
    model: Model

    @property
    def config(self) -> dict[str, Any]:
        return self.resolved.config

    @property
    def trainer(self) -> TrainerSection:
        return self.resolved.trainer

    def split(self, name: str) -> DataSplit:
        splits = {"train": self.train, "val": self.val, "test": self.test}
        if splits.get(name) is None:
            hint = " (set data.val_fraction > 0 to have one)" if name == "val" else ""
            raise ConfigError(f"no '{name}' split; choose one of train, val, test{hint}", key="--split")
        return splits[name]


def _component(registry: Registry, kind: str, section: Mapping[str, Any], key: str,
               drop: tuple[str, ...] = ()) -> tuple[type, Any, dict[str, Any]]:
    """Look up ``section['name']`` and validate the rest of the section against its Config."""
    cls = registry.get(kind, section["name"], key=f"{key}.name")
    options = {k: v for k, v in section.items() if k != "name" and k not in drop}
    config = validate_section(cls.Config, options, key)
    resolved = {"name": cls.name, **dataclasses.asdict(config)}
    return cls, config, resolved


def _check_facet_count(cls: type, n: int, key: str) -> None:
    low, high = cls.supported_facets
    if n < low or (high is not None and n > high):
        span = f"{low}" if low == high else f"{low} to {high}" if high else f"{low} or more"
        raise ConfigError(
            f"{cls.kind} '{cls.name}' supports {span} facet(s) but the config has {n}; "
            f"change the number of `facets:` records or pick another {cls.kind}", key=key)


def resolve(user: Mapping[str, Any], registry: Registry | None = None) -> Resolved:
    """Stage 2: validate every section against its component's Config (nothing is built)."""
    check_top_level(user)
    registry = registry or Registry(plugin_manager(user.get("plugins") or []))
    trainer = validate_section(TrainerSection, user.get("trainer"), "trainer")
    data_core = validate_section(DataSection, {k: v for k, v in user["data"].items() if k in _CORE_DATA_KEYS}, "data")
    classes, configs = {}, {}
    out: dict[str, Any] = {"plugins": list(user.get("plugins") or [])}
    try:
        classes["dataset"], configs["dataset"], data_out = _component(registry, "dataset", user["data"], "data",
                                                                      drop=_CORE_DATA_KEYS)
    except ConfigError as exc:
        if "unknown config key" in str(exc):  # list the core keys too
            raise ConfigError(f"{exc}\n  core data keys: {', '.join(_CORE_DATA_KEYS)}") from None
        raise
    out["data"] = {**dataclasses.asdict(data_core), **data_out}
    model_cls, configs["model"], out["model"] = _component(registry, "model", user["model"], "model")
    classes["model"] = model_cls

    for part in PARTS[1:]:
        section = user.get(part)
        if part in model_cls.parts:
            if section is None:
                raise ConfigError(f"model '{model_cls.name}' needs a `{part}:` section with a `name:` "
                                  f"(available: {', '.join(registry.names(part)) or 'none'})", key=part)
            classes[part], configs[part], out[part] = _component(registry, part, section, part)
        elif section is not None:
            raise ConfigError(f"model '{model_cls.name}' does not use the `{part}:` section; remove it "
                              f"(it uses: {', '.join(model_cls.parts) or 'no parts'})", key=part)

    facets_in = user.get("facets") or []
    facets, prior_classes, prior_configs, facets_out = [], [], [], []
    for i, raw in enumerate(facets_in):
        prior = raw.get("prior")
        record = {"latent_dim": raw["latent_dim"], "n_clusters": raw["n_clusters"]}
        if "priors" in model_cls.parts:
            if not prior:
                raise ConfigError(f"model '{model_cls.name}' needs a prior per facet, e.g. "
                                  "`prior: {name: mog}`", key=f"facets.{i}.prior")
            cls, cfg, prior_out = _component(registry, "prior", prior, f"facets.{i}.prior")
            prior_classes.append(cls)
            prior_configs.append(cfg)
            record["prior"] = prior_out
        elif prior:
            raise ConfigError(f"model '{model_cls.name}' has no facet priors; remove it", key=f"facets.{i}.prior")
        facets.append(FacetSpec(i, int(record["latent_dim"]), int(record["n_clusters"]), record.get("prior")))
        facets_out.append(record)
    out["facets"] = facets_out
    _check_facet_count(model_cls, len(facets), "facets")
    for part in ("encoder", "decoder"):
        if part in classes:
            _check_facet_count(classes[part], len(facets), "facets")
    if "schedule" in classes:
        fixed = classes["schedule"].total_epochs(configs["schedule"])
        if fixed is not None and fixed != trainer.epochs:
            raise ConfigError(f"schedule '{classes['schedule'].name}' runs {fixed} epochs but trainer.epochs is "
                              f"{trainer.epochs}; set trainer.epochs={fixed} or change the schedule (nothing is "
                              f"overridden silently). To try the config for a few epochs, keep trainer.epochs="
                              f"{fixed} and set trainer.stop_after_epochs=N", key="trainer.epochs")
    out["trainer"] = dataclasses.asdict(trainer)
    return Resolved(out, registry, trainer, data_core, facets, classes, configs, prior_classes, prior_configs)


def _construct(section: str, cls: type, config: Any, **context: Any) -> Any:
    """Build a component; a ConfigError about one of its own fields gets the section prefix."""
    try:
        return cls(config, **context)
    except ConfigError as exc:
        if exc.key is None or "." in exc.key or exc.key.startswith(section):
            raise
        raise ConfigError(str(exc).split(" (config key:")[0], key=f"{section}.{exc.key}") from None


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"device '{name}' asked for but CUDA is not available here; use `auto` or `cpu`",
                          key="trainer.device")
    device = torch.device(name)
    if device.type == "cuda" and (device.index or 0) >= torch.cuda.device_count():
        raise ConfigError(f"device '{name}' asked for but this machine has {torch.cuda.device_count()} GPU(s), "
                          f"cuda:0 to cuda:{torch.cuda.device_count() - 1}", key="trainer.device")
    return device


def _has_cpp_compiler() -> bool:
    from torch._inductor.cpp_builder import get_cpp_compiler
    try:
        get_cpp_compiler()
    except Exception:
        return False
    return True


def _has_triton() -> bool:
    from torch.utils._triton import has_triton
    return has_triton()


def check_speed_switches(trainer: TrainerSection, device: torch.device) -> None:
    """Fail before training when ``trainer.compile`` / ``trainer.precision`` cannot work on ``device``."""
    if trainer.precision == "bf16" and device.type == "cuda" and not torch.cuda.is_bf16_supported():
        raise ConfigError(f"bf16 is not supported by the GPU {torch.cuda.get_device_name(device)}; "
                          "use trainer.precision: fp32", key="trainer.precision")
    if trainer.compile == "eager":
        return
    if device.type == "cpu" and not _has_cpp_compiler():
        raise ConfigError("torch.compile on the CPU needs a C++ compiler (inductor generates C++) and none "
                          "was found; install one (apt-get install -y g++) or use trainer.compile: eager",
                          key="trainer.compile")
    if device.type == "cuda" and not _has_triton():
        raise ConfigError("torch.compile on a GPU needs Triton, which is not installed; pip install triton "
                          "or use trainer.compile: eager", key="trainer.compile")


def split_validation(train: DataSplit, fraction: float, seed: int) -> tuple[DataSplit, DataSplit | None]:
    """Carve a validation split out of ``train``, stratified on its first factor."""
    if fraction == 0:
        return train, None
    labels = next(iter(train.factors.values())).numpy() if train.factors else None
    try:
        keep, held = train_test_split(np.arange(len(train)), test_size=fraction, random_state=seed,
                                      stratify=labels)
    except ValueError as exc:
        raise ConfigError(f"cannot take a stratified validation split of {fraction} from {len(train)} "
                          f"training examples: {exc}", key="data.val_fraction") from None
    return train.subset(torch.from_numpy(np.sort(keep))), train.subset(torch.from_numpy(np.sort(held)))


def build_model(resolved: Resolved, info: DataInfo, steps_per_epoch: int) -> Model:
    """The model and its parts, built on the CPU for data described by ``info``."""
    facets, trainer = resolved.facets, resolved.trainer
    context = {
        "encoder": dict(data_shape=info.shape, facets=facets),
        "decoder": dict(data_shape=info.shape, facets=facets),
        "likelihood": dict(info=info),
        "elbo": dict(n_facets=len(facets)),
        "schedule": dict(n_facets=len(facets), steps_per_epoch=steps_per_epoch, epochs=trainer.epochs),
    }
    model_cls = resolved.classes["model"]
    parts: dict[str, Any] = {}
    if "priors" in model_cls.parts:
        parts["priors"] = [_construct(f"facets.{f.index}.prior", cls, cfg, latent_dim=f.latent_dim,
                                      n_clusters=f.n_clusters)
                           for cls, cfg, f in zip(resolved.prior_classes, resolved.prior_configs, facets)]
    for part in PARTS[1:]:
        if part in model_cls.parts:
            parts[part] = _construct(part, resolved.classes[part], resolved.configs[part], **context[part])
    return _construct("model", model_cls, resolved.configs["model"], info=info, facets=facets, **parts)


def check(user: Mapping[str, Any] | Resolved) -> Resolved:
    """Every check :func:`build` makes before training, without loading the data: the device and
    speed switches, the dataset's files (its constructor), and every component built for the
    data's shape. Only the checks that need the data's size (``data.batch_size`` against the
    training split, the stratified validation split) are left to :func:`build`."""
    resolved = user if isinstance(user, Resolved) else resolve(user)
    check_speed_switches(resolved.trainer, resolve_device(resolved.trainer.device))
    dataset = _construct("data", resolved.classes["dataset"], resolved.configs["dataset"],
                         seed=resolved.data.split_seed)
    build_model(resolved, dataset.info, steps_per_epoch=1)
    return resolved


def build(user: Mapping[str, Any] | Resolved, *, device: torch.device | str | None = None) -> Experiment:
    """Build the experiment a config describes: data on the device and the model.

    ``user`` is a stage-1 config (:func:`mfcf.config.load_config`) or an already resolved one.
    """
    resolved = user if isinstance(user, Resolved) else resolve(user)
    trainer, data = resolved.trainer, resolved.data
    device = torch.device(device) if device is not None else resolve_device(trainer.device)
    check_speed_switches(trainer, device)
    if trainer.threads:
        torch.set_num_threads(trainer.threads)

    dataset = _construct("data", resolved.classes["dataset"], resolved.configs["dataset"], seed=data.split_seed)
    info = dataset.info
    train, val = split_validation(dataset.load("train"), data.val_fraction, data.split_seed)
    if data.batch_size > len(train):
        raise ConfigError(f"{data.batch_size} is more than the {len(train)} examples of the training split; "
                          f"set data.batch_size to {len(train)} or less", key="data.batch_size")
    test = dataset.load("test")

    seed_everything(trainer.seed)
    model = build_model(resolved, info, math.ceil(len(train) / data.batch_size)).to(device)
    return Experiment(resolved, device, train.to(device), val.to(device) if val is not None else None,
                      test.to(device), model)
