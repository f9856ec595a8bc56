"""k-means on pixels and PCA + GMM (EM or N2D's UMAP partition): the known accuracy range on real
digits, agreement with scikit-learn and the ladder's ``fit_umap``, determinism, saved state, and
early errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.stats import multivariate_normal
from sklearn.cluster import KMeans
from sklearn.decomposition import PCA
from sklearn.mixture import GaussianMixture

import mfcf
from mfcf.engine.build import build, resolve
from mfcf.errors import ConfigError, TrainingError, UnknownKeyError
from mfcf_ladder.gmm_init import fit_umap


def config(tmp_path, model="kmeans", seed=0, latent_dim=1, n_clusters=10, **options):
    return {"data": {"name": "digits"}, "model": {"name": model, **options},
            "facets": [{"latent_dim": latent_dim, "n_clusters": n_clusters}],
            "trainer": {"seed": seed, "threads": 1, "runs_dir": str(tmp_path / "runs")}}


def fitted(cfg):
    exp = build(mfcf.load_config(base=cfg))
    exp.model.fit(exp.train, seed=exp.trainer.seed)
    return exp


@pytest.mark.parametrize("seed", [0, 1])
def test_kmeans_on_digits_reaches_the_known_range(tmp_path, seed):
    """k-means on raw 8x8 digits: Hungarian accuracy about 0.7-0.8, through train + evaluate."""
    run = mfcf.train(config(tmp_path, seed=seed), quiet=True)
    scores = mfcf.evaluate(run)["facets"][0]["factors"]["label"]
    assert 0.7 <= scores["hungarian_acc"] <= 0.85, scores
    assert scores["nmi"] > 0.65, scores


def test_kmeans_matches_scikit_learn_and_is_deterministic(tmp_path):
    a, b = fitted(config(tmp_path, seed=3)), fitted(config(tmp_path, seed=3))
    assert all(torch.equal(v, b.model.state_dict()[k]) for k, v in a.model.state_dict().items())
    reference = KMeans(10, n_init=10, random_state=3).fit(a.train.images.flatten(1).numpy())
    np.testing.assert_allclose(a.model.centres.numpy(), reference.cluster_centers_, rtol=1e-5, atol=1e-6)
    probs = a.model.cluster_probs(a.test.images)[0]
    assert torch.equal(probs.sum(-1), torch.ones(len(a.test)))
    np.testing.assert_array_equal(probs.argmax(-1).numpy(), reference.predict(a.test.images.flatten(1).numpy()))
    c = fitted(config(tmp_path, seed=4, n_init=1))
    assert not torch.equal(c.model.centres, a.model.centres)


def test_fitted_state_lives_in_the_state_dict(tmp_path):
    exp = fitted(config(tmp_path, "gmm_pca", latent_dim=12, covariance="diag"))
    fresh = build(mfcf.load_config(base=config(tmp_path, "gmm_pca", latent_dim=12, covariance="diag"))).model
    with pytest.raises(TrainingError, match="fit\\(\\) has not run"):
        fresh.cluster_probs(exp.test.images)
    fresh.load_state_dict(exp.model.state_dict())
    torch.testing.assert_close(fresh.cluster_probs(exp.test.images)[0], exp.model.cluster_probs(exp.test.images)[0])


@pytest.mark.parametrize("covariance, whiten", [("full", False), ("tied", False), ("diag", False),
                                                ("spherical", False), ("full", True)])
def test_gmm_pca_matches_scikit_learn_predict_proba(tmp_path, covariance, whiten):
    exp = fitted(config(tmp_path, "gmm_pca", seed=2, latent_dim=10, covariance=covariance, whiten=whiten))
    x_train, x_test = exp.train.images.flatten(1).numpy(), exp.test.images.flatten(1).numpy()
    pca = PCA(10, whiten=whiten, random_state=2).fit(x_train)
    gmm = GaussianMixture(10, covariance_type=covariance, random_state=2).fit(pca.transform(x_train).astype(np.float64))
    ours = exp.model.cluster_probs(exp.test.images)[0].numpy()
    np.testing.assert_allclose(ours, gmm.predict_proba(pca.transform(x_test).astype(np.float64)), atol=1e-5)


def test_gmm_pca_on_digits_clusters_well(tmp_path):
    run = mfcf.train(config(tmp_path, "gmm_pca", latent_dim=20, covariance="full", n_init=3), quiet=True)
    scores = mfcf.evaluate(run)["facets"][0]["factors"]["label"]
    assert scores["nmi"] > 0.6 and scores["hungarian_acc"] > 0.6, scores


@pytest.mark.parametrize("covariance", ["full", "diag"])
def test_gmm_pca_umap_is_the_posterior_of_the_umap_partitions_mixture(tmp_path, covariance):
    exp = fitted(config(tmp_path, "gmm_pca", seed=1, latent_dim=10, covariance=covariance, mixture="umap"))
    x_train, x_test = exp.train.images.flatten(1).numpy(), exp.test.images.flatten(1).numpy()
    pca = PCA(10, random_state=1).fit(x_train)
    mixture = fit_umap(pca.transform(x_train).astype(np.float64), 10, np.random.RandomState(1),
                       covariance_type=covariance)
    y = pca.transform(x_test).astype(np.float64)
    covariances = mixture.covariances if covariance == "full" else [np.diag(v) for v in mixture.covariances]
    log_joint = np.stack([np.log(w) + multivariate_normal(m, c).logpdf(y)
                          for w, m, c in zip(mixture.weights, mixture.means, covariances)], axis=1)
    expected = np.exp(log_joint - np.logaddexp.reduce(log_joint, axis=1, keepdims=True))
    np.testing.assert_allclose(exp.model.cluster_probs(exp.test.images)[0].numpy(), expected, atol=1e-5)


def test_gmm_pca_umap_on_digits_beats_em(tmp_path):
    """The neighbourhoods of the 8x8 digits hold their classes better than Gaussian blobs do."""
    scores = {}
    for mixture in ("em", "umap"):
        run = mfcf.train(config(tmp_path / mixture, "gmm_pca", latent_dim=20, covariance="full", mixture=mixture),
                         quiet=True)
        scores[mixture] = mfcf.evaluate(run)["facets"][0]["factors"]["label"]["hungarian_acc"]
    assert scores["umap"] > 0.85 and scores["umap"] > scores["em"] + 0.05, scores


# -- errors before anything is fitted --------------------------------------------------------
def resolve_error(cfg) -> ConfigError:
    with pytest.raises(ConfigError) as err:
        build(resolve(mfcf.load_config(base=cfg)))
    return err.value


def test_two_facets_are_refused(tmp_path):
    cfg = config(tmp_path)
    cfg["facets"].append({"latent_dim": 1, "n_clusters": 3})
    err = resolve_error(cfg)
    assert err.key == "facets" and "supports 1 facet(s) but the config has 2" in str(err)


def test_more_components_than_pixels_is_refused(tmp_path):
    err = resolve_error(config(tmp_path, "gmm_pca", latent_dim=65))
    assert err.key == "facets.0.latent_dim" and "only 64 pixels" in str(err) and "at most 64" in str(err)


def test_more_clusters_than_examples_is_refused(tmp_path):
    exp = build(mfcf.load_config(base=config(tmp_path, n_clusters=2000)))
    with pytest.raises(ConfigError, match="cannot fit 2000 clusters to 1437 training examples") as err:
        exp.model.fit(exp.train, seed=0)
    assert err.value.key == "facets.0.n_clusters"


@pytest.mark.parametrize("model, extra, key, message", [
    ("kmeans", {"init": "kmeans++"}, "model.init", "must be one of k-means++, random"),
    ("kmeans", {"n_init": 0}, "model.n_init", "must be greater than 0"),
    ("gmm_pca", {"covariance": "diagonal"}, "model.covariance", "must be one of full, tied, diag, spherical"),
    ("gmm_pca", {"mixture": "spectral"}, "model.mixture", "must be one of em, umap"),
    ("gmm_pca", {"mixture": "umap", "covariance": "tied"}, "model.covariance", "set covariance to full or diag"),
])
def test_bad_options_fail_with_their_key(tmp_path, model, extra, key, message):
    err = resolve_error(config(tmp_path, model, latent_dim=5, **extra))
    assert err.key == key and message in str(err)


def test_unknown_option_and_foreign_sections(tmp_path):
    with pytest.raises(UnknownKeyError, match="did you mean: n_init"):
        resolve(mfcf.load_config(base=config(tmp_path, n_inits=3)))
    cfg = config(tmp_path)
    cfg["encoder"] = {"name": "mlp"}
    err = resolve_error(cfg)
    assert err.key == "encoder" and "does not use the `encoder:` section" in str(err)
    cfg = config(tmp_path)
    cfg["facets"][0]["prior"] = {"name": "mog"}
    assert resolve_error(cfg).key == "facets.0.prior"
