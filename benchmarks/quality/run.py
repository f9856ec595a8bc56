"""Clustering quality of every method on every CPU-sized dataset, over seeds, via `mfcf sweep`.

    python benchmarks/quality/run.py                          # the full matrix (hours on 2 cores)
    python benchmarks/quality/run.py --datasets shapes --methods mfcvae_j2,kmeans --seeds 0,1
    python benchmarks/quality/run.py --report-only            # re-read the stored trials, redo tables/plot
    python benchmarks/quality/run.py --smoke --out /tmp/q     # seconds: the CI version

Each (dataset, method) pair of ``matrix.yaml`` is run with ``mfcf sweep`` (a private local Ray
instance; ``--cpus`` CPUs, one per trial) over the seeds it still lacks. **The benchmark adds
up across sessions:** as each trial finishes, its scores are written to
``<out>/trials/<dataset>/<method>/seed<N>.json`` (with ``--commit`` also committed to git at
once), and a seed with a stored record is never run again -- a long table is completed over
several sessions, and an interrupted sweep loses at most its unfinished trials (its folder is
resumed with ``mfcf sweep --resume`` next time, unless the config has changed since). Seeds
come from the matrix: ``seeds`` at the top, per dataset, or per method (``method: {config:
PATH, seeds: [...]}``). From the stored records the script writes

* ``<out>/quality.json`` -- one record per trial (scores of every facet against every factor on
  the test split, the validation matching, training time, the per-epoch validation curve);
* ``<out>/quality.csv`` -- mean, std and n over seeds per (dataset, method, factor, metric);
* ``<out>/quality.md`` -- one table per dataset;
* ``<figures>/quality_accuracy_over_time.png`` -- validation accuracy against training time.

Which facet is scored against which factor is decided on the **validation** split only: the
facet the validation NMI matching assigns to the factor, or, for a factor no facet was matched
to (single-facet methods, more factors than facets), the facet with the highest validation NMI
for it (marked ``*`` in the tables). Test labels are used for nothing but the reported scores.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import copy
import csv
import hashlib
import json
import math
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import yaml

from mfcf.engine.machine import machine_info

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
METRICS = ("hungarian_acc", "many_to_one_acc", "nmi", "ari")

#: ``--smoke``: two methods on the 8x8 digits, two seeds, one short epoch -- seconds, no download.
SMOKE_MATRIX = {
    "seeds": [0, 1],
    "overrides": ["data.val_fraction=0.2", "trainer.score_every_epochs=1"],
    "datasets": {"digits": {"primary": "label", "data": [], "methods": {
        "mfcvae_j2": str(ROOT / "configs/sweeps/digits_mfcvae_cpu.yaml") + "#experiment",
        "kmeans": str(ROOT / "configs/baselines/digits/kmeans.yaml"),
    }}},
    "extra": ["trainer.epochs=2"],
}


# -- running -------------------------------------------------------------------------------
def experiment_of(path: str) -> Any:
    """A config path, or ``sweep.yaml#experiment`` for the experiment embedded in a sweep file."""
    file, _, key = path.partition("#")
    if not key:
        return str(Path(file).resolve())
    return yaml.safe_load(Path(file).read_text())[key]


def method_config(spec: Any) -> str:
    """The config path of a matrix method entry: ``PATH`` or ``{config: PATH, seeds: [...]}``."""
    return spec["config"] if isinstance(spec, dict) else spec


def wanted_seeds(matrix: dict, entry: dict, spec: Any) -> list[int]:
    """The seeds of one (dataset, method): the method's own, else the dataset's, else the matrix's."""
    for level in (spec if isinstance(spec, dict) else {}, entry, matrix):
        if "seeds" in level:
            return [int(s) for s in level["seeds"]]
    raise ValueError("matrix.yaml names no seeds")


#: Cores (and torch threads) of each trial.
TRIAL_CPUS = 1


def record_path(out: Path, dataset: str, method: str, seed: int) -> Path:
    return out / "trials" / dataset / method / f"seed{seed}.json"


