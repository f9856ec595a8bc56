"""Clustering scores of one facet's assignments against one labelled factor.

All four come from scipy / scikit-learn:

* ``hungarian_acc`` -- one-to-one accuracy: clusters and classes are matched by
  ``scipy.optimize.linear_sum_assignment`` on the contingency table (a rectangular table is
  allowed: when there are more clusters than classes, the unmatched clusters count as errors;
  with fewer clusters, the unmatched classes do).
* ``many_to_one_acc`` -- each cluster is mapped to its majority class (several clusters may map
  to one class). This is what the MFCVAE paper reports; it grows with the number of clusters
  and is never passed off as one-to-one accuracy.
* ``weighted_acc`` -- the MFCVAE paper's weighted accuracy (reported for SVHN and 3DShapes):
  the mean over true classes of the fraction of each class that the majority mapping above
  labels correctly, i.e. the balanced accuracy of the many-to-one mapping
  (``sklearn.metrics.balanced_accuracy_score``). Chance-level mappings of unbalanced classes
  score lower here than under ``many_to_one_acc``.
* ``nmi`` -- normalised mutual information (arithmetic normalisation, sklearn's default).
* ``ari`` -- adjusted Rand index.
"""

from __future__ import annotations

import numpy as np
from scipy.optimize import linear_sum_assignment
from sklearn.metrics import adjusted_rand_score, balanced_accuracy_score, normalized_mutual_info_score
from sklearn.metrics.cluster import contingency_matrix

METRICS = ("hungarian_acc", "many_to_one_acc", "weighted_acc", "nmi", "ari")
#: Column titles of the metrics in tables.
METRIC_TITLES = {"hungarian_acc": "Hungarian acc (1:1)", "many_to_one_acc": "many-to-one acc",
                 "weighted_acc": "weighted acc (majority, balanced)", "nmi": "NMI", "ari": "ARI"}


def hungarian_accuracy(labels: np.ndarray, clusters: np.ndarray) -> float:
    table = contingency_matrix(labels, clusters)  # classes x clusters
    rows, cols = linear_sum_assignment(table, maximize=True)
    return float(table[rows, cols].sum() / len(labels))


def many_to_one_accuracy(labels: np.ndarray, clusters: np.ndarray) -> float:
    table = contingency_matrix(labels, clusters)
    return float(table.max(axis=0).sum() / len(labels))


def majority_mapping(labels: np.ndarray, clusters: np.ndarray) -> np.ndarray:
    """Each example's cluster replaced by that cluster's majority class (ties: the smaller class)."""
    classes, label_ids = np.unique(labels, return_inverse=True)
    _, cluster_ids = np.unique(clusters, return_inverse=True)
    table = contingency_matrix(label_ids, cluster_ids)  # classes x clusters, in sorted order
    return classes[table.argmax(axis=0)][cluster_ids]


def weighted_accuracy(labels: np.ndarray, clusters: np.ndarray) -> float:
    """Mean over true classes of (correct / class size) under the majority mapping (paper §7.2)."""
    return float(balanced_accuracy_score(labels, majority_mapping(labels, clusters)))


def score(labels: np.ndarray, clusters: np.ndarray) -> dict[str, float]:
    """Every metric of :data:`METRICS` for one (factor, facet) pair."""
    labels, clusters = np.asarray(labels), np.asarray(clusters)
    if labels.shape != clusters.shape or labels.ndim != 1:
        raise ValueError(f"labels {labels.shape} and clusters {clusters.shape} must be equal-length vectors")
    return {
        "hungarian_acc": hungarian_accuracy(labels, clusters),
        "many_to_one_acc": many_to_one_accuracy(labels, clusters),
        "weighted_acc": weighted_accuracy(labels, clusters),
        "nmi": float(normalized_mutual_info_score(labels, clusters)),
        "ari": float(adjusted_rand_score(labels, clusters)),
    }
