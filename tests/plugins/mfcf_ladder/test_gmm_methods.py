"""``model.gmm_method``: the mixtures ``fit_gmm`` (EM) and ``fit_spectral`` (a spectral partition)."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.optimize import linear_sum_assignment
from sklearn.datasets import make_moons
from sklearn.metrics import adjusted_rand_score

import mfcf_ladder.gmm_init as gmm_init
from mfcf_ladder.gmm_init import GMM_METHODS, fit_gmm, fit_spectral

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