def sweep_file(out: Path, dataset: str, method: str, matrix: dict, entry: dict, path: str,
               extra: list[str], seeds: list[int]) -> Path:
    """The sweep file of one (dataset, method) over ``seeds``, named by them and by a fingerprint
    of what its trials train (the config's text and the overrides), so that a folder left by an
    interrupted sweep of the same config over the same seeds is resumed, and one of a config that
    has changed since is not (its finished trials would be stored as the new config's)."""
    # Each trial gets one core and exactly one torch thread, whatever its config asks for (a
    # config's own `trainer.threads` would otherwise oversubscribe the cores and skew the times).
    overrides = [*matrix.get("overrides", []), *entry.get("data", []), *extra, f"trainer.threads={TRIAL_CPUS}"]
    experiment = experiment_of(path)
    trained = {"experiment": Path(experiment).read_text() if isinstance(experiment, str) else experiment,
               "overrides": overrides}
    fingerprint = hashlib.sha256(json.dumps(trained, sort_keys=True).encode()).hexdigest()[:8]
    name = f"{dataset}-{method}-{fingerprint}-seeds-{'-'.join(map(str, seeds))}"
    spec = {
        "experiment": experiment,
        "overrides": overrides,
        "seeds": seeds,
        # one setting per sweep: nothing is selected, the metric only heads the summary
        "metric": f"val/facet0/{entry['primary']}/nmi", "mode": "max",
        "resources": {"cpu": TRIAL_CPUS, "gpu": 0},
        "max_failures": 1,
        "storage": str(out / "sweeps"),
        "name": name,
    }
    target = out / "sweeps" / f"{name}.yaml"
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(yaml.safe_dump(spec, sort_keys=False))
    return target


#: Seconds between looks for finished trials while a sweep runs.
HARVEST_EVERY_S = 10


class Pair:
    """One (dataset, method) of the matrix: runs its missing seeds and stores each finished trial."""

    def __init__(self, out: Path, dataset: str, method: str, entry: dict, seeds: list[int], commit: bool):
        self.out, self.dataset, self.method, self.entry, self.seeds, self.commit = \
            out, dataset, method, entry, seeds, commit

    @property
    def name(self) -> str:
        return f"{self.dataset}-{self.method}"

    def missing(self) -> list[int]:
        return [s for s in self.seeds if not record_path(self.out, self.dataset, self.method, s).is_file()]

    def harvest(self, directory: Path) -> None:
        """Store every finished trial of ``directory`` that has no record yet."""
        for trial_dir in sorted(directory.glob("*-seed*")):
            if not (trial_dir / "trial.json").is_file():
                continue
            record = read_trial(trial_dir, self.entry["primary"])
            if record is None or record["seed"] not in self.seeds:
                continue
            target = record_path(self.out, self.dataset, self.method, record["seed"])
            if target.is_file():
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(json.dumps({"dataset": self.dataset, "method": self.method, **record}, indent=1))
            if self.commit:
                git_commit(target, f"quality benchmark: {self.name} seed {record['seed']}")

    def run(self, file: Path, cpus: int) -> tuple[str, int, str]:
        directory = file.with_suffix("")
        command = ([sys.executable, "-m", "mfcf.cli", "sweep", "--resume", str(directory)] if directory.is_dir()
                   else [sys.executable, "-m", "mfcf.cli", "sweep", str(file)])
        with open(file.with_suffix(".log"), "w") as log:
            proc = subprocess.Popen([*command, "--num-cpus", str(cpus), "--quiet"], stdout=log,
                                    stderr=subprocess.STDOUT, text=True)
            while proc.poll() is None:  # store trials as they land, not only when the sweep ends
                time.sleep(HARVEST_EVERY_S)
                self.harvest(directory)
        self.harvest(directory)
        left = self.missing()
        code = proc.returncode if proc.returncode or not left else 1
        tail = file.with_suffix(".log").read_text()[-2000:] + (f"\nno record for seeds {left}" if left else "")
        return self.name, code, tail


#: Pairs run in threads; two git commands at once would collide on the repository's index.lock.
_GIT = threading.Lock()


def git_commit(path: Path, message: str, *, tries: int = 30) -> None:
    """Commit ``path`` alone (other staged changes stay staged), so the record survives the session.
    A git command of the user's holding the index lock at that moment is waited for (up to
    ``tries`` seconds), not fatal to the sweep."""
    repo = ["git", "-C", str(path.parent)]
    with _GIT:
        for command in (["add", "--", str(path)], ["commit", "--quiet", "-m", message, "--", str(path)]):
            for attempt in range(tries):
                done = subprocess.run([*repo, *command], capture_output=True, text=True)
                if done.returncode == 0 or "index.lock" not in done.stderr or attempt == tries - 1:
                    break
                time.sleep(1.0)
            if done.returncode != 0:
                raise subprocess.CalledProcessError(done.returncode, done.args, done.stdout, done.stderr)


