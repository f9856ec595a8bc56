"""mfcf: a plugin-based framework for multi-facet deep clustering.

Public API::

    import mfcf

    cfg = mfcf.load_config("configs/shapes_mfcvae.yaml", ["trainer.epochs=3"])
    run_dir = mfcf.train(cfg)
    results = mfcf.evaluate(run_dir, split="test")

Plugins implement hooks marked with :data:`mfcf.hookimpl` (see :mod:`mfcf.hookspecs`) and
components derived from the base classes in :mod:`mfcf.api`.
"""

from .errors import (
    ConfigError,
    DataError,
    MfcfError,
    PluginError,
    RunDirError,
    TrainingError,
    UnknownComponentError,
    UnknownKeyError,
)
from .plugins import hookimpl

__version__ = "0.1.0"


def __getattr__(name: str):
    # The heavy entry points load on first use so `import mfcf` in a plugin stays cheap.
    lazy = {
        "load_config": ("mfcf.config", "load_config"),
        "build": ("mfcf.engine.build", "build"),
        "train": ("mfcf.engine.trainer", "train"),
        "resume": ("mfcf.engine.trainer", "resume"),
        "evaluate": ("mfcf.engine.evaluation", "evaluate_run"),
    }
    if name in lazy:
        import importlib

        module, attr = lazy[name]
        return getattr(importlib.import_module(module), attr)
    raise AttributeError(f"module 'mfcf' has no attribute {name!r}")


__all__ = [
    "ConfigError", "DataError", "MfcfError", "PluginError", "RunDirError", "TrainingError",
    "UnknownComponentError", "UnknownKeyError", "build", "evaluate", "hookimpl", "load_config",
    "resume", "train",
]
