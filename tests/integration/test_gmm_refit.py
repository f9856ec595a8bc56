"""``model.gmm_refit_epochs`` through a real training run: the refit at the end of the last
epoch is what the saved model holds, and it equals a scikit-learn fit of the trained
encoder's eval-mode posterior means (``gmm_bn_mode: eval``, ``gmm_covariance: full``)."""

from __future__ import annotations

import numpy as np
import torch
from sklearn.mixture import GaussianMixture

import mfcf
from mfcf.engine.evaluation import load_trained
from mfcf_ladder.gmm_init import encode_means

CONFIG = {
    "data": {"name": "digits", "batch_size": 128, "val_fraction": 0.1},
    "model": {"name": "mfcvae", "gmm_init_epoch": 1, "gmm_refit_epochs": [2], "gmm_bn_mode": "eval",
              "gmm_covariance": "full", "gmm_seed": 7},
    "facets": [{"latent_dim": 3, "n_clusters": 10, "prior": {"name": "mog", "covariance": "full"}},
               {"latent_dim": 2, "n_clusters": 4, "prior": {"name": "mog", "covariance": "diag"}}],
    "encoder": {"name": "ladder_fc", "backbone_dims": [64, 64]},
    "decoder": {"name": "ladder_fc", "backbone_dims": [64, 64], "rung_dims": [64, 64]},
    "likelihood": {"name": "bernoulli"},
    "elbo": {"name": "mfcvae_analytic"},
    "schedule": {"name": "constant"},
    "trainer": {"epochs": 3, "lr": 1e-3, "seed": 0, "device": "cpu", "threads": 1},
}


def test_the_last_epochs_refit_is_what_the_model_keeps(tmp_path):
    config = {**CONFIG, "trainer": {**CONFIG["trainer"], "runs_dir": str(tmp_path)}}
    run = mfcf.train(config, quiet=True)
    _, experiment, weights = load_trained(run)
    assert weights == "model.pt"
    model = experiment.model
    means = encode_means(model.encoder, experiment.train.images, chunk_size=model.config.gmm_chunk_size,
                         bn_mode="eval", device=torch.device("cpu"))
    state = np.random.RandomState(7)
    expected = [GaussianMixture(10, covariance_type="full", random_state=state).fit(means[0]),
                GaussianMixture(4, covariance_type="full", random_state=state).fit(means[1])]
    full, diag = model.priors
    np.testing.assert_allclose(full.means.detach().numpy(), expected[0].means_, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(full.covariances().detach().numpy(), expected[0].covariances_, rtol=1e-3, atol=1e-6)
    # the diagonal prior of facet 1 takes the diagonals of its full fit
    np.testing.assert_allclose(diag.variances().detach().numpy(),
                               np.diagonal(expected[1].covariances_, axis1=1, axis2=2), rtol=1e-3, atol=1e-6)
