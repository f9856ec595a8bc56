"""Clustering metrics against hand-computed examples."""

from __future__ import annotations

import numpy as np
import pytest

from mfcf.engine.metrics import hungarian_accuracy, majority_mapping, many_to_one_accuracy, score, weighted_accuracy


def test_permuted_perfect_clustering():
    labels = np.array([0, 0, 1, 1, 2, 2])
    clusters = np.array([2, 2, 0, 0, 1, 1])
    assert score(labels, clusters) == {"hungarian_acc": 1.0, "many_to_one_acc": 1.0, "weighted_acc": 1.0, "nmi": 1.0,
                                       "ari": 1.0}


def test_more_clusters_than_classes():
    # 3 clusters, 2 classes. Contingency (class x cluster): [[2, 1, 0], [0, 1, 2]]
    labels = np.array([0, 0, 0, 1, 1, 1])
    clusters = np.array([0, 0, 1, 1, 2, 2])
    # one-to-one: class 0 <-> cluster 0 (2), class 1 <-> cluster 2 (2); cluster 1 unmatched
    assert hungarian_accuracy(labels, clusters) == pytest.approx(4 / 6)
    # many-to-one: clusters 0 -> 0 (2), 1 -> tie (1), 2 -> 1 (2)
    assert many_to_one_accuracy(labels, clusters) == pytest.approx(5 / 6)


def test_fewer_clusters_than_classes():
    labels = np.array([0, 1, 2, 0, 1, 2])
    clusters = np.array([0, 0, 1, 0, 0, 1])
    # table (class x cluster): [[2,0],[2,0],[0,2]] -> one-to-one best 2 + 2 = 4
    assert hungarian_accuracy(labels, clusters) == pytest.approx(4 / 6)
    assert many_to_one_accuracy(labels, clusters) == pytest.approx(4 / 6)


def test_single_cluster_has_zero_nmi_and_ari():
    labels = np.array([0, 1, 0, 1])
    s = score(labels, np.zeros(4, int))
    assert s["nmi"] == 0.0 and s["ari"] == 0.0 and s["hungarian_acc"] == 0.5


def test_hand_computed_nmi_and_ari():
    labels = np.array([0, 0, 1, 1])
    clusters = np.array([0, 0, 0, 1])
    # ARI by hand: pairs-in-cells = C(3,2)... sum_ij C(n_ij,2) = C(2,2)+C(1,2)+C(1,2)... = 1
    # a = [2, 2] -> sum C = 2; b = [3, 1] -> sum C = 3; expected = 2*3/6 = 1; max = (2+3)/2 = 2.5
    assert score(labels, clusters)["ari"] == pytest.approx((1 - 1) / (2.5 - 1))
    # NMI (arithmetic): I = 0.3113 nats, H(y) = ln 2, H(c) = 0.5623 nats
    h_y, h_c = np.log(2), -(0.75 * np.log(0.75) + 0.25 * np.log(0.25))
    mi = 0.5 * np.log(0.5 / (0.5 * 0.75)) + 0.25 * np.log(0.25 / (0.5 * 0.75)) + 0.25 * np.log(0.25 / (0.5 * 0.25))
    assert score(labels, clusters)["nmi"] == pytest.approx(mi / ((h_y + h_c) / 2))


def test_shape_mismatch_is_an_error():
    with pytest.raises(ValueError):
        score(np.zeros(3), np.zeros(4))


def test_weighted_accuracy_is_the_class_mean_of_the_majority_mappings_accuracy():
    # 2 classes of sizes 6 and 2; clusters: 0 holds 5 of class 0; 1 holds 1 of class 0 and both of class 1
    labels = np.array([0, 0, 0, 0, 0, 0, 1, 1])
    clusters = np.array([0, 0, 0, 0, 0, 1, 1, 1])
    # majority mapping: cluster 0 -> 0, cluster 1 -> 1; per class: 5/6 and 2/2
    assert score(labels, clusters)["weighted_acc"] == pytest.approx((5 / 6 + 1) / 2)
    assert score(labels, clusters)["many_to_one_acc"] == pytest.approx(7 / 8)
    # one cluster: everything maps to class 0 -> per class 1 and 0; many-to-one would say 6/8
    assert weighted_accuracy(labels, np.zeros(8, int)) == pytest.approx(0.5)


def test_weighted_accuracy_keeps_class_values_and_maps_several_clusters_to_one_class():
    labels = np.array([7, 7, 7, 3, 3, 3])
    clusters = np.array([10, 11, 11, 12, 12, 10])  # 10: tie (7, 3) -> smaller class 3; 11 -> 7; 12 -> 3
    assert list(majority_mapping(labels, clusters)) == [3, 7, 7, 3, 3, 3]
    assert weighted_accuracy(labels, clusters) == pytest.approx((2 / 3 + 1) / 2)
