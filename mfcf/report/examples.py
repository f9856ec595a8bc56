"""The top-N most confident examples of every cluster, one grid per facet (MFCVAE.md §7.3)."""

from __future__ import annotations

import numpy as np

from .context import ClusterFacts, ReportContext
from .plotting import is_image_shape, mosaic, plt, save, show_mosaic, tile_inches, to_display
from .section import Figure, Section


def not_images(ctx: ReportContext) -> str | None:
    """The reason image sections do not apply, or None when the data are (C, H, W) pictures."""
    shape = tuple(ctx.data.images.shape[1:])
    return None if is_image_shape(shape) else f"the data are not 1- or 3-channel images (example shape {shape})"


def cluster_label(ctx: ReportContext, facet: int, facts: ClusterFacts, *, confidence: bool = True) -> str:
    """Row label: cluster id, size, mean confidence, and the matched factor's majority value."""
    text = f"cluster {facts.cluster}  n={facts.size}"
    if confidence:
        text += f"  conf {facts.confidence:.2f}"
    factor = ctx.display_factor(facet)
    if factor is not None:
        values = ctx.labels[factor][facts.members]
        top = np.bincount(values).argmax()
        text += f"\n{factor} {top}: {np.mean(values == top):.0%} of cluster"
    return text


def top_examples_section(ctx: ReportContext) -> Section:
    """Per facet: one row per cluster, its ``n_examples`` most confident examples left to right."""
    title = f"Most confident {ctx.split} examples per cluster"
    reason = not_images(ctx)
    if reason:
        return Section.skip(title, reason)
    n = ctx.options.n_examples
    figures = []
    for j in range(ctx.n_facets):
        shown = ctx.shown_clusters(j)
        rows = [to_display(ctx.images(f.members[:n]), ctx.value_range) for f in shown]
        fig, ax = plt.subplots(figsize=tile_inches(len(rows), n, extra_w=3.2))
        show_mosaic(ax, mosaic(rows, n), len(rows), n, row_labels=[cluster_label(ctx, j, f) for f in shown],
                    col_labels=[str(i + 1) for i in range(n)])
        ax.tick_params(axis="y", labelsize=8)
        ax.set_xlabel("rank by confidence max_c q(c|x) within the cluster (1 = most confident)")
        ax.set_ylabel("cluster")
        ax.set_title(f"{ctx.facet_name(j).capitalize()}: {n} most confident {ctx.split} examples per cluster")
        name = f"top_examples_facet{j}.png"
        save(fig, ctx.out / name)
        figures.append(Figure(name, f"{ctx.facet_name(j).capitalize()}: {ctx.clusters_note(j)}. Row labels give the "
                                    "cluster's size, its mean confidence and the most frequent value of the "
                                    "facet's matched factor among its members."))
    order = "by size (largest first)" if ctx.options.order == "size" else "by mean confidence (§7.3)"
    intro = (f"Each example is assigned to its most probable cluster of each facet, in eval mode (z at the "
             f"posterior mean for the MFCVAE). Clusters are ordered {order}; empty clusters are left out. "
             "Within a row the examples the model is most confident about come first, so a row shows what "
             "the cluster stands for.")
    return Section(title, intro, figures)
