"""Score a trained run: every facet's clusters against every labelled factor."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..api import Model
from ..errors import RunDirError
from .batches import DeviceBatches
from .build import Experiment, build, resolve
from .checkpoint import atomic_write_text, load_checkpoint
from .metrics import METRICS, score
from .rundir import RunDir


@torch.no_grad()
def assignments(model: Model, images: torch.Tensor, batch_size: int) -> list[np.ndarray]:
    """Hard cluster ids per facet for ``images``, in eval mode (no side effects on the model)."""
    was_training = model.training
    model.eval()
    chunks = [model.assign(x) for x in DeviceBatches(images, batch_size, shuffle=False).epoch(0)]
    model.train(was_training)
    return [torch.cat([c[j] for c in chunks]).cpu().numpy() for j in range(len(chunks[0]))]


def evaluate_experiment(experiment: Experiment, split: str = "test") -> dict[str, Any]:
    """Scores of ``experiment.model`` on ``split`` as a JSON-ready dict."""
    data = experiment.split(split)
    facets = assignments(experiment.model, data.images, experiment.resolved.data.eval_batch_size)
    labels = {name: y.cpu().numpy() for name, y in data.factors.items()}
    return {
        "split": split,
        "n_examples": len(data),
        "metrics": list(METRICS),
        "note": "hungarian_acc is one-to-one accuracy; many_to_one_acc maps each cluster to its majority class",
        "facets": [
            {"facet": j, "n_clusters": experiment.resolved.facets[j].n_clusters,
             "used_clusters": int(len(np.unique(pred))),
             "factors": {name: score(y, pred) for name, y in labels.items()}}
            for j, pred in enumerate(facets)
        ],
    }


def load_trained(run_dir: str | Path) -> tuple[RunDir, Experiment, str]:
    """Rebuild a run's experiment and load its final weights (or the last checkpoint)."""
    run = RunDir.open(run_dir)
    experiment = build(resolve(run.load_resolved()))
    if run.final_model.is_file():
        source = run.final_model
    elif run.checkpoint.is_file():
        source = run.checkpoint
    else:
        raise RunDirError(f"run '{run.path}' has no trained weights yet (neither model.pt nor a checkpoint)")
    experiment.model.load_state_dict(load_checkpoint(source)["model"])
    return run, experiment, source.name


def evaluate_run(run_dir: str | Path, split: str = "test") -> dict[str, Any]:
    """Evaluate a run directory on ``split`` and write ``eval-<split>.json`` into it."""
    run, experiment, source = load_trained(run_dir)
    result = {"run": str(run.path), "weights": source, **evaluate_experiment(experiment, split)}
    atomic_write_text(run.evaluation(split), json.dumps(result, indent=2))
    return result


def format_table(result: dict[str, Any]) -> str:
    """A facet x factor table, one row per (facet, factor)."""
    header = ["facet", "K", "used", "factor", "Hungarian acc (1:1)", "many-to-one acc", "NMI", "ARI"]
    rows = [[str(f["facet"]), str(f["n_clusters"]), str(f["used_clusters"]), name,
             *(f"{s[m]:.4f}" for m in METRICS)]
            for f in result["facets"] for name, s in f["factors"].items()]
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(header)]
    line = lambda cells: "  ".join(c.rjust(w) if i not in (3,) else c.ljust(w) for i, (c, w) in enumerate(zip(cells, widths)))
    title = f"split: {result['split']} ({result['n_examples']} examples)"
    return "\n".join([title, line(header), line(["-" * w for w in widths]), *map(line, rows)])
