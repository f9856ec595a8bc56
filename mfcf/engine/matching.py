"""Which facet clusters which factor: the facet x factor NMI matrix and a one-to-one matching.

A multi-facet model is never told which facet should find which labelled factor, so the
evaluation has to find out. :func:`nmi_matrix` scores every (facet, factor) pair by normalised
mutual information; :func:`match_facets` then assigns facets to factors one-to-one with the
Hungarian algorithm (``scipy.optimize.linear_sum_assignment``), maximising the summed NMI.
With more facets than factors the surplus facets stay unmatched (``None``); with more factors
than facets the surplus factors do. Example::

    nmi = nmi_matrix([pred_0, pred_1], {"floor_hue": y_hue, "shape": y_shape})
    match_facets(nmi, ["floor_hue", "shape"])      # -> ["floor_hue", "shape"]

The matching uses NMI rather than accuracy because NMI does not grow with the number of
clusters, so a facet with many clusters does not win a factor just by being finer.

For display, :func:`matched_cluster_order` orders a facet's clusters so that the cluster
matched to class 0 comes first, then the one matched to class 1 ... (Hungarian matching of
clusters to classes on the contingency table, as in ``hungarian_acc`` of
:mod:`mfcf.engine.metrics`), followed by the unmatched clusters, largest first. A confusion
matrix drawn in that order has the one-to-one hits on its diagonal.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
from scipy.optimize import linear_sum_assignment
from sklearn.metrics import normalized_mutual_info_score


def nmi_matrix(assignments: Sequence[np.ndarray], labels: Mapping[str, np.ndarray]) -> np.ndarray:
    """NMI of every facet's hard assignments against every factor: a (J, L) float array.

    ``assignments`` holds one (N,) vector of cluster ids per facet; ``labels`` maps each factor
    name to its (N,) vector of values, in the column order of the result.
    """
    return np.array([[float(normalized_mutual_info_score(np.asarray(y), np.asarray(pred)))
                      for y in labels.values()] for pred in assignments], dtype=float).reshape(len(assignments),
                                                                                              len(labels))


def match_facets(nmi: np.ndarray, factors: Sequence[str]) -> list[str | None]:
    """One factor per facet (or ``None``), matched one-to-one to maximise the summed NMI.

    ``nmi`` is the (J, L) matrix of :func:`nmi_matrix`; ``factors`` names its columns. Each
    factor is given to at most one facet. Facets left over when J > L, and every facet when
    there are no factors, map to ``None``.
    """
    nmi = np.asarray(nmi, dtype=float)
    if nmi.ndim != 2 or nmi.shape[1] != len(factors):
        raise ValueError(f"nmi must be (facets, {len(factors)}) for factors {list(factors)}, got {nmi.shape}")
    out: list[str | None] = [None] * nmi.shape[0]
    if nmi.size == 0:
        return out
    rows, cols = linear_sum_assignment(nmi, maximize=True)
    for r, c in zip(rows, cols):
        out[r] = factors[c]
    return out


def contingency(labels: np.ndarray, clusters: np.ndarray, n_classes: int | None = None,
                n_clusters: int | None = None) -> np.ndarray:
    """Counts ``table[class, cluster]`` (int64), sized to cover every id seen and the given sizes."""
    labels, clusters = np.asarray(labels, dtype=np.int64), np.asarray(clusters, dtype=np.int64)
    rows = max(int(labels.max(initial=-1)) + 1, n_classes or 0)
    cols = max(int(clusters.max(initial=-1)) + 1, n_clusters or 0)
    table = np.zeros((rows, cols), dtype=np.int64)
    np.add.at(table, (labels, clusters), 1)
    return table


def matched_cluster_order(table: np.ndarray) -> tuple[np.ndarray, dict[int, int]]:
    """Column order of a (classes x clusters) ``table`` that puts the Hungarian matches first.

    Returns ``(order, matches)``. ``matches`` maps each class that got a cluster in the
    one-to-one (Hungarian) matching to that cluster; ``order`` lists the matched clusters by
    their class, then the unmatched clusters, largest first (ties: lower id first). With at
    least as many clusters as classes, ``order[i]`` is the cluster matched to class ``i``, so
    the matches sit on the diagonal of ``table[:, order]``. ``sum(table[c, k] for c, k in
    matches.items())`` is the number of one-to-one hits.
    """
    table = np.asarray(table)
    rows, cols = linear_sum_assignment(table, maximize=True)
    matches = {int(r): int(c) for r, c in sorted(zip(rows, cols))}
    taken = set(matches.values())
    rest = [int(c) for c in np.argsort(-table.sum(axis=0), kind="stable") if int(c) not in taken]
    return np.array([*matches.values(), *rest], dtype=np.int64), matches
