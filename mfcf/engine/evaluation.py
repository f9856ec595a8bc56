"""Score a trained run: every facet's clusters against every labelled factor.

The result of :func:`evaluate_experiment` (also written as ``eval-<split>.json`` by
:func:`evaluate_run`) holds, besides the per-(facet, factor) scores of
:mod:`mfcf.engine.metrics`:

* ``nmi_matrix`` -- ``{"facets": [0, 1], "factors": [...], "values": [[...], ...]}``, the NMI
  of every facet against every factor (rows: facets);
* ``matching`` -- one record per facet, ``{"facet": j, "factor": name | None, <metric>: ...}``:
  the one-to-one Hungarian assignment of facets to factors on that matrix
  (:mod:`mfcf.engine.matching`) with the matched pair's scores; every facet record under
  ``facets`` also names its ``matched_factor``;
* ``selection`` -- which weights were scored and how they were chosen. Nothing here selects on
  the evaluated labels: the run's final weights are scored as they are.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..api import Model
from ..errors import ConfigError, RunDirError
from .batches import DeviceBatches
from .build import Experiment, Resolved, build, resolve
from .checkpoint import WEIGHTS_KEYS, atomic_write_text, load_checkpoint
from .matching import match_facets, nmi_matrix
from .metrics import METRIC_TITLES, METRICS, score
from .rundir import RunDir, damaged


@torch.no_grad()
def _per_facet(method, model: Model, images: torch.Tensor, batch_size: int) -> list[torch.Tensor]:
    """``method(x)`` (one tensor per facet) over ``images`` in batches, in eval mode, concatenated."""
    with model.evaluating():
        chunks = [method(x) for x in DeviceBatches(images, batch_size, shuffle=False).epoch(0)]
    return [torch.cat([c[j] for c in chunks]).cpu() for j in range(len(chunks[0]))]


def assignments(model: Model, images: torch.Tensor, batch_size: int) -> list[np.ndarray]:
    """Hard cluster ids per facet for ``images``, in eval mode (no side effects on the model)."""
    return [a.numpy() for a in _per_facet(model.assign, model, images, batch_size)]


def cluster_probabilities(model: Model, images: torch.Tensor, batch_size: int) -> list[np.ndarray]:
    """q(c_j | x) per facet for ``images``: a list of (N, K_j) float arrays, in eval mode."""
    return [p.float().numpy() for p in _per_facet(model.cluster_probs, model, images, batch_size)]


#: ``selection`` of a result scored by :func:`evaluate_experiment` without further context.
SELECTION_AS_GIVEN = "no model selection: the model was scored as given"


def evaluate_experiment(experiment: Experiment, split: str = "test", *,
                        selection: str = SELECTION_AS_GIVEN) -> dict[str, Any]:
    """Scores of ``experiment.model`` on ``split`` as a JSON-ready dict.

    Keys: ``split``, ``n_examples``, ``metrics``, ``note``, ``selection`` (how the scored
    weights were chosen: pass a sentence, :func:`evaluate_run` does), ``facets`` (per facet:
    ``n_clusters``, ``used_clusters``, ``matched_factor`` and ``factors``: every factor's
    scores), ``nmi_matrix`` and ``matching`` (see the module docstring).
    """
    data = experiment.split(split)
    facets = assignments(experiment.model, data.images, experiment.resolved.data.eval_batch_size)
    labels = {name: y.cpu().numpy() for name, y in data.factors.items()}
    nmi = nmi_matrix(facets, labels)
    matched = match_facets(nmi, list(labels))
    per_facet = [
        {"facet": j, "n_clusters": experiment.resolved.facets[j].n_clusters,
         "used_clusters": int(len(np.unique(pred))), "matched_factor": matched[j],
         "factors": {name: score(y, pred) for name, y in labels.items()}}
        for j, pred in enumerate(facets)
    ]
    return {
        "split": split,
        "n_examples": len(data),
        "metrics": list(METRICS),
        "note": "hungarian_acc is one-to-one accuracy; many_to_one_acc maps each cluster to its majority class; "
                "weighted_acc is the mean over classes of that mapping's per-class accuracy (the paper's weighted "
                "accuracy)",
        "selection": selection,
        "facets": per_facet,
        "nmi_matrix": {"facets": list(range(len(facets))), "factors": list(labels), "values": nmi.tolist()},
        "matching": [{"facet": f["facet"], "factor": f["matched_factor"],
                      **(f["factors"][f["matched_factor"]] if f["matched_factor"] else {})} for f in per_facet],
    }


def resolve_stored(run: RunDir) -> Resolved:
    """The run's ``resolved.yaml``, resolved again; a config that no longer validates is a
    :class:`RunDirError` naming the file (a missing plugin keeps its own error)."""
    try:
        return resolve(run.load_resolved())
    except ConfigError as exc:
        raise damaged(run.resolved, f"it does not hold a config this mfcf accepts ({exc})") from None


def load_trained(run_dir: str | Path) -> tuple[RunDir, Experiment, str]:
    """Rebuild a run's experiment and load its final weights (or the last checkpoint)."""
    run = RunDir.open(run_dir)
    experiment = build(resolve_stored(run))
    if run.final_model.is_file():
        source = run.final_model
    elif run.checkpoint.is_file():
        source = run.checkpoint
    else:
        raise RunDirError(f"run '{run.path}' has no trained weights yet (neither model.pt nor a checkpoint)")
    try:
        experiment.model.load_state_dict(load_checkpoint(source, WEIGHTS_KEYS)["model"])
    except (RuntimeError, KeyError, IndexError, TypeError, ValueError, AttributeError) as exc:
        raise damaged(source, f"its weights do not fit the run's config ({str(exc).splitlines()[0]}); it may "
                              "come from another run") from None
    return run, experiment, source.name


