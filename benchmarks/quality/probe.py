"""What does each facet encode? Linear probes and cluster NMI of a trained run, per factor.

    python benchmarks/quality/probe.py RUN_DIR
    python benchmarks/quality/probe.py RUN_DIR --labels shape,floor_hue,scale,orientation --json probe.json

For every facet j and every factor f of the data (``--labels`` scores factors the run was not
labelled with, e.g. the nuisance factors of the shapes sets), it reports

* ``probe`` -- accuracy on the *validation* split of a multinomial logistic regression fitted on
  the *training* split's posterior means of facet j to predict f: how much of f facet j's latent
  holds in linearly readable form, whatever its clusters do;
* ``nmi`` -- NMI between facet j's clusters and f on the validation split: what the clusters
  follow;
* ``used`` -- how many of facet j's clusters the validation split uses.

A facet whose probe is high for the factor it should find but whose clusters follow another
factor has the information and the wrong mixture; a facet with a low probe never learned it.
Test labels are not read. Needs a run with ``data.val_fraction > 0``.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import normalized_mutual_info_score
from sklearn.preprocessing import StandardScaler

from mfcf.engine.build import build
from mfcf.engine.checkpoint import WEIGHTS_KEYS, load_checkpoint
from mfcf.engine.evaluation import _per_facet, assignments, resolve_stored
from mfcf.engine.rundir import RunDir


def posterior_means(experiment, split) -> list[np.ndarray]:
    model = experiment.model
    batch = experiment.resolved.data.eval_batch_size
    return [m.float().numpy() for m in _per_facet(model.posterior_means, model, split.images, batch)]


def probe(run_dir: Path, labels: list[str] | None) -> dict:
    run = RunDir.open(run_dir)
    resolved = resolve_stored(run)
    config = dict(resolved.config)
    if labels:
        config["data"] = {**config["data"], "labels": labels}
    experiment = build(config)
    weights = run.final_model if run.final_model.is_file() else run.checkpoint
    experiment.model.load_state_dict(load_checkpoint(weights, WEIGHTS_KEYS)["model"])
    if experiment.val is None:
        raise SystemExit(f"{run_dir}: the run has no validation split (data.val_fraction is 0)")
    train, val = posterior_means(experiment, experiment.train), posterior_means(experiment, experiment.val)
    clusters = assignments(experiment.model, experiment.val.images, experiment.resolved.data.eval_batch_size)
    rows = []
    for j, (z_train, z_val) in enumerate(zip(train, val)):
        scaler = StandardScaler().fit(z_train)
        for factor in experiment.val.factors:
            y_train = experiment.train.factors[factor].numpy()
            y_val = experiment.val.factors[factor].numpy()
            fit = LogisticRegression(max_iter=3000).fit(scaler.transform(z_train), y_train)
            rows.append({"facet": j, "factor": factor,
                         "probe": float(fit.score(scaler.transform(z_val), y_val)),
                         "nmi": float(normalized_mutual_info_score(y_val, clusters[j])),
                         "used": int(len(np.unique(clusters[j]))),
                         "n_clusters": experiment.resolved.facets[j].n_clusters})
    return {"run": str(run_dir), "rows": rows}


def table(result: dict) -> str:
    factors = list(dict.fromkeys(r["factor"] for r in result["rows"]))
    lines = ["| facet | used / K | " + " | ".join(f"{f}: probe / NMI" for f in factors) + " |",
             "|---" * (len(factors) + 2) + "|"]
    for j in sorted({r["facet"] for r in result["rows"]}):
        mine = {r["factor"]: r for r in result["rows"] if r["facet"] == j}
        first = next(iter(mine.values()))
        cells = [f"{mine[f]['probe']:.2f} / {mine[f]['nmi']:.2f}" for f in factors]
        lines.append(f"| {j} | {first['used']} / {first['n_clusters']} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("run_dir", type=Path)
    p.add_argument("--labels", help="comma-separated factors to score (default: the run's labels)")
    p.add_argument("--json", type=Path, help="also write the rows here")
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    result = probe(args.run_dir, args.labels.split(",") if args.labels else None)
    print(table(result))
    if args.json:
        args.json.write_text(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
