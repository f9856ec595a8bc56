"""``model.gmm_method``: the mixtures ``fit_gmm`` (EM), ``fit_spectral`` (a spectral partition) and
``fit_umap`` (a GMM's partition of a UMAP embedding)."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.optimize import linear_sum_assignment
from sklearn.datasets import make_circles, make_moons
from sklearn.metrics import adjusted_rand_score

import mfcf_ladder.gmm_init as gmm_init
from mfcf_ladder.gmm_init import GMM_METHODS, fit_gmm, fit_spectral, fit_umap

# two moons apart make a disconnected neighbour graph, which scikit-learn warns of: expected here
pytestmark = pytest.mark.filterwarnings("ignore:Graph is not fully connected")


def _matched(means, truth_means):
    """``means`` reordered to the order of ``truth_means`` (nearest one-to-one)."""
    cost = ((means[:, None] - truth_means[None]) ** 2).sum(-1)
    rows, cols = linear_sum_assignment(cost)
    return rows[np.argsort(cols)]


def test_spectral_follows_the_neighbourhoods_where_em_cuts_across_them():
    x, y = make_moons(400, noise=0.05, random_state=0)
    spectral = fit_spectral(x, 2, np.random.RandomState(0))
    em = fit_gmm(x, 2, np.random.RandomState(0))
    truth = np.stack([x[y == k].mean(0) for k in range(2)])
    order = _matched(spectral.means, truth)
    # each moon becomes one component: its share, its mean, its variances (+ scikit-learn's 1e-6)
    np.testing.assert_allclose(spectral.weights[order], [np.mean(y == 0), np.mean(y == 1)])
    np.testing.assert_allclose(spectral.means[order], truth)
    np.testing.assert_allclose(spectral.covariances[order], np.stack([x[y == k].var(0) for k in range(2)]) + 1e-6)

    def partition(mixture):
        d = ((x[:, None] - mixture.means[None]) ** 2 / mixture.covariances[None]).sum(-1)
        return (-0.5 * d - 0.5 * np.log(mixture.covariances).sum(-1) + np.log(mixture.weights)).argmax(1)

    assert adjusted_rand_score(y, partition(em)) < 0.6  # two Gaussians split the moons across
    assert np.abs(em.means - truth[_matched(em.means, truth)]).max() > 0.1


def test_spectral_full_covariances_and_an_empty_cluster(monkeypatch):
    x, y = make_moons(200, noise=0.05, random_state=1)
    full = fit_spectral(x, 2, np.random.RandomState(0), covariance_type="full")
    order = _matched(full.means, np.stack([x[y == k].mean(0) for k in range(2)]))
    expected = np.stack([np.cov(x[y == k], rowvar=False, bias=True) + 1e-6 * np.eye(2) for k in range(2)])
    np.testing.assert_allclose(full.covariances[order], expected)

    class OneGroup:  # a partition that leaves cluster 2 empty
        def __init__(self, *args, **kwargs):
            pass

        def fit_predict(self, features):
            return (features[:, 0] > 0.5).astype(int)

    monkeypatch.setattr(gmm_init, "SpectralClustering", OneGroup)
    mixture = fit_spectral(x, 3, np.random.RandomState(0))
    assert np.isfinite(mixture.covariances).all() and (mixture.covariances > 0).all()
    assert mixture.weights[2] > 0 and np.isclose(mixture.weights.sum(), 1.0)
    assert any(np.allclose(mixture.means[2], point) for point in x)  # a data point stands in
    np.testing.assert_allclose(mixture.covariances[2], x.var(0) + 1e-6)


@pytest.mark.parametrize("method", sorted(GMM_METHODS))
def test_every_method_is_deterministic_given_the_random_state(method):
    x, _ = make_moons(150, noise=0.1, random_state=2)
    a, b = (GMM_METHODS[method](x, 3, np.random.RandomState(7)) for _ in range(2))
    for part_a, part_b in zip(a, b):
        np.testing.assert_array_equal(part_a, part_b)
    assert a.means.shape == (3, 2) and a.covariances.shape == (3, 2) and a.weights.shape == (3,)


def test_umap_takes_the_rings_apart_as_components_in_the_features_own_space():
    # two concentric rings share a mean: no pair of Gaussians fitted by EM separates them, a
    # neighbourhood embedding does; each ring then becomes one component of the 2-d features
    x, y = make_circles(400, noise=0.03, factor=0.4, random_state=0)
    mixture = fit_umap(x, 2, np.random.RandomState(0), covariance_type="full")
    order = np.argsort(np.trace(mixture.covariances, axis1=1, axis2=2))  # inner ring first
    inner, outer = x[y == 1], x[y == 0]
    np.testing.assert_allclose(mixture.weights[order], [len(inner) / len(x), len(outer) / len(x)])
    np.testing.assert_allclose(mixture.means[order], np.stack([inner.mean(0), outer.mean(0)]), atol=1e-12)
    expected = np.stack([np.cov(part, rowvar=False, bias=True) + 1e-6 * np.eye(2) for part in (inner, outer)])
    np.testing.assert_allclose(mixture.covariances[order], expected)

    em = fit_gmm(x, 2, np.random.RandomState(0))
    d = ((x[:, None] - em.means[None]) ** 2 / em.covariances[None]).sum(-1)
    em_labels = (-0.5 * d - 0.5 * np.log(em.covariances).sum(-1) + np.log(em.weights)).argmax(1)
    assert adjusted_rand_score(y, em_labels) < 0.2


@pytest.mark.parametrize("method, graph", [(fit_spectral, "mfcf_ladder.gmm_init.SpectralClustering"),
                                           (fit_umap, "umap.UMAP")])
def test_the_graph_methods_build_their_graph_on_the_neighbours_asked_for(monkeypatch, method, graph):
    built = []

    class Recorder:  # stands in for the graph method and records its neighbours
        def __init__(self, *args, n_neighbors, **kwargs):
            built.append(n_neighbors)

        def fit_predict(self, features):
            return np.arange(len(features)) % 2

        def fit_transform(self, features):
            return features

    monkeypatch.setattr(graph, Recorder)
    x, _ = make_moons(60, noise=0.1, random_state=3)
    method(x, 2, np.random.RandomState(0), neighbours=7)
    assert built == [7]


def test_umap_refits_in_float64_when_float32_em_loses_a_covariance(monkeypatch):
    # UMAP's embedding is float32; on tight clusters scikit-learn's float32 EM can fail with an
    # ill-defined covariance (seen on the procedural shapes): the fit is then done in float64
    class Float32Fails(gmm_init.GaussianMixture):
        def fit_predict(self, X, y=None):
            if X.dtype == np.float32:
                raise ValueError("Fitting the mixture model failed because some components have ill-defined "
                                 "empirical covariance (for instance caused by singleton or collapsed samples).")
            return super().fit_predict(X, y)

    x, y = make_circles(300, noise=0.03, factor=0.4, random_state=1)
    monkeypatch.setattr(gmm_init, "GaussianMixture", Float32Fails)
    mixture = fit_umap(x, 2, np.random.RandomState(0))
    assert sorted(np.round(mixture.weights * len(x)).astype(int)) == [150, 150]  # each ring one component

    class AlwaysFails(gmm_init.GaussianMixture):
        def fit_predict(self, X, y=None):
            raise ValueError("some other failure")

    monkeypatch.setattr(gmm_init, "GaussianMixture", AlwaysFails)
    with pytest.raises(ValueError, match="some other failure"):  # anything else is not hidden
        fit_umap(x, 2, np.random.RandomState(0))
