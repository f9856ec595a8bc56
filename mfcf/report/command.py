"""The ``mfcf report`` command: :func:`add_parser` adds it to ``mfcf``'s sub-commands.

::

    mfcf report RUN_DIR [--split test|val|train] [--out DIR] [--order size|confidence]
                [--examples N] [--max-clusters N] [--temperature T] [--pairs N] [--seed S]
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from ..errors import ConfigError, MfcfError
from .options import ORDERS, ReportOptions


def handle(args: argparse.Namespace) -> None:
    """Write the report of ``args.run_dir`` and print where it went and what was skipped."""
    from .builder import build_report

    try:
        options = ReportOptions(order=args.order, n_examples=args.examples, max_clusters=args.max_clusters,
                                temperature=args.temperature, n_pairs=args.pairs, seed=args.seed)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    page, sections = build_report(args.run_dir, args.split, args.out, options)
    for s in sections:
        print(f"  {s.title}: " + (f"skipped ({s.skipped})" if s.skipped else
                                  ", ".join(f.file for f in s.figures) or "table"))
    print(f"written: {page}")


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add ``report`` to ``mfcf``'s sub-commands (its handler is set as ``func``)."""
    r = subparsers.add_parser("report", help="figures and an HTML page for a trained run (docs/report.md)",
                              description="Write PNG figures and a self-contained report.html for a trained run: "
                                          "scores, facet-factor NMI matrix, confusion matrices, top examples per "
                                          "cluster, per-cluster samples, facet swaps, training curves.")
    r.add_argument("run_dir", metavar="RUN_DIR")
    r.add_argument("--split", default="test", choices=["test", "val", "train"])
    r.add_argument("--out", help="output directory (default: RUN_DIR/report-<split>)")
    r.add_argument("--order", default="size", choices=ORDERS,
                   help="cluster order in every per-cluster figure (default: size, largest first; "
                        "confidence: highest mean max q(c|x) first, as the paper's code)")
    r.add_argument("--examples", type=int, default=10, help="examples and samples per cluster row (default 10)")
    r.add_argument("--max-clusters", type=int, default=30, help="cluster rows per figure at most (default 30)")
    r.add_argument("--temperature", type=float, default=1.0,
                   help="multiplies the prior's standard deviation when sampling (default 1.0; paper: 0.3 for "
                        "SVHN and 3DShapes)")
    r.add_argument("--pairs", type=int, default=8, help="input pairs per facet in the swap figures (default 8)")
    r.add_argument("--seed", type=int, default=0, help="seed of the sampling generator (default 0)")
    r.set_defaults(func=handle)
    return r


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m mfcf.report RUN_DIR ...``: the same command outside ``mfcf``."""
    parser = argparse.ArgumentParser(prog="mfcf")
    add_parser(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["report", *(sys.argv[1:] if argv is None else argv)])
    try:
        args.func(args)
    except MfcfError as exc:
        print(f"{type(exc).__name__}: {exc}", file=sys.stderr)
        return 2
    return 0
