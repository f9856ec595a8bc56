"""Variational Deep Embedding (Jiang, Zheng, Tan, Tang & Zhou, IJCAI 2017).

A VAE whose prior is a mixture of Gaussians, p(c) p(z|c), trained in three steps as in the
paper: autoencoder pre-training, a diagonal Gaussian mixture fitted to the pre-trained codes
that initialises the prior, then the ELBO. VaDE is the single-facet case of MFCVAE (J = 1), so
the prior and the ELBO are the registered ones (``prior: {name: mog}``, ``elbo: {name:
mfcvae_analytic}`` or another MFCVAE estimator) rather than new code; what VaDE adds is the
pre-training and the initialisation.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from sklearn.cluster import KMeans
from sklearn.mixture import GaussianMixture
from torch import Tensor, nn

from mfcf.api import (ELBO, DataInfo, Decoder, Encoder, FacetPrior, FacetSpec, Likelihood, LossOutput,
                      Schedule)
from mfcf.config import positive
from mfcf.errors import ConfigError

from .autoencoder import PretrainConfig, PretrainedAutoencoder
from .common import check_enough_examples

ASSIGNMENTS = ("mean", "analytic")
GMM_FITS = ("means", "means_variances", "all")


@dataclasses.dataclass
class VaDEConfig(PretrainConfig):
    """``model: {name: vade, ...}``: the pre-training options of
    :class:`~mfcf_baselines.autoencoder.PretrainConfig` plus

    * ``gmm_fit`` -- what the diagonal Gaussian mixture fitted to the pre-trained codes copies
      into the prior: ``all`` (means, variances and weights, as VaDE), ``means_variances`` or
      ``means``;
    * ``gmm_kmeans_n_init`` -- k-means restarts whose best centres start the EM of that fit
      (scikit-learn's own default starts it from a single k-means run, which on autoencoder
      codes often lands in a poor optimum);
    * ``assignment`` -- ``mean``: q(c|x) = p(c | z = posterior mean) (VaDE's and MFCVAE's
      test-time rule); ``analytic``: the optimal q*(c|x) = softmax(log pi + E_q log N(z; mu_c,
      Sigma_c)) (MFCVAE.md §2.2).

    The schedule sees epochs counted from the end of pre-training (epoch ``pretrain_epochs`` is
    its epoch 0), so a KL warm-up starts with the ELBO.
    """

    gmm_fit: str = "all"
    gmm_kmeans_n_init: int = 10
    assignment: str = "mean"

    def __post_init__(self) -> None:
        super().__post_init__()
        for key, value, valid in (("gmm_fit", self.gmm_fit, GMM_FITS), ("assignment", self.assignment, ASSIGNMENTS)):
            if value not in valid:
                raise ConfigError(f"must be one of {', '.join(valid)}, got {value!r}", key=key)
        positive(self.gmm_kmeans_n_init, "gmm_kmeans_n_init")


class VaDEModel(PretrainedAutoencoder):
    """VaDE: one MoG-prior facet, autoencoder pre-training, GMM initialisation, then the ELBO.

    The ELBO estimator reads ``model.encoder``, ``model.decoder``, ``model.priors`` and
    ``model.likelihood`` like MFCVAE's; the schedule's state travels with the checkpoint.

    Example config (the paper's MNIST network)::

        model: {name: vade, pretrain_epochs: 10}
        encoder: {name: mlp}                    # d-500-500-2000-10
        decoder: {name: mlp}
        likelihood: {name: bernoulli}
        facets: [{latent_dim: 10, n_clusters: 10, prior: {name: mog}}]
        elbo: {name: mfcvae_analytic}
        schedule: {name: constant}
    """

    name = "vade"
    Config = VaDEConfig
    parts = ("priors", "encoder", "decoder", "likelihood", "elbo", "schedule")

    def __init__(self, config: VaDEConfig, *, info: DataInfo, facets: Sequence[FacetSpec],
                 priors: Sequence[FacetPrior], encoder: Encoder, decoder: Decoder, likelihood: Likelihood,
                 elbo: ELBO, schedule: Schedule):
        super().__init__(config, info=info, facets=facets, encoder=encoder, decoder=decoder, likelihood=likelihood)
        if len(priors) != 1:
            raise ConfigError(f"vade has one facet and needs one prior, got {len(priors)}", key="facets")
        if schedule.epochs <= config.pretrain_epochs:
            raise ConfigError(f"trainer.epochs ({schedule.epochs}) must exceed model.pretrain_epochs "
                              f"({config.pretrain_epochs}): the ELBO phase starts after the pre-training",
                              key="trainer.epochs")
        self.priors = nn.ModuleList(priors)
        self.elbo = elbo
        self.schedule = schedule

    def initialise_clusters(self, codes: np.ndarray, seed: int) -> None:
        facet, prior = self.facets[0], self.priors[0]
        check_enough_examples(len(codes), facet.n_clusters)
        kmeans = KMeans(facet.n_clusters, n_init=self.config.gmm_kmeans_n_init, random_state=seed).fit(codes)
        gmm = GaussianMixture(facet.n_clusters, covariance_type="diag", means_init=kmeans.cluster_centers_,
                              random_state=seed).fit(codes)
        fit = self.config.gmm_fit
        means = torch.from_numpy(gmm.means_)
        variances = torch.from_numpy(gmm.covariances_) if fit != "means" else None
        weights = torch.from_numpy(gmm.weights_) if fit == "all" else None
        prior.initialise(means, variances, weights)

    def clustering_loss(self, x: Tensor, *, epoch: int, step: int) -> LossOutput:
        coeffs = self.schedule(epoch - self.config.pretrain_epochs, step)
        return self.elbo(self, x, coeffs)

    def clustering_probs(self, x: Tensor) -> Tensor:
        prior, q = self.priors[0], self.encoder(x)[0]
        if self.config.assignment == "mean":
            return prior.responsibilities(q.mean)
        return torch.softmax(prior.log_weights() + prior.expected_component_log_prob(q), dim=-1)

    def get_extra_state(self) -> dict[str, Any]:
        return {"schedule": self.schedule.state_dict()}

    def set_extra_state(self, state: dict[str, Any]) -> None:
        self.schedule.load_state_dict(state["schedule"])
