"""Assemble ``mfcf report``: load the run, evaluate it once, run every section, write the page."""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..engine.checkpoint import atomic_write_text
from ..engine.evaluation import cluster_probabilities, evaluate_experiment, load_trained, selection_note
from ..errors import RunDirError
from .context import ReportContext, ReportOptions
from .curves import curves_section
from .examples import top_examples_section
from .html import render
from .sampling import generation_section, swap_section
from .scores import confusion_section, nmi_section, scores_section
from .section import Section, SectionBuilder

#: The report's sections, in page order. Each decides for itself whether it applies.
SECTIONS: tuple[SectionBuilder, ...] = (
    scores_section, nmi_section, confusion_section, top_examples_section, generation_section, swap_section,
    curves_section,
)


def default_out_dir(run_dir: str | Path, split: str) -> Path:
    """``RUN_DIR/report-<split>``."""
    return Path(run_dir) / f"report-{split}"


def load_context(run_dir: str | Path, split: str, out: Path, options: ReportOptions) -> ReportContext:
    """Load the run's weights, score it on ``split`` and compute q(c|x) once for every section."""
    run, experiment, weights = load_trained(run_dir)
    run.read_status()  # damaged files fail here, before anything is written
    run.read_metrics()
    data = experiment.split(split)
    evaluation = {"run": str(run.path), "weights": weights,
                  **evaluate_experiment(experiment, split, selection=selection_note(run, experiment, weights, split))}
    probs = cluster_probabilities(experiment.model, data.images, experiment.resolved.data.eval_batch_size)
    return ReportContext(run, experiment, weights, split, data, evaluation, probs, out, options)


def _facet_text(j: int, facet: dict[str, Any]) -> str:
    text = f"{j}: K={facet['n_clusters']}, dim {facet['latent_dim']}"
    prior = facet.get("prior")
    if prior:
        text += f", prior {prior['name']}" + (f"/{prior['covariance']}" if prior.get("covariance") else "")
    return text


def _epochs_text(trainer: Any) -> str:
    stop = trainer.stop_after_epochs
    return f"{stop} of {trainer.epochs} epochs (stopped early on purpose)" if stop else f"{trainer.epochs} epochs"


def _facts(ctx: ReportContext) -> list[tuple[str, str]]:
    """The run-facts table at the top of the page."""
    cfg = ctx.experiment.config
    status = ctx.run.read_status()
    facets = "; ".join(_facet_text(j, f) for j, f in enumerate(cfg["facets"]))
    parts = ", ".join(f"{p} {cfg[p]['name']}" for p in ("encoder", "decoder", "likelihood", "elbo", "schedule")
                      if isinstance(cfg.get(p), dict))
    o = ctx.options
    return [
        ("run directory", str(ctx.run.path)),
        ("model", cfg["model"]["name"] + (f" ({parts})" if parts else "")),
        ("data", f"{cfg['data']['name']}, {ctx.split} split: {len(ctx.data)} examples, factors: "
                 f"{', '.join(ctx.factors) or 'none'}"),
        ("facets", facets),
        ("training", f"{status.get('status', 'unknown')}, " + (_epochs_text(ctx.experiment.trainer)
                     if ctx.model.trains_by_gradient else "fitted without a gradient loop")
                     + f", seed {ctx.experiment.trainer.seed}, device {status.get('device', '?')}"),
        ("weights", ctx.weights),
        ("report options", f"cluster order {o.order}, {o.n_examples} per row, at most {o.max_clusters} clusters, "
                           f"sampling temperature {o.temperature:g} (on the std), sampler seed {o.seed}"),
    ]


def build_report(run_dir: str | Path, split: str = "test", out: str | Path | None = None,
                 options: ReportOptions | None = None, *,
                 sections: Sequence[SectionBuilder] = SECTIONS) -> tuple[Path, list[Section]]:
    """Write the visual report of a trained run; return ``(path of report.html, sections)``.

    Into ``out`` (default ``RUN_DIR/report-<split>``) go one PNG per figure, ``report.html``
    (every figure embedded, so the file stands alone; each also links its PNG) and
    ``evaluation.json`` (the scores of :func:`mfcf.engine.evaluation.evaluate_experiment` plus
    each section's figures or the reason it was skipped). The run directory itself is not
    modified. Example::

        html, sections = build_report("runs/mfcvae-shapes-20260101-120000")
        for s in sections:
            print(s.title, s.skipped or [f.file for f in s.figures])
    """
    out = Path(out) if out is not None else default_out_dir(run_dir, split)
    started = time.perf_counter()
    ctx = load_context(run_dir, split, out, options or ReportOptions())  # checks the run before writing
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise RunDirError(f"cannot create the report folder '{out}' ({exc.strerror or exc}); pass --out a "
                          "writable folder") from None
    built = [section(ctx) for section in sections]
    page = render(out, f"mfcf report: {ctx.run.path.name} ({split} split)", _facts(ctx), built)
    atomic_write_text(out / "report.html", page)
    summary: dict[str, Any] = {
        **ctx.evaluation,
        "report": {"options": dataclasses.asdict(ctx.options),
                   "seconds": round(time.perf_counter() - started, 2),
                   "sections": [{"title": s.title, "skipped": s.skipped, "figures": [f.file for f in s.figures]}
                                for s in built]},
    }
    atomic_write_text(out / "evaluation.json", json.dumps(summary, indent=2))
    return out / "report.html", built
