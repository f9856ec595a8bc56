"""What a generative model can draw: samples per cluster (MFCVAE.md §7.4) and facet swaps
(§7.5, for any number of facets). Models are asked through the optional protocols of
:mod:`mfcf.api.generative`; a model without them gets a section that says so."""

from __future__ import annotations

import numpy as np
import torch

from ..api.generative import ClusterSampler, FacetSwapper
from .context import ReportContext
from .examples import cluster_label, not_images
from .plotting import mosaic, plt, save, show_mosaic, tile_inches, to_display
from .section import Figure, Section


def _generator(ctx: ReportContext) -> torch.Generator:
    return torch.Generator(device=ctx.experiment.device).manual_seed(ctx.options.seed)


def generation_section(ctx: ReportContext) -> Section:
    """Per facet: ``n_examples`` samples from each non-empty cluster, other facets held fixed."""
    title = "Samples from each cluster"
    reason = not_images(ctx)
    if not isinstance(ctx.model, ClusterSampler):
        reason = (f"model '{type(ctx.model).__name__}' cannot sample from a cluster (it has no decoder, or no "
                  "`generate(facet, cluster, n, temperature=..., generator=...)` method; see mfcf.api.generative)")
    if reason is not None:
        return Section.skip(title, reason)
    n, tau = ctx.options.n_examples, ctx.options.temperature
    figures = []
    for j in range(ctx.n_facets):
        shown = ctx.shown_clusters(j)
        # the same seed for every row: the MFCVAE sampler then draws the other facets identically in
        # every row (its random numbers do not depend on the cluster), so rows differ only in facet j
        rows = [to_display(ctx.model.generate(j, f.cluster, n, temperature=tau, generator=_generator(ctx)),
                           ctx.value_range) for f in shown]
        fig, ax = plt.subplots(figsize=tile_inches(len(rows), n, extra_w=3.2))
        show_mosaic(ax, mosaic(rows, n), len(rows), n,
                    row_labels=[cluster_label(ctx, j, f, confidence=False) for f in shown],
                    col_labels=[str(i + 1) for i in range(n)])
        ax.tick_params(axis="y", labelsize=8)
        ax.set_xlabel(f"sample (z_{j} ~ p(z_{j} | cluster), std x temperature {tau:g})")
        ax.set_ylabel(f"facet {j} cluster")
        others = "other facets held at one prior draw" if ctx.n_facets > 1 else "single facet"
        ax.set_title(f"{ctx.facet_name(j).capitalize()}: {n} samples per cluster ({others})")
        name = f"generated_facet{j}.png"
        save(fig, ctx.out / name)
        figures.append(Figure(name, f"{ctx.facet_name(j).capitalize()}: decoded samples; {ctx.clusters_note(j)}."))
    intro = (f"For facet j and cluster c, z_j is drawn from p(z_j | c) with its standard deviation multiplied by "
             f"the temperature {tau:g} (the standard deviation, not the variance: MFCVAE.md §9 D1); every other "
             "facet k is held at one draw c_k ~ p(c_k), z_k ~ p(z_k | c_k) shared by a row. Every row restarts the "
             f"sampler with seed {ctx.options.seed}; for a sampler whose random numbers do not depend on the "
             "cluster (the MFCVAE's) that is the same draw in every row, so rows differ only in facet j. The "
             "images are the decoder's mean. Rows follow the order of the example grids; the row label repeats "
             f"the cluster's {ctx.split}-set size and majority value.")
    return Section(title, intro, figures)


def _pairs(ctx: ReportContext, facet: int) -> tuple[np.ndarray, np.ndarray, str]:
    """Indices (a, b) of input pairs for swapping facet ``facet``, and how they were chosen.

    a is the most confident example of the i-th cluster in report order, b one of the next
    cluster, preferring a b whose other facets' clusters all differ from a's so the swap has
    something to show. A facet with a single non-empty cluster gets seeded random pairs.
    """
    clusters = ctx.clusters(facet)
    n = ctx.options.n_pairs
    if len(clusters) < 2:
        perm = np.random.default_rng(ctx.options.seed).permutation(len(ctx.data))
        n = min(n, len(perm) // 2)
        return perm[:n], perm[n:2 * n], (f"facet {facet} has a single non-empty cluster on this split, so the pairs "
                                         f"are drawn at random (seed {ctx.options.seed})")
    assigned = np.stack([p.argmax(axis=1) for p in ctx.probs], axis=1)  # (N, J)
    others = [k for k in range(ctx.n_facets) if k != facet]
    a_idx, b_idx = [], []
    for i in range(min(n, len(clusters))):
        a = int(clusters[i].members[0])
        candidates = clusters[(i + 1) % len(clusters)].members
        differs = np.all(assigned[candidates][:, others] != assigned[a, others], axis=1)
        a_idx.append(a)
        b_idx.append(int(candidates[np.argmax(differs)] if differs.any() else candidates[0]))
    return np.array(a_idx), np.array(b_idx), (f"A: the most confident example of a facet-{facet} cluster, B: one of "
                                              "the next cluster (report order)")


def swap_section(ctx: ReportContext) -> Section:
    """Per facet: inputs A and B, their reconstructions, and each decoded with the other's facet-j latent."""
    title = "Compositionality: swapping one facet between inputs"
    reason = not_images(ctx)
    if not isinstance(ctx.model, FacetSwapper):
        reason = (f"model '{type(ctx.model).__name__}' has no decoder to recombine latents with (no "
                  "`posterior_means` / `decode_mean` / `swap_facet`; see mfcf.api.generative)")
    elif ctx.n_facets < 2:
        reason = "the model has a single facet, so there is no other facet to keep while swapping"
    if reason is not None:
        return Section.skip(title, reason)
    figures = []
    vr = ctx.value_range
    for j in range(ctx.n_facets):
        a, b, how = _pairs(ctx, j)
        xa, xb = ctx.images(a), ctx.images(b)
        rec_a = ctx.model.decode_mean(ctx.model.posterior_means(xa))
        rec_b = ctx.model.decode_mean(ctx.model.posterior_means(xb))
        rows = [xa, xb, rec_a, rec_b, ctx.model.swap_facet(xa, xb, j), ctx.model.swap_facet(xb, xa, j)]
        labels = ["input A", "input B", "A reconstructed", "B reconstructed",
                  f"A with B's facet {j}", f"B with A's facet {j}"]
        n = len(a)
        fig, ax = plt.subplots(figsize=tile_inches(len(rows), n, tile=0.9, max_tile=1.1, extra_w=2.0))
        show_mosaic(ax, mosaic([to_display(r, vr) for r in rows], n, pad=2), len(rows), n, row_labels=labels,
                    col_labels=[f"pair {i + 1}" for i in range(n)], pad=2, separators=(2, 4))
        ax.set_title(f"Swapping {ctx.facet_name(j)}'s latent between pairs of {ctx.split} inputs")
        ax.set_xlabel(how)
        name = f"swap_facet{j}.png"
        save(fig, ctx.out / name)
        figures.append(Figure(name, f"Facet {j} swapped ({how}): the last two rows should take facet {j}'s factor "
                                    "from the partner and keep everything else."))
    intro = ("Each input is encoded to the posterior mean of every facet's latent. 'A with B's facet j' decodes "
             "A's latents with facet j's latent replaced by B's. If facet j captures a factor (say floor colour), "
             "the swapped image shows A with B's value of that factor and A's other characteristics. Pairs take "
             "the most confident example of a cluster and one of the next cluster, chosen to differ in the other "
             "facets' clusters where possible (seeded random pairs for a facet with a single non-empty cluster).")
    return Section(title, intro, figures)
