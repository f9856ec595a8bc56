"""The ``mfcf`` command.

::

    mfcf train CONFIG [key=value ...] [--run-dir DIR] [--quiet] [--no-eval]
    mfcf train --resume RUN_DIR [--quiet]
    mfcf evaluate RUN_DIR [--split test|val|train]
    mfcf evaluate SWEEP_DIR                  (summary over seeds: summary.md, summary.csv)
    mfcf sweep SWEEP_YAML [key=value ...] [--address auto|HOST:PORT] [--quiet] [--dry-run]
    mfcf sweep --resume SWEEP_DIR [--address ...]
    mfcf report RUN_DIR [--split test] [--out DIR]   (figures + report.html, docs/report.md)
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
from .report.command import add_parser as add_report_parser


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
    from .tune.results import is_sweep_dir, write_sweep_summary

    runs = []
    for run_dir in args.run_dirs:
        if is_sweep_dir(run_dir):  # a sweep: summarise its trials (their evaluations are already written)
            summary, md, csv_path = write_sweep_summary(run_dir)
            print(summary.markdown())
            print(f"written: {md}, {csv_path} and {csv_path.with_suffix('.json')}")
            continue
        result = evaluate_run(run_dir, args.split)
        print(format_table(result))
        print(f"written: {run_dir}/eval-{args.split}.json")
        runs.append(run_dir)
    if len(runs) > 1:
        _summarise_runs(runs, args.out)


def _summarise_runs(run_dirs: Sequence[str], out: str) -> None:
    """Mean +- std over several evaluated runs, grouped by the config keys that differ (not the seed)."""
    import dataclasses
    from pathlib import Path

    from .engine.summary import lookup, record_from_run, summarise, varying_keys

    records = [dataclasses.replace(record_from_run(d), status="completed") for d in run_dirs]
    keys = varying_keys([r.config for r in records])
    records = [r.with_setting({k: lookup(r.config, k) for k in keys}) for r in records]
    summary = summarise(records, title=f"Results over {len(records)} runs (mean +- std)")
    print(summary.markdown())
    md, csv_path = summary.write(out, stem="evaluation-summary")
    print(f"written: {md}, {csv_path} and {Path(out) / 'evaluation-summary.json'}")


def _sweep(args: argparse.Namespace) -> None:
    from .errors import TrainingError
    from .tune import load_sweep

    launch = dict(address=args.address, quiet=args.quiet, num_cpus=args.num_cpus, num_gpus=args.num_gpus)
    if args.resume:
        if args.sweep or args.overrides or args.dry_run:
            raise ConfigError("--resume SWEEP_DIR takes no sweep file, overrides or --dry-run: a resumed sweep "
                              "uses the plan stored in its directory")
        from .tune.runner import resume_sweep

        outcome = resume_sweep(args.resume, **launch)
    else:
        if not args.sweep:
            raise ConfigError("mfcf sweep needs a SWEEP_YAML file (or --resume SWEEP_DIR)")
        sweep = load_sweep(args.sweep, args.overrides)
        if args.dry_run:
            print(f"sweep {sweep.name}: {len(sweep.trials())} trials, all valid; would write {sweep.directory}")
            for trial in sweep.trials():
                print(f"  {trial.name}  " + "  ".join(f"{k}={v}" for k, v in trial.values.items()))
            return
        from .tune.runner import run_sweep  # imports Ray

        outcome = run_sweep(sweep, **launch)
    from .tune.runner import failure_lines

    print(outcome.summary.markdown())
    print(f"written: {outcome.summary_files[0]} and {outcome.summary_files[1]}")
    problems = []
    if outcome.failed:
        problems += [f"{len(outcome.failed)} trial(s) failed after all retries:",
                     *failure_lines(outcome.directory, outcome.failed)]
    if outcome.unfinished:
        problems.append(f"{len(outcome.unfinished)} trial(s) did not finish (the sweep was interrupted)")
    if problems:
        raise TrainingError("\n".join(problems) + f"\n  Continue with: mfcf sweep --resume {outcome.directory}")


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
    from .engine.build import check

    print(yaml.safe_dump(check(load_config(args.config, args.overrides)).config, sort_keys=False), end="")


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
    e.add_argument("--out", default=".", help="where the summary over several runs goes (default: .)")
    e.set_defaults(func=_evaluate)

    sw = sub.add_parser("sweep", help="run a config over seeds and hyperparameters on Ray Tune (docs/sweeps.md)")
    sw.add_argument("sweep", nargs="?", metavar="SWEEP_YAML", help="sweep file (configs/sweeps/*.yaml)")
    sw.add_argument("overrides", nargs="*", help="key=value: sweep keys (seeds=[0,1], resources.gpu=0.5, "
                    "search.trainer.lr=[1e-3]) or experiment keys for every trial (trainer.epochs=5)")
    sw.add_argument("--address", help="join an existing Ray cluster: auto or HOST:PORT (default: RAY_ADDRESS, "
                    "else a private local instance)")
    sw.add_argument("--resume", metavar="SWEEP_DIR", help="continue a sweep whose driver stopped")
    sw.add_argument("--num-cpus", type=int, help="CPUs of the private local instance (default: all)")
    sw.add_argument("--num-gpus", type=int, help="GPUs of the private local instance (default: all)")
    sw.add_argument("--dry-run", action="store_true", help="validate every trial and list them; start nothing")
    sw.add_argument("--quiet", action="store_true", help="no line per finished trial; only the summary")
    sw.set_defaults(func=_sweep)

    add_report_parser(sub)

    pl = sub.add_parser("plugins", help="list every registered component by kind with its package and version")
    pl.add_argument("--json", action="store_true")
    pl.set_defaults(func=_plugins)

    c = sub.add_parser("config", help="inspect configs")
    csub = c.add_subparsers(dest="config_command", required=True)
    show = csub.add_parser("show", help="print the resolved config with every default filled in, after every "
                           "check training makes before it starts (data files, every component built for the "
                           "data's shape) except those that need the data loaded")
    show.add_argument("config")
    show.add_argument("overrides", nargs="*")
    show.set_defaults(func=_config_show)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    p = parser()
    args, extra = p.parse_known_args(argv)
    # key=value overrides may also follow options (`mfcf train c.yaml --quiet trainer.epochs=3`)
    unknown = [a for a in extra if a.startswith("-") or "=" not in a]
    if unknown or (extra and not hasattr(args, "overrides")):
        p.error(f"unrecognized arguments: {' '.join(unknown or extra)}")
    if extra:
        args.overrides = [*args.overrides, *extra]
    try:
        args.func(args)
    except MfcfError as exc:
        print(f"{type(exc).__name__}: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:  # a file or folder the system refused, that no check above foresaw
        print(f"{type(exc).__name__}: {exc}\n  Check that the path exists, is of the right kind and is "
              "readable (and writable where mfcf writes).", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
