"""Sections about the numbers: the score table, the facet x factor NMI heat map, and one
confusion matrix per facet against its matched factor."""

from __future__ import annotations

import html

import numpy as np

from ..engine.evaluation import format_matching
from ..engine.matching import contingency, matched_cluster_order
from ..engine.metrics import METRIC_TITLES as TITLES
from ..engine.metrics import METRICS
from .context import ReportContext
from .html import table
from .plotting import annotated_heatmap, plt, save
from .section import Figure, Section

METRIC_TITLES = {**TITLES, "many_to_one_acc": "many-to-one acc (majority)"}
NO_FACTORS = "the {split} split has no labelled factors, so there is nothing to score the clusters against"


def scores_section(ctx: ReportContext) -> Section:
    """Every (facet, factor) score, the matched pairs in bold, the matching and selection notes."""
    title = "Scores"
    result = ctx.evaluation
    if not ctx.factors:
        return Section.skip(title, NO_FACTORS.format(split=ctx.split))
    header = ["facet", "K", "used", "factor", *(METRIC_TITLES[m] for m in METRICS)]
    rows, bold = [], set()
    for f in result["facets"]:
        for name, s in f["factors"].items():
            if name == f.get("matched_factor"):
                bold.add(len(rows))
            rows.append([str(f["facet"]), str(f["n_clusters"]), str(f["used_clusters"]), name,
                         *(f"{s[m]:.3f}" for m in METRICS)])
    matching = "".join(f"<li>{html.escape(line)}</li>" for line in format_matching(result))
    intro = (f"Clusters of every facet scored against every labelled factor on the {ctx.split} split "
             f"({result['n_examples']} examples). Hungarian accuracy maps clusters to classes one-to-one "
             "(surplus clusters, or surplus classes when K is smaller, count as errors); many-to-one accuracy "
             "maps each cluster to its majority class, as the MFCVAE paper reports it, and grows with K; "
             "weighted accuracy is that mapping's accuracy averaged over the true classes (the paper's weighted "
             "accuracy for SVHN and 3DShapes). Bold rows: the facet-factor pairs of the one-to-one matching on "
             "the NMI matrix below.")
    fragment = (table(header, rows, bold_rows=bold) + f"<ul class='matching'>{matching}</ul>"
                + f"<p class='note'><b>Model selection:</b> {html.escape(result.get('selection', 'not recorded'))}</p>")
    return Section(title, intro, html=fragment)


def nmi_section(ctx: ReportContext) -> Section:
    """The facet x factor NMI matrix as an annotated heat map, matched cells boxed."""
    title = "Which facet found which factor"
    if not ctx.factors:
        return Section.skip(title, NO_FACTORS.format(split=ctx.split))
    nmi = np.asarray(ctx.evaluation["nmi_matrix"]["values"], dtype=float)
    boxes = [(j, ctx.factors.index(f)) for j in range(ctx.n_facets) if (f := ctx.matched_factor(j))]
    w = min(12.0, 2.8 + 1.1 * len(ctx.factors))
    fig, ax = plt.subplots(figsize=(max(w, 5.0), 1.6 + 0.6 * ctx.n_facets))
    annotated_heatmap(ax, nmi, row_labels=[f"facet {j}" for j in range(ctx.n_facets)], col_labels=ctx.factors,
                      vmin=0.0, vmax=1.0, colorbar_label="NMI", boxes=boxes)
    ax.set_xlabel("labelled factor")
    ax.set_ylabel("facet")
    ax.set_title(f"NMI between each facet's clusters and each factor ({ctx.split} split)\n"
                 "red boxes: one-to-one facet-factor matching (Hungarian, maximum total NMI)")
    save(fig, ctx.out / "nmi_matrix.png")
    intro = ("Normalised mutual information (0: independent, 1: the clustering determines the factor and vice "
             "versa). A facet that clusters one factor shows a high value in that column and low values in the "
             "others.")
    return Section(title, intro, [Figure("nmi_matrix.png", "Facet x factor NMI; boxes mark the matching.")])


def confusion_section(ctx: ReportContext) -> Section:
    """Per facet: counts of (factor value, cluster) against the matched factor."""
    title = "Confusion matrices"
    if not ctx.factors:
        return Section.skip(title, NO_FACTORS.format(split=ctx.split))
    figures = []
    for j in range(ctx.n_facets):
        factor = ctx.display_factor(j)
        y, pred = ctx.labels[factor], ctx.probs[j].argmax(axis=1)
        n_classes = ctx.model.info.factors.get(factor) if ctx.model.info is not None else None
        counts = contingency(y, pred, n_classes)
        order, matches = matched_cluster_order(counts)
        used = [k for k in order if counts[:, k].sum() > 0]  # empty clusters add nothing but width
        shown = counts[:, used]
        boxes = [(c, used.index(k)) for c, k in matches.items() if k in used]
        n_rows, n_cols = shown.shape
        fig, ax = plt.subplots(figsize=(min(13.0, 2.5 + 0.55 * n_cols), min(11.0, 1.8 + 0.45 * n_rows)))
        annotated_heatmap(ax, shown, row_labels=[str(v) for v in range(n_rows)],
                          col_labels=[str(k) for k in used], fmt="{:.0f}", vmin=0, cmap="Blues",
                          colorbar_label=f"{ctx.split} examples", boxes=boxes, annotate=n_cols <= 30 and n_rows <= 30)
        s = ctx.evaluation["facets"][j]["factors"][factor]
        how = "matched factor" if factor == ctx.matched_factor(j) else "highest-NMI factor; no factor left to match"
        ax.set_title(f"Facet {j} vs {factor} ({how})\nHungarian acc (1:1) {s['hungarian_acc']:.3f}   "
                     f"many-to-one acc {s['many_to_one_acc']:.3f}   NMI {s['nmi']:.3f}   ARI {s['ari']:.3f}")
        ax.set_xlabel(f"facet {j} cluster id (one-to-one matches first, then the other clusters by size)")
        ax.set_ylabel(f"true {factor}")
        name = f"confusion_facet{j}.png"
        save(fig, ctx.out / name)
        figures.append(Figure(name, f"Facet {j} clusters against {factor}: counts; red boxes are the one-to-one "
                                    "(Hungarian) pairs, a column's largest count is its many-to-one class."))
    intro = ("Rows: true values of the factor; columns: non-empty clusters of the facet. With one-to-one "
             "matches on the diagonal, off-diagonal mass shows which values a facet confuses or splits.")
    return Section(title, intro, figures)
