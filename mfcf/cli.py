"""The ``mfcf`` command.

::

    mfcf train CONFIG [key=value ...] [--run-dir DIR] [--quiet] [--no-eval]
    mfcf train --resume RUN_DIR [--quiet]
    mfcf evaluate RUN_DIR [--split test|val|train]
    mfcf plugins
    mfcf config show CONFIG [key=value ...]

Errors that mfcf raises on purpose (:class:`mfcf.errors.MfcfError`) are printed without a
traceback and exit with status 2.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence

import yaml

from .errors import ConfigError, MfcfError


def _train(args: argparse.Namespace) -> None:
    from .engine.evaluation import evaluate_run, format_table
    from .engine.trainer import resume, train

    if args.resume:
        if args.config or args.overrides or args.run_dir:
            raise ConfigError("--resume RUN_DIR takes no config, overrides or --run-dir: "
                              "a resumed run uses the config stored in its directory")
        run_dir = resume(args.resume, quiet=args.quiet)
    else:
        if not args.config:
            raise ConfigError("mfcf train needs a CONFIG file (or --resume RUN_DIR)")
        run_dir = train(args.config, args.overrides, run_dir=args.run_dir, quiet=args.quiet)
    if not args.no_eval:
        result = evaluate_run(run_dir, "test")
        print(format_table(result))
    print(f"run directory: {run_dir}")


def _evaluate(args: argparse.Namespace) -> None:
    from .engine.evaluation import evaluate_run, format_table

    for run_dir in args.run_dirs:
        result = evaluate_run(run_dir, args.split)
        print(format_table(result))
        print(f"written: {run_dir}/eval-{args.split}.json")


def _plugins(args: argparse.Namespace) -> None:
    from .api import KINDS
    from .plugins import plugin_manager
    from .registry import Registry

    registry = Registry(plugin_manager())
    if args.json:
        print(json.dumps([dict(kind=e.kind, name=e.name, cls=f"{e.cls.__module__}.{e.cls.__qualname__}",
                               plugin=e.plugin, package=e.package, version=e.version)
                          for e in registry.entries()], indent=2))
        return
    for kind in KINDS:
        entries = list(registry.entries(kind))
        print(f"{kind}s:" if entries else f"{kind}s: (none)")
        for e in entries:
            print(f"  {e.name:<22} {e.cls.__qualname__:<32} {e.package} {e.version}")


def _config_show(args: argparse.Namespace) -> None:
    from .config import load_config
    from .engine.build import resolve

    print(yaml.safe_dump(resolve(load_config(args.config, args.overrides)).config, sort_keys=False), end="")


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="mfcf", description="Multi-facet deep clustering: train, evaluate, inspect.")
    sub = p.add_subparsers(dest="command", required=True)

    t = sub.add_parser("train", help="train a config into a run directory (or resume one)")
    t.add_argument("config", nargs="?", help="experiment YAML")
    t.add_argument("overrides", nargs="*", help="key=value overrides, e.g. trainer.epochs=5 facets.0.n_clusters=8")
    t.add_argument("--resume", metavar="RUN_DIR", help="continue a killed or interrupted run")
    t.add_argument("--run-dir", help="write into this (new or empty) directory instead of runs/<name>-<time>")
    t.add_argument("--quiet", action="store_true", help="no progress bar or per-epoch lines")
    t.add_argument("--no-eval", action="store_true", help="skip the test-split evaluation after training")
    t.set_defaults(func=_train)

    e = sub.add_parser("evaluate", help="score each facet's clusters against every labelled factor")
    e.add_argument("run_dirs", nargs="+", metavar="RUN_DIR")
    e.add_argument("--split", default="test", choices=["test", "val", "train"])
    e.set_defaults(func=_evaluate)

    pl = sub.add_parser("plugins", help="list every registered component by kind with its package and version")
    pl.add_argument("--json", action="store_true")
    pl.set_defaults(func=_plugins)

    c = sub.add_parser("config", help="inspect configs")
    csub = c.add_subparsers(dest="config_command", required=True)
    show = csub.add_parser("show", help="print the resolved config with every default filled in")
    show.add_argument("config")
    show.add_argument("overrides", nargs="*")
    show.set_defaults(func=_config_show)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        args.func(args)
    except MfcfError as exc:
        print(f"{type(exc).__name__}: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
