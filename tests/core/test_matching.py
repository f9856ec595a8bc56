"""Facet <-> factor matching: NMI matrix, Hungarian assignment, cluster order; evaluation keys."""

from __future__ import annotations

import json

import mfcf
import numpy as np
import pytest
from mfcf.engine.evaluation import format_table
from mfcf.engine.matching import contingency, match_facets, matched_cluster_order, nmi_matrix


def _factors(n=400, seed=0):
    rng = np.random.default_rng(seed)
    return {"hue": rng.integers(0, 4, n), "shape": rng.integers(0, 3, n)}


def test_nmi_matrix_finds_the_factor_each_facet_copies():
    y = _factors()
    relabel = np.array([2, 0, 3, 1])  # a permutation of hue's values: NMI stays 1
    facets = [y["shape"] + 10, relabel[y["hue"]]]
    nmi = nmi_matrix(facets, y)
    assert nmi.shape == (2, 2)
    assert nmi[0, 1] == pytest.approx(1.0) and nmi[1, 0] == pytest.approx(1.0)
    assert nmi[0, 0] < 0.05 and nmi[1, 1] < 0.05
    assert match_facets(nmi, ["hue", "shape"]) == ["shape", "hue"]


def test_matching_is_one_to_one_even_when_one_factor_dominates():
    # both facets correlate best with 'a'; one-to-one gives 'a' to facet 1 (larger total NMI)
    nmi = np.array([[0.9, 0.5], [0.95, 0.1]])
    assert match_facets(nmi, ["a", "b"]) == ["b", "a"]  # 0.5 + 0.95 > 0.9 + 0.1


def test_more_facets_than_factors_and_no_factors():
    nmi = np.array([[0.2], [0.7], [0.1]])
    assert match_facets(nmi, ["only"]) == [None, "only", None]
    assert match_facets(np.zeros((2, 0)), []) == [None, None]
    assert nmi_matrix([np.zeros(5, int)], {}).shape == (1, 0)
    with pytest.raises(ValueError, match="factors"):
        match_facets(np.zeros((2, 3)), ["a", "b"])


def test_more_factors_than_facets_leaves_factors_unmatched():
    assert match_facets(np.array([[0.1, 0.8, 0.3]]), ["a", "b", "c"]) == ["b"]


def test_contingency_and_matched_order_more_clusters_than_classes():
    labels = np.array([0, 0, 0, 1, 1, 2, 2, 2, 2])
    clusters = np.array([3, 3, 1, 0, 0, 2, 2, 4, 4])
    table = contingency(labels, clusters, n_classes=3, n_clusters=6)
    assert table.shape == (3, 6) and table.sum() == len(labels) and table[0, 3] == 2
    order, matches = matched_cluster_order(table)
    assert sorted(order.tolist()) == list(range(6))
    assert order[:3].tolist() == [matches[0], matches[1], matches[2]] == [3, 0, 2]  # diagonal = 1:1 hits
    assert order[3:].tolist() == [4, 1, 5]  # unmatched clusters, largest first (5 is empty)
    hits = sum(table[c, k] for c, k in matches.items())
    assert hits == 6  # = hungarian_acc * N


def test_matched_order_fewer_clusters_than_classes():
    labels = np.array([0, 1, 1, 2, 2, 2])
    clusters = np.array([0, 0, 0, 1, 1, 1])
    order, matches = matched_cluster_order(contingency(labels, clusters))
    assert sorted(order.tolist()) == [0, 1] and matches == {1: 0, 2: 1}  # class 0 unmatched


def test_evaluation_reports_nmi_matrix_matching_and_selection(toy_config, tmp_path):
    toy_config["model"] = {"name": "toy_kmeans"}
    toy_config["facets"] = [{"latent_dim": 1, "n_clusters": 3}]
    run = mfcf.train(toy_config, quiet=True)
    result = mfcf.evaluate(run)
    assert result["nmi_matrix"]["factors"] == ["top", "bottom"] and result["nmi_matrix"]["facets"] == [0]
    values = np.array(result["nmi_matrix"]["values"])
    assert values.shape == (1, 2)
    best = ["top", "bottom"][int(values.argmax())]
    assert result["facets"][0]["matched_factor"] == best
    match = result["matching"][0]
    assert match["facet"] == 0 and match["factor"] == best
    assert match["nmi"] == result["facets"][0]["factors"][best]["nmi"] == pytest.approx(values.max())
    assert "fitted without a gradient loop" in result["selection"]
    assert "test labels were used only" in result["selection"]
    assert json.loads((run / "eval-test.json").read_text())["matching"] == result["matching"]
    text = format_table(result)
    assert f"facet 0 clusters {best} (Hungarian acc " in text and "many-to-one acc" in text
    assert text.splitlines()[-1].startswith("model selection: final weights (model.pt)")
    # results written before the matching existed still format
    old = {k: v for k, v in result.items() if k not in ("matching", "selection", "nmi_matrix")}
    assert format_table(old).splitlines()[-1].startswith("    0")