# -- reading -------------------------------------------------------------------------------
def read_trial(trial_dir: Path, primary: str) -> dict[str, Any] | None:
    run = trial_dir / "run"
    if not (run / "eval-test.json").is_file() or not (run / "eval-val.json").is_file():
        return None
    test = json.loads((run / "eval-test.json").read_text())
    val = json.loads((run / "eval-val.json").read_text())
    chosen = facet_per_factor(val)
    with open(run / "metrics.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    facet_of_primary = chosen[primary][0]
    curve_key = f"val/facet{facet_of_primary}/{primary}/hungarian_acc"
    curve = [(float(r["time/train_s"]), float(r[curve_key])) for r in rows
             if r.get(curve_key) not in (None, "") and r.get("time/train_s") not in (None, "")]
    train_s = float(rows[-1]["time/train_s"]) if rows and rows[-1].get("time/train_s") else None
    if not curve and train_s is not None:  # fitted without a gradient loop: one point
        curve = [(train_s, val["facets"][facet_of_primary]["factors"][primary]["hungarian_acc"])]
    scores = {factor: {"facet": facet, "by_nmi_only": by_nmi,
                       **{m: test["facets"][facet]["factors"][factor][m] for m in METRICS}}
              for factor, (facet, by_nmi) in chosen.items()}
    return {
        "seed": json.loads((trial_dir / "trial.json").read_text())["seed"],
        "train_s": train_s,
        "scores": scores, "curve": curve,
        "used_clusters": [f["used_clusters"] for f in test["facets"]],
        "kl_z": final_kl_z(rows, len(test["facets"])),
        "test_all": {f"facet{f['facet']}/{factor}/{m}": v for f in test["facets"]
                     for factor, s in f["factors"].items() for m, v in s.items()},
    }


def final_kl_z(rows: list[dict[str, str]], n_facets: int) -> list[float] | None:
    """Each facet's kl_z term (nats per example) averaged over the last epoch's training steps:
    what the facet carries while it trains (a mixture refitted at the end of that epoch leaves
    it as it was); None for a method that logs no per-facet KL."""
    last = rows[-1] if rows else {}
    keys = [f"train/kl_z/{j}" for j in range(n_facets)]
    if not all(last.get(k) not in (None, "") for k in keys):
        return None
    return [float(last[k]) for k in keys]


def facet_per_factor(val: dict[str, Any]) -> dict[str, tuple[int, bool]]:
    """factor -> (facet, chosen_by_nmi_only) from the validation evaluation alone."""
    matched = {m["factor"]: m["facet"] for m in val["matching"] if m["factor"] is not None}
    nmi = val["nmi_matrix"]
    out = {}
    for i, factor in enumerate(nmi["factors"]):
        if factor in matched:
            out[factor] = (matched[factor], False)
        else:
            column = [row[i] for row in nmi["values"]]
            out[factor] = (column.index(max(column)), True)
    return out


def collect(out: Path, matrix: dict) -> list[dict[str, Any]]:
    """The stored records of every (dataset, method, seed) the matrix asks for."""
    records = []
    for dataset, entry in matrix["datasets"].items():
        for method, spec in entry["methods"].items():
            for seed in wanted_seeds(matrix, entry, spec):
                path = record_path(out, dataset, method, seed)
                if path.is_file():
                    records.append(json.loads(path.read_text()))
    return records


# -- reporting -----------------------------------------------------------------------------
def mean_std(values: list[float]) -> tuple[float, float, int]:
    n = len(values)
    return statistics.fmean(values), (statistics.stdev(values) if n > 1 else math.nan), n


def aggregate(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    groups: dict[tuple[str, str, str], list[dict[str, Any]]] = {}
    for r in records:
        for factor, s in r["scores"].items():
            groups.setdefault((r["dataset"], r["method"], factor), []).append(s)
    rows = []
    for (dataset, method, factor), scores in groups.items():
        for metric in METRICS:
            mean, std, n = mean_std([s[metric] for s in scores])
            rows.append({"dataset": dataset, "method": method, "factor": factor, "metric": metric,
                         "mean": mean, "std": std, "n": n,
                         "by_nmi_only": any(s["by_nmi_only"] for s in scores)})
    return rows


def markdown(matrix: dict, records: list[dict[str, Any]], rows: list[dict[str, Any]]) -> str:
    lines = ["Test-split scores, mean ± std over seeds (n = seeds that finished). Per factor: Hungarian "
             "(one-to-one) accuracy / many-to-one accuracy (the paper's measure) / NMI of the facet the **validation** matching assigns to it; `*`: in at least one "
             "seed no facet was matched to the factor, and the facet with the highest validation NMI for it is "
             "shown.", ""]
    for dataset, entry in matrix["datasets"].items():
        factors = sorted({r["factor"] for r in rows if r["dataset"] == dataset})
        if not factors:
            continue
        lines += [f"### {dataset}", "",
                  "| method | " + " | ".join(f"{f}: acc / m2o / NMI" for f in factors)
                  + " | n | train s (median) | per facet: clusters used / kl_z (nats), mean |",
                  "|---" * (len(factors) + 4) + "|"]
        for method in entry["methods"]:
            cells = []
            for factor in factors:
                get = {r["metric"]: r for r in rows if (r["dataset"], r["method"], r["factor"]) == (dataset, method, factor)}
                if not get:
                    cells.append("—")
                    continue
                acc, m2o, nmi = get["hungarian_acc"], get["many_to_one_acc"], get["nmi"]
                star = "*" if acc["by_nmi_only"] else ""
                cells.append(f"{_pm(acc)} / {_pm(m2o)} / {_pm(nmi)}{star}")
            runs = [r for r in records if (r["dataset"], r["method"]) == (dataset, method)]
            times = [r["train_s"] for r in runs if r["train_s"] is not None]
            time = f"{statistics.median(times):.1f}" if times else "—"
            lines.append(f"| `{method}` | " + " | ".join(cells) + f" | {len(runs)} | {time} | {facet_use(runs)} |")
        lines.append("")
    return "\n".join(lines)


def facet_use(runs: list[dict[str, Any]]) -> str:
    """Facet by facet, the mean number of clusters in use on the test split and the mean kl_z of
    the last training epoch: a collapsed facet shows 1 cluster and ~0 nats."""
    if not runs:
        return "—"
    used = [statistics.fmean(col) for col in zip(*(r["used_clusters"] for r in runs))]
    kls = [r["kl_z"] for r in runs if r.get("kl_z")]
    kl = [statistics.fmean(col) for col in zip(*kls)] if len(kls) == len(runs) else [None] * len(used)
    return ", ".join(f"{u:.1f}" + ("" if k is None else f" / {k:.2f}") for u, k in zip(used, kl))


def _pm(row: dict[str, Any]) -> str:
    if row["n"] == 0:
        return "—"
    std = "" if math.isnan(row["std"]) else f" ± {row['std']:.3f}"
    return f"{row['mean']:.3f}{std}"


#: Methods drawn with a thick line in the plot: the multi-facet MFCVAE configs.
MULTI_FACET = ("mfcvae_j2", "mfcvae_j3", "mfcvae_j3_inv")


def line_looks(methods: list[str]) -> dict[str, dict[str, Any]]:
    """A colour and line style per method: the ten tab10 colours solid, then dashed, dotted and
    dash-dotted, so no two of up to 40 methods are drawn alike."""
    from matplotlib import colormaps

    return {m: {"color": colormaps["tab10"](i % 10), "linestyle": ("-", "--", ":", "-.")[i // 10 % 4]}
            for i, m in enumerate(methods)}


def plot(matrix: dict, records: list[dict[str, Any]], path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker

    datasets = [d for d in matrix["datasets"] if any(r["dataset"] == d for r in records)]
    if not datasets:
        return
    cols = min(len(datasets), 2)
    rows = math.ceil(len(datasets) / cols)
    height = 4.2 * rows + 0.8  # inches, 0.8 of them for the legend below the panels
    fig, axes = plt.subplots(rows, cols, figsize=(5.6 * cols, height), squeeze=False)
    methods = list(dict.fromkeys(m for d in datasets for m in matrix["datasets"][d]["methods"]))
    looks = line_looks(methods)
    handles = {}
    for ax in axes.flat[len(datasets):]:
        ax.set_visible(False)
    for ax, dataset in zip(axes.flat, datasets):
        primary = matrix["datasets"][dataset]["primary"]
        for method in matrix["datasets"][dataset]["methods"]:
            curves = [r["curve"] for r in records if (r["dataset"], r["method"]) == (dataset, method) and r["curve"]]
            if not curves:
                continue
            length = min(len(c) for c in curves)  # epochs every seed reached
            t = [statistics.fmean(c[i][0] for c in curves) for i in range(length)]
            a = [statistics.fmean(c[i][1] for c in curves) for i in range(length)]
            style = {"marker": "o", "markersize": 7} if length == 1 else {"marker": "." if length < 15 else None}
            (handles[method],) = ax.plot(t, a, **looks[method], label=method,
                                         linewidth=2.4 if method in MULTI_FACET else 1.2, **style)
        ax.set_xscale("log")
        ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())  # within a decade they overlap
        ax.set_xlabel("training time (s, mean over seeds; log scale)")
        ax.set_ylabel(f"validation Hungarian accuracy ({primary})")
        ax.set_title(dataset)
        ax.grid(alpha=0.3)
    fig.legend([handles[m] for m in methods if m in handles], [m for m in methods if m in handles],
               loc="lower center", ncol=min(len(handles), 4), fontsize=8, frameon=False)
    fig.tight_layout(rect=(0, 0.8 / height, 1, 1))
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


# -- main ----------------------------------------------------------------------------------
def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--matrix", type=Path, default=HERE / "matrix.yaml")
    p.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "quality")
    p.add_argument("--figures", type=Path, help="where the plot goes (default: <out>/..; figures/)")
    p.add_argument("--datasets", help="comma-separated subset of the matrix's datasets")
    p.add_argument("--methods", help="comma-separated subset of the methods")
    p.add_argument("--seeds", help="comma-separated seeds instead of the matrix's")
    p.add_argument("--cpus", type=int, default=2, help="CPUs for each sweep's private Ray instance")
    p.add_argument("--parallel", type=int, default=1, help="sweeps at once (each with --cpus)")
    p.add_argument("--report-only", action="store_true", help="only read the stored trials and write the report")
    p.add_argument("--commit", action="store_true", help="git-commit each trial's record as it is stored")
    p.add_argument("--smoke", action="store_true", help="a seconds-long run on the 8x8 digits (CI)")
    args = p.parse_args()

    if args.smoke:
        matrix, extra = SMOKE_MATRIX, SMOKE_MATRIX["extra"]
    else:
        matrix, extra = yaml.safe_load(args.matrix.read_text()), []
        base = args.matrix.resolve().parent
        for entry in matrix["datasets"].values():
            entry["methods"] = {m: ({**spec, "config": str((base / spec["config"]).resolve())} if isinstance(spec, dict)
                                    else str((base / spec).resolve())) for m, spec in entry["methods"].items()}
    report_matrix = copy.deepcopy(matrix)  # the report always spans every stored trial the matrix asks for
    if args.datasets:
        keep = args.datasets.split(",")
        matrix["datasets"] = {d: e for d, e in matrix["datasets"].items() if d in keep}
    if args.methods:
        keep = args.methods.split(",")
        for entry in matrix["datasets"].values():
            entry["methods"] = {m: path for m, path in entry["methods"].items() if m in keep}
    if args.seeds:  # replaces the seeds of every level
        matrix["seeds"] = [int(s) for s in args.seeds.split(",")]
        for entry in matrix["datasets"].values():
            entry.pop("seeds", None)
            entry["methods"] = {m: method_config(spec) for m, spec in entry["methods"].items()}
        report_matrix = matrix  # an ad-hoc seed list reports those seeds

    out = args.out.resolve()
    failed = []
    if not args.report_only:
        pairs = [Pair(out, d, m, e, wanted_seeds(matrix, e, spec), args.commit)
                 for d, e in matrix["datasets"].items() for m, spec in e["methods"].items()]
        todo = []
        for pair in pairs:
            missing = pair.missing()
            if not missing:
                print(f"{pair.name}: ok (every seed stored)", flush=True)
                continue
            todo.append((pair, sweep_file(out, pair.dataset, pair.method, matrix, pair.entry,
                                          method_config(pair.entry["methods"][pair.method]), extra, missing)))
        with concurrent.futures.ThreadPoolExecutor(max_workers=args.parallel) as pool:
            for name, code, tail in pool.map(lambda job: job[0].run(job[1], args.cpus), todo):
                print(f"{name}: {'ok' if code == 0 else f'FAILED (exit {code})'}", flush=True)
                if code != 0:
                    failed.append(name)
                    print(tail, file=sys.stderr)

    records = collect(out, report_matrix)
    rows = aggregate(records)
    out.mkdir(parents=True, exist_ok=True)
    (out / "quality.json").write_text(json.dumps({"machine": machine_info(), "seeds": report_matrix["seeds"],
                                                  "records": records}, indent=1))
    with open(out / "quality.csv", "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=["dataset", "method", "factor", "metric", "mean", "std", "n",
                                                "by_nmi_only"])
        writer.writeheader()
        writer.writerows(rows)
    (out / "quality.md").write_text(markdown(report_matrix, records, rows))
    plot(report_matrix, records, (args.figures or out.parent / "figures") / "quality_accuracy_over_time.png")
    print((out / "quality.md").read_text())
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
