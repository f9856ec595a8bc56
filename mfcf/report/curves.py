"""Training curves from ``metrics.csv``: every logged term, per facet where it has one.

Columns are grouped by name, never by a list of known names, so any model's terms appear:

* ``train/<term>`` and ``val/<term>`` -> one panel per term (train solid, validation dashed);
* ``train/<term>/<j>`` -> one panel per term with a line per facet j (ELBO terms such as
  ``kl_z/0`` and the schedule's coefficients such as ``alpha_dec/0`` alike);
* ``val/facet<j>/<factor>/<metric>`` (``trainer.score_every_epochs``) -> one panel per
  clustering metric with a line per (facet, factor);
* ``lr`` -> its own panel.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence

import numpy as np

from .context import ReportContext
from .plotting import MAX_WIDTH, plt, save
from .section import Figure, Section

_SPLITS = ("train", "val")
_FACET = re.compile(r"^(?P<term>.+)/(?P<facet>\d+)$")
_SCORE = re.compile(r"^facet(?P<facet>\d+)/(?P<factor>[^/]+)/(?P<metric>[^/]+)$")
N_COLS = 3


def _float(value: str | None) -> float:
    try:
        return float(value) if value not in (None, "") else math.nan
    except ValueError:
        return math.nan


Member = tuple[str, str, "int | None", "str | None"]  # column, split, facet, line label (None: derived)


def curve_panels(columns: Sequence[str]) -> list[tuple[str, list[Member]]]:
    """Group metrics columns into panels: ``[(title, [(column, split, facet, label), ...]), ...]``.

    Scalar terms come first, then per-facet terms, then validation clustering scores, then
    ``lr``, each in first-seen order.
    """
    scalars: dict[str, list] = {}
    per_facet: dict[str, list] = {}
    scores: dict[str, list] = {}
    for col in columns:
        split, _, name = col.partition("/")
        if split not in _SPLITS or not name:
            continue
        score, m = _SCORE.match(name), _FACET.match(name)
        if score:
            scores.setdefault(f"{score['metric']} ({'validation' if split == 'val' else split})", []).append(
                (col, split, int(score["facet"]), f"facet {score['facet']}: {score['factor']}"))
        elif m:
            per_facet.setdefault(f"{m['term']} per facet", []).append((col, split, int(m["facet"]), None))
        else:
            scalars.setdefault(name, []).append((col, split, None, None))
    panels = list(scalars.items()) + list(per_facet.items()) + list(scores.items())
    if "lr" in columns:
        panels.append(("learning rate (lr)", [("lr", "train", None, None)]))
    return panels


def _limits(ax: plt.Axes, series: Sequence[np.ndarray]) -> None:
    """Zoom past an off-scale first epoch (a fresh model's loss dwarfs the rest) and say so;
    give a constant panel a range around its value instead of matplotlib's offset ticks."""
    values = np.concatenate(series) if series else np.array([])
    values = values[np.isfinite(values)]
    if values.size and values.min() == values.max():
        v = float(values[0])
        ax.set_ylim(*((0.0, 2 * v) if v > 0 else (2 * v, 0.0) if v < 0 else (-1.0, 1.0)))
        ax.text(0.98, 0.04, f"constant {v:.4g}", transform=ax.transAxes, ha="right", va="bottom", fontsize=8,
                color="dimgray")
        return
    if not series or min(len(s) for s in series) < 4:
        return
    later = np.concatenate([s[1:] for s in series])
    first = np.array([s[0] for s in series])
    later, first = later[np.isfinite(later)], first[np.isfinite(first)]
    if not later.size or not first.size:
        return
    lo, hi = later.min(), later.max()
    span = max(hi - lo, 1e-12 * max(1.0, abs(hi)))
    if first.max() > hi + 3 * span or first.min() < lo - 3 * span:
        ax.set_ylim(lo - 0.15 * span, hi + 0.15 * span)
        ax.text(0.98, 0.95, "epoch 0 off scale", transform=ax.transAxes, ha="right", va="top", fontsize=8,
                color="dimgray")


def curves_figure(rows: Sequence[Mapping[str, str]], title: str) -> plt.Figure | None:
    """A grid of panels (see :func:`curve_panels`) from metrics rows; None if nothing to plot."""
    columns = list(dict.fromkeys(c for r in rows for c in r))
    panels = curve_panels(columns)
    if not panels:
        return None
    epochs = np.array([_float(r.get("epoch")) for r in rows])
    epochs = np.where(np.isfinite(epochs), epochs, np.arange(len(rows)))
    n_rows = math.ceil(len(panels) / N_COLS)
    fig, axes = plt.subplots(n_rows, N_COLS, figsize=(MAX_WIDTH, 2.9 * n_rows + 0.6), squeeze=False)
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    marker = "o" if len(rows) <= 30 else None
    for ax, (name, members) in zip(axes.flat, panels):
        series = []
        for i, (col, split, facet, label) in enumerate(members):
            y = np.array([_float(r.get(col)) for r in rows])
            ok = np.isfinite(y)
            if not ok.any():
                continue
            if label is None:
                label = (f"facet {facet} " if facet is not None else "") + ("validation" if split == "val" else split)
                colour = colours[(facet or 0) % len(colours)] if facet is not None else colours[_SPLITS.index(split)]
            else:  # one line per (facet, factor) score
                colour = colours[i % len(colours)]
            ax.plot(epochs[ok], y[ok], linestyle="--" if split == "val" else "-", marker=marker, markersize=3,
                    color=colour, label=label if name != "learning rate (lr)" else None)
            series.append(y[ok])
        _limits(ax, series)
        ax.set_title(name)
        ax.set_xlabel("epoch")
        ax.set_ylabel("score" if any(m[3] for m in members) else "epoch mean")
        ax.grid(alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=7, ncol=2 if len(members) > 4 else 1)
        ax.ticklabel_format(axis="y", useOffset=False)
    for ax in list(axes.flat)[len(panels):]:
        ax.set_visible(False)
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def curves_section(ctx: ReportContext) -> Section:
    """Every train/val term of metrics.csv against the epoch."""
    title = "Training curves"
    rows = ctx.run.read_metrics()
    fig = curves_figure(rows, f"Logged per-epoch means ({ctx.run.path.name})") if rows else None
    if fig is None:
        columns = ", ".join(dict.fromkeys(c for r in rows for c in r)) or "none"
        return Section.skip(title, f"metrics.csv logs no train/ or val/ terms (its columns: {columns}); a model "
                                   "fitted without a gradient loop has no curves")
    save(fig, ctx.out / "training_curves.png")
    intro = ("Epoch means of every term the model logs (for the MFCVAE: the loss, the ELBO and its parts, the KL "
             "terms per facet, and the progressive schedule's coefficients alpha_dec, beta_z, beta_c per facet), "
             "solid on the training split, dashed on the validation split (eval mode, with the coefficients of "
             "the epoch's first step), and the learning rate.")
    return Section(title, intro, [Figure("training_curves.png", "Training curves from metrics.csv.")])
