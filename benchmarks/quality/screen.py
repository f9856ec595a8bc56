"""Screen config arms on the validation split of the screening seeds: the results discipline as a tool.

    python benchmarks/quality/screen.py configs/mnist5k_mfcvae.yaml --out /tmp/screen \\
        --arm frozen= --arm umap="model.gmm_method=umap" --factor label

Every arm (``NAME=OVERRIDES``, the overrides separated by spaces; ``NAME=`` is the config as it
is) is trained once per seed with ``trainer.seed`` = ``data.split_seed`` = the seed and one torch
thread (``mfcf train ... --no-eval``), then scored on the **validation** split only (``mfcf
evaluate RUN --split val``). ``--lanes`` runs go at once. A run whose ``eval-val.json`` exists is
never run again, so a screen can be stopped and continued. Seeds are limited to 0-4: the seeds
that report results (10-19) must not choose anything.

The table (printed and written to ``<out>/screen.md``) gives per arm and factor the Hungarian
accuracy of the facet the validation matching assigns to the factor, per seed, its mean and the
facets; ``--factor`` and ``--rule`` mark the arms whose mean on that factor beats the first arm's
by at least the rule (the rule is fixed before the runs: say it in benchmarks/README.md).
"""

from __future__ import annotations

import argparse
import concurrent.futures
import json
import shutil
import statistics
import subprocess
import sys
from pathlib import Path

SCREENING_SEEDS = range(5)


def fail(message: str) -> None:
    print(f"screen.py: {message}", file=sys.stderr)
    raise SystemExit(2)


def parse_arm(text: str) -> tuple[str, list[str]]:
    name, sep, overrides = text.partition("=")
    if not sep or not name or "/" in name:
        fail(f"--arm {text!r} is not NAME=OVERRIDES (e.g. --arm umap=\"model.gmm_method=umap\", or --arm base= "
             "for the config as it is); the name must not contain '/'")
    return name, overrides.split()


def parse_seeds(text: str) -> list[int]:
    try:
        seeds = [int(s) for s in text.split(",") if s.strip()]
    except ValueError:
        fail(f"--seeds {text!r} is not a comma-separated list of integers, e.g. 0,1,2,3,4")
    outside = [s for s in seeds if s not in SCREENING_SEEDS]
    if not seeds or outside:
        fail(f"--seeds {text!r}: screening uses seeds 0-4 only (got {outside or 'none'}); seeds 10-19 "
             "report results and must not choose anything")
    return seeds


def run_one(config: str, overrides: list[str], seed: int, run_dir: Path) -> Path:
    """Train and score one (arm, seed) unless its validation scores exist; returns eval-val.json."""
    scores = run_dir / "eval-val.json"
    if scores.is_file():
        return scores
    if run_dir.exists():  # an unfinished run of an earlier screen: start it again
        shutil.rmtree(run_dir)
    run_dir.parent.mkdir(parents=True, exist_ok=True)
    log = run_dir.parent / f"{run_dir.name}.log"
    mfcf = [sys.executable, "-m", "mfcf.cli"]
    with log.open("w") as out:
        for command in ([*mfcf, "train", config, f"trainer.seed={seed}", f"data.split_seed={seed}",
                         "trainer.threads=1", *overrides, "--run-dir", str(run_dir), "--quiet", "--no-eval"],
                        [*mfcf, "evaluate", str(run_dir), "--split", "val"]):
            if subprocess.run(command, stdout=out, stderr=subprocess.STDOUT).returncode:
                raise RuntimeError(f"failed, see {log}")
    return scores


def matched(scores: Path) -> dict[str, tuple[int, float]]:
    """factor -> (facet, Hungarian accuracy) of the validation matching of one run."""
    report = json.loads(scores.read_text())
    return {m["factor"]: (m["facet"], m["hungarian_acc"]) for m in report["matching"] if m["factor"]}


def table(results: dict[str, dict[int, dict | str]], seeds: list[int], factor: str | None, rule: float) -> str:
    """The markdown table of every arm and factor; the rule applied against the first arm."""
    lines = ["| arm | factor | " + " / ".join(f"seed {s}" for s in seeds) + " | mean | facets | rule |",
             "|---|---|---|---|---|---|"]
    reference = None
    for arm, per_seed in results.items():
        factors = sorted({f for r in per_seed.values() if isinstance(r, dict) for f in r})
        for name in factors or ["-"]:
            cells, accs, facets = [], [], []
            for s in seeds:
                r = per_seed.get(s)
                if isinstance(r, dict) and name in r:
                    facets.append(r[name][0])
                    accs.append(r[name][1])
                    cells.append(f"{r[name][1]:.3f}")
                else:
                    cells.append(r if isinstance(r, str) else "-")
            mean = statistics.fmean(accs) if accs else None
            verdict = ""
            if name == factor and mean is not None:
                if reference is None:
                    reference, verdict = mean, "reference"
                elif len(accs) == len(seeds):
                    verdict = f"{mean - reference:+.3f}: " + ("passes" if mean - reference >= rule else "does not pass")
            lines.append(f"| {arm} | {name} | {' / '.join(cells)} | "
                         f"{'-' if mean is None else f'{mean:.3f}'} | {','.join(map(str, facets))} | {verdict} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("config", help="the config to screen arms of")
    p.add_argument("--arm", action="append", required=True, help="NAME=OVERRIDES (repeatable; the first is the reference)")
    p.add_argument("--seeds", default="0,1,2,3,4", help="screening seeds, within 0-4 (default all five)")
    p.add_argument("--out", required=True, help="folder for the runs and screen.md")
    p.add_argument("--lanes", type=int, default=2, help="runs at once, one torch thread each")
    p.add_argument("--factor", help="the factor the rule looks at")
    p.add_argument("--rule", type=float, default=0.02, help="margin over the first arm's mean (default 0.02)")
    args = p.parse_args(argv)
    if not Path(args.config).is_file():
        fail(f"config {args.config!r} not found; give the path of a YAML config, e.g. configs/mnist5k_mfcvae.yaml")
    arms = dict(parse_arm(a) for a in args.arm)
    if len(arms) != len(args.arm):
        fail("two --arm options share a name; give every arm its own")
    seeds = parse_seeds(args.seeds)
    if args.lanes < 1:
        fail(f"--lanes {args.lanes}: give at least 1")
    out = Path(args.out)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        fail(f"--out {args.out!r} cannot be created ({err.strerror}); choose a writable folder")

    results: dict[str, dict[int, dict | str]] = {arm: {} for arm in arms}
    with concurrent.futures.ThreadPoolExecutor(args.lanes) as pool:
        jobs = {pool.submit(run_one, args.config, overrides, s, out / arm / f"seed{s}"): (arm, s)
                for s in seeds for arm, overrides in arms.items()}
        for job in concurrent.futures.as_completed(jobs):
            arm, s = jobs[job]
            try:
                results[arm][s] = matched(job.result())
            except RuntimeError as err:
                results[arm][s] = str(err)
    text = table(results, seeds, args.factor, args.rule)
    (out / "screen.md").write_text(f"config: {args.config}; validation split; seeds {seeds}; rule +{args.rule} "
                                   f"on {args.factor or '(none)'} over the first arm\n\n{text}\n")
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