def selection_note(run: RunDir, experiment: Experiment, weights: str, split: str) -> str:
    """How the weights of a run directory were chosen, in one sentence for reports."""
    if weights != run.final_model.name:
        chosen = f"last checkpoint ({weights}): training has not completed"
    elif experiment.model.trains_by_gradient and experiment.trainer.stop_after_epochs:
        chosen = (f"final weights ({weights}) after {experiment.trainer.stop_after_epochs} of the config's "
                  f"{experiment.trainer.epochs} training epochs (trainer.stop_after_epochs: a shortened run)")
    elif experiment.model.trains_by_gradient:
        chosen = f"final weights ({weights}) after all {experiment.trainer.epochs} training epochs"
    else:
        chosen = f"final weights ({weights}) of a model fitted without a gradient loop"
    return (f"{chosen}; no checkpoint, seed or hyperparameter was selected on any score, and the "
            f"{split} labels were used only to compute these scores")


def evaluate_run(run_dir: str | Path, split: str = "test") -> dict[str, Any]:
    """Evaluate a run directory on ``split`` and write ``eval-<split>.json`` into it."""
    run, experiment, source = load_trained(run_dir)
    result = {"run": str(run.path), "weights": source,
              **evaluate_experiment(experiment, split, selection=selection_note(run, experiment, source, split))}
    atomic_write_text(run.evaluation(split), json.dumps(result, indent=2))
    return result


def format_table(result: dict[str, Any]) -> str:
    """A facet x factor table, one row per (facet, factor), then one line per facet naming its
    matched factor (:func:`format_matching`) and the ``selection`` note."""
    header = ["facet", "K", "used", "factor", *(METRIC_TITLES[m] for m in METRICS)]
    rows = [[str(f["facet"]), str(f["n_clusters"]), str(f["used_clusters"]), name,
             *(f"{s[m]:.4f}" for m in METRICS)]
            for f in result["facets"] for name, s in f["factors"].items()]
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(header)]
    line = lambda cells: "  ".join(c.rjust(w) if i not in (3,) else c.ljust(w) for i, (c, w) in enumerate(zip(cells, widths)))
    title = f"split: {result['split']} ({result['n_examples']} examples)"
    selection = [f"model selection: {result['selection']}"] if result.get("selection") else []
    return "\n".join([title, line(header), line(["-" * w for w in widths]), *map(line, rows),
                      *format_matching(result), *selection])


def format_matching(result: dict[str, Any]) -> list[str]:
    """One line per facet naming the factor it was matched to, e.g.
    ``facet 0 clusters floor_hue (Hungarian acc 0.99, many-to-one acc 0.99, NMI 0.97)``.

    Empty for results written before the matching existed (no ``matching`` key).
    """
    lines = []
    for m in result.get("matching", ()):
        if m["factor"] is None:
            lines.append(f"facet {m['facet']} matches no factor (more facets than labelled factors)")
        else:
            lines.append(f"facet {m['facet']} clusters {m['factor']} (Hungarian acc {m['hungarian_acc']:.2f}, "
                         f"many-to-one acc {m['many_to_one_acc']:.2f}, NMI {m['nmi']:.2f}, ARI {m['ari']:.2f})")
    return lines
