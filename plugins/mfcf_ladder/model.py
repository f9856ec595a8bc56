"""The MFCVAE model (Falck et al., NeurIPS 2021): J facets, each a MoG-prior latent, read by a
ladder encoder and written by a ladder decoder (MFCVAE.md §1-§3). With J = 1 it is VaDE.

The model only wires its parts together: the ELBO estimator computes the loss from
``model.encoder``, ``model.decoder``, ``model.priors`` and ``model.likelihood`` with the
schedule's coefficients. On top it provides the initialisations of §5.2 / §5.3, cluster
assignment (§7.1) and the side-effect-free sampling API used by reports (§7.4, §7.5).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from typing import Any, Optional

import numpy as np
import torch
import torch.nn.functional as F
from threadpoolctl import threadpool_limits
from torch import Tensor, nn

from mfcf.api import (ELBO, Coefficients, DataInfo, DataSplit, Decoder, Encoder, FacetPrior, FacetSpec,
                      Likelihood, LossOutput, Model, Schedule)
from mfcf.config import positive
from mfcf.errors import ConfigError

from .augment import check_transform, transform
from .gmm_init import BN_MODES, GMM_METHODS, data_dependent_init, encode_means

ASSIGNMENTS = ("mean", "analytic")
GMM_FITS = ("means", "means_variances", "all")
GMM_COVARIANCES = ("diag", "full")
DATA_INIT_MODES = ("fixed", "official")


def _check_epochs(epochs: Sequence[Any], given: Any, key: str, expected: str) -> None:
    """Every entry of ``epochs`` is an epoch number >= 0 (``given``: the value as configured)."""
    for epoch in epochs:
        if isinstance(epoch, bool) or not isinstance(epoch, int):
            raise ConfigError(f"must be {expected}, got {given!r}", key=key)
        positive(epoch, key, allow_zero=True)


@dataclasses.dataclass
class MFCVAEModelConfig:
    """``model: {name: mfcvae, ...}``.

    Cluster assignment:

    * ``assignment`` -- how :meth:`MFCVAEModel.cluster_probs` computes q(c_j | x): ``mean`` =
      p(c_j | z_j = posterior mean), the official test-time rule (§7.1); ``analytic`` = the
      optimal q*(c_j | x) = softmax(log pi + E_q log N(z; mu_c, Sigma_c)) (§2.2).

    Prior initialisation from a Gaussian mixture (§5.3):

    * ``gmm_init`` -- fit a diagonal GMM per facet to the encoder's posterior means of the
      whole training split and copy it into the prior;
    * ``gmm_init_epoch`` -- at the start of which epoch (0: before training, faithful; N:
      after N epochs of warm-up with the prior as constructed); a list gives each facet its
      own epoch, e.g. ``[10, 5]`` under a progressive schedule that trains facet 1 alone for 5
      epochs: each facet's mixture is then fitted to means its encoder rung has learned,
      instead of to the untrained encoder's;
    * ``gmm_refit_epochs`` -- epochs at whose end every facet whose mixture has already been
      fitted is fitted again to the current posterior means (not in the paper; default none),
      before the epoch's validation scores and checkpoint. A refit copies means and
      covariances (and weights with ``gmm_fit: all``): clusters the prior lost during training
      are placed on the data again and the spread the rung has learned is kept. The last epoch
      (``epochs - 1``) with ``gmm_bn_mode: eval`` fits the final mixture in the space the
      clusters are assigned in (eval-mode batch norm); training after a refit moves the
      priors back towards the train-mode means;
    * ``gmm_fit`` -- what to copy: ``means`` (faithful; variances set to ``gmm_variance``,
      weights untouched), ``means_variances``, or ``all`` (means, variances and weights);
    * ``gmm_covariance`` -- the fitted mixture's covariances: ``diag`` (faithful) or ``full``;
      full matrices are copied exactly into ``covariance: full`` priors (their diagonals into
      diagonal ones) wherever variances are copied (``means_variances``, ``all``, refits);
    * ``gmm_method`` -- how the mixture is found: ``em`` (faithful: scikit-learn's EM from a
      k-means start) or ``spectral`` (not in the paper: a spectral clustering of the means'
      nearest-neighbour graph, each cluster's share, mean and covariance taken as a
      component, :func:`~mfcf_ladder.gmm_init.fit_spectral`) or ``umap`` (not in the paper:
      N2D's recipe, a full-covariance GMM on a UMAP embedding of the means, each of its
      clusters taken as a component, :func:`~mfcf_ladder.gmm_init.fit_umap`), for first fits
      and refits alike; a list gives each facet its own, e.g. ``[umap, em]``;
    * ``gmm_neighbours`` -- neighbours of each point in the graph ``spectral`` and ``umap``
      build (10; N2D's scripts use 20 for UMAP); unused by ``em``;
    * ``gmm_variance`` -- the variance of every cluster after ``gmm_fit: means`` (paper 0.01);
    * ``gmm_bn_mode`` -- batch norm while encoding (§9, D13): ``train`` (default: batch
      statistics of ``gmm_chunk_size`` chunks of randomly ordered examples, the regime training
      sees next; running stats untouched), ``eval`` (running statistics, faithful), ``recalibrate`` (re-estimate the
      running statistics on the training split, then use them);
    * ``gmm_chunk_size`` -- examples per encoder call;
    * ``gmm_seed`` -- ``random_state`` of the GMM fits; ``None``: ``torch.initial_seed()``,
      i.e. the trainer's seed;
    * ``gmm_n_init`` -- EM restarts per facet, the best likelihood kept (1: faithful);
    * ``gmm_examples`` -- encode and fit on this many training examples drawn without
      replacement (seeded like the fit); ``None``: the whole split (faithful). Encoding all of
      a 60,000-image split costs about a seventh of an epoch and the fit as much again, so
      CPU configs fit on 10,000.

    Autoencoder pre-training (not in the paper; VaDE's recipe, Jiang et al. 2017):

    * ``pretrain_epochs`` -- epochs ``0 .. pretrain_epochs - 1`` train encoder and decoder as a
      deterministic autoencoder: every facet's code is the mean of q(z_j | x) and the loss is
      -log p(x | decoder(codes)), no KL term and no prior (0: none, faithful); the ladder's
      gates follow the schedule, so a progressive one pre-trains only the facets it has on. The priors are
      untouched, so ``gmm_init_epoch`` must be at least ``pretrain_epochs``: the mixtures are
      then fitted to the codes the pre-trained ladder has learned. The schedule keeps counting
      from epoch 0 (a progressive schedule's first step, a KL warm-up and the epoch budget all
      include the pre-training epochs);
    * ``pretrain_dropout`` -- dropout rate on the *input* during pre-training, a denoising
      autoencoder as DEC's and VaDE's (0: a plain autoencoder).

    Data augmentation (not in the paper; DEC-DA's recipe, Guo et al. 2018):

    * ``augment`` -- a transform of :data:`mfcf_ladder.augment.TRANSFORMS`, or several joined
      by ``+`` (e.g. ``affine``: a small random turn and offset), applied to every training
      batch, in pre-training and in the ELBO phase alike, so the model is fitted to the
      transformed images; the mixture fits, validation and evaluation see the images as they
      are (``null``: none, faithful).

    Data-dependent initialisation (§5.2; paper: on for SVHN / 3DShapes):

    * ``data_init`` -- before epoch 0, redraw every Linear / conv Kaiming-normal and rescale it
      on ``data_init_examples`` training examples drawn at random (seeded like the GMM fits;
      the official code uses the first batch of its shuffled loader) so each unit's output has
      mean 0 and std ``data_init_scale``;
    * ``data_init_mode`` -- ``fixed`` (default): one forward pass in train mode (batch-norm
      running statistics updated once), the biased output variance, and weight-normalised
      layers rescaled through their gain, so the initialisation takes effect there too (fixes
      §9 D3). ``official`` (the paper configs): what the official code does, for an identical
      starting point -- a plain train-mode forward pass first (batch-norm running statistics
      updated twice in all), the unbiased output variance, and weight-normalised layers keep
      their PyTorch-default weights and only get a new bias, computed from those weights'
      output (§5.2 step 3, D3 reproduced). With ``gmm_bn_mode: eval`` the GMM is then fitted
      in the official latent space.
    """

    assignment: str = "mean"
    gmm_init: bool = True
    gmm_init_epoch: Any = 0  # int, or a list with one epoch per facet
    gmm_refit_epochs: list[int] = dataclasses.field(default_factory=list)
    gmm_fit: str = "means"
    gmm_covariance: str = "diag"
    gmm_method: Any = "em"  # a name, or a list with one name per facet
    gmm_neighbours: int = 10
    gmm_variance: float = 0.01
    gmm_bn_mode: str = "train"
    gmm_chunk_size: int = 512
    gmm_seed: Optional[int] = None
    gmm_n_init: int = 1
    gmm_examples: Optional[int] = None
    pretrain_epochs: int = 0
    pretrain_dropout: float = 0.0
    augment: Optional[str] = None
    data_init: bool = False
    data_init_examples: int = 150
    data_init_scale: float = 0.1
    data_init_mode: str = "fixed"

    def __post_init__(self) -> None:
        for key, value, valid in (("assignment", self.assignment, ASSIGNMENTS), ("gmm_fit", self.gmm_fit, GMM_FITS),
                                  ("gmm_bn_mode", self.gmm_bn_mode, BN_MODES),
                                  ("data_init_mode", self.data_init_mode, DATA_INIT_MODES),
                                  ("gmm_covariance", self.gmm_covariance, GMM_COVARIANCES),
                                  *(("gmm_method", method, tuple(GMM_METHODS)) for method in _listed(self.gmm_method))):
            if value not in valid:
                raise ConfigError(f"must be one of {', '.join(valid)}, got {value!r}", key=key)
        _check_epochs(_listed(self.gmm_init_epoch), self.gmm_init_epoch, "gmm_init_epoch", "an epoch number or a list of them")
        _check_epochs(self.gmm_refit_epochs, self.gmm_refit_epochs, "gmm_refit_epochs", "a list of epoch numbers")
        positive(self.gmm_variance, "gmm_variance")
        if self.gmm_neighbours < 2:  # a neighbour graph needs a point and at least one other
            raise ConfigError(f"must be at least 2, got {self.gmm_neighbours}", key="gmm_neighbours")
        positive(self.gmm_chunk_size, "gmm_chunk_size")
        positive(self.gmm_seed, "gmm_seed", allow_zero=True, allow_none=True)
        positive(self.gmm_n_init, "gmm_n_init")
        positive(self.gmm_examples, "gmm_examples", allow_none=True)
        positive(self.data_init_examples, "data_init_examples")
        positive(self.pretrain_epochs, "pretrain_epochs", allow_zero=True)
        if not 0.0 <= self.pretrain_dropout < 1.0:
            raise ConfigError(f"must lie in [0, 1), got {self.pretrain_dropout}", key="pretrain_dropout")
        positive(self.data_init_scale, "data_init_scale")
        if self.augment is not None:
            check_transform(self.augment, "augment", hint=", or null for no augmentation")

    def gmm_init_epochs(self, n_facets: int) -> list[int]:
        """``gmm_init_epoch`` as one epoch per facet."""
        return _per_facet(self.gmm_init_epoch, n_facets, "gmm_init_epoch", "epoch")

    def gmm_methods(self, n_facets: int) -> list[str]:
        """``gmm_method`` as one method per facet."""
        return _per_facet(self.gmm_method, n_facets, "gmm_method", "method")


def _listed(value: Any) -> list:
    """A per-facet option's entries: the list itself, or the single value."""
    return list(value) if isinstance(value, (list, tuple)) else [value]


def _per_facet(value: Any, n_facets: int, key: str, what: str) -> list:
    """A per-facet option (one value for all facets, or a list with one per facet) as a list."""
    if isinstance(value, (list, tuple)):
        if len(value) != n_facets:
            raise ConfigError(f"has {len(value)} entries for {n_facets} facets; give one {what} per facet, "
                              "or a single one for all", key=key)
        return list(value)
    return [value] * n_facets


class MFCVAEModel(Model):
    """Multi-facet clustering VAE: ladder encoder/decoder, one MoG prior per facet.

    Built by mfcf as ``MFCVAEModel(config, info=..., facets=..., priors=[...], encoder=...,
    decoder=..., likelihood=..., elbo=..., schedule=...)``. Training minimises
    ``elbo(model, x, schedule(epoch, step))``; the schedule's state travels with the
    checkpoint through ``get_extra_state``.

    Example (after training)::

        probs = model.cluster_probs(x)                 # [(B, K_0), (B, K_1)]
        images = model.generate(facet=1, cluster=3, n=8, temperature=0.3)
        swapped = model.swap_facet(x_a, x_b, facet=0)  # x_a with x_b's facet-0 latent
    """

    name = "mfcvae"
    Config = MFCVAEModelConfig
    parts = ("priors", "encoder", "decoder", "likelihood", "elbo", "schedule")
    supported_facets = (1, None)

    def __init__(self, config: MFCVAEModelConfig, *, info: DataInfo, facets: Sequence[FacetSpec],
                 priors: Sequence[FacetPrior], encoder: Encoder, decoder: Decoder, likelihood: Likelihood,
                 elbo: ELBO, schedule: Schedule):
        super().__init__(config, info=info, facets=facets)
        if len(priors) != len(facets):
            raise ConfigError(f"got {len(priors)} priors for {len(facets)} facets; give one prior per facet",
                              key="facets")
        self.priors = nn.ModuleList(priors)
        self.encoder = encoder
        self.decoder = decoder
        self.likelihood = likelihood
        self.elbo = elbo
        self.schedule = schedule
        self._gmm_epochs = config.gmm_init_epochs(len(facets))
        self._gmm_methods = config.gmm_methods(len(facets))
        if config.gmm_init and max(self._gmm_epochs) >= schedule.epochs:
            raise ConfigError(f"{config.gmm_init_epoch} would initialise a prior at epoch {max(self._gmm_epochs)}, "
                              f"but the run has only {schedule.epochs} epochs (0-{schedule.epochs - 1}); lower it, "
                              "or set model.gmm_init=false to keep the priors as constructed", key="gmm_init_epoch")
        late = [epoch for epoch in config.gmm_refit_epochs if epoch >= schedule.epochs]
        if late:
            raise ConfigError(f"refit epoch(s) {late} lie beyond the run's {schedule.epochs} epochs "
                              f"(0-{schedule.epochs - 1}); lower them or drop them", key="gmm_refit_epochs")
        P = config.pretrain_epochs
        if P >= schedule.epochs:
            raise ConfigError(f"is {P}, but the run has only {schedule.epochs} epochs; the ELBO phase starts after the "
                              "pre-training, so lower it or raise trainer.epochs", key="pretrain_epochs")
        if config.gmm_init and min(self._gmm_epochs) < P:
            raise ConfigError(f"{config.gmm_init_epoch} fits a mixture before the {P} pre-training epochs "
                              f"(model.pretrain_epochs) have ended; set it to at least {P}", key="gmm_init_epoch")
        self.gmm_done = [False] * len(facets)  # per facet: its mixture has been fitted
        self._compiled_elbo: Optional[Callable[..., LossOutput]] = None

    # -- training --------------------------------------------------------------------------
    def training_loss(self, x: Tensor, *, epoch: int, step: int) -> LossOutput:
        coeffs = self.schedule(epoch, step)
        if self.config.augment is not None and self.training:
            x = transform(self.config.augment)(x)
        if epoch < self.config.pretrain_epochs:
            return self.autoencoder_loss(x, coeffs)
        return self._loss(x, coeffs)

    def autoencoder_loss(self, x: Tensor, coeffs: Coefficients) -> LossOutput:
        """The pre-training loss: -log p(x | decoder(mean of q(z_j | x̃) for every j)), batch mean,
        x̃ = x with ``pretrain_dropout`` (in training mode only).

        The ladder's gates are the schedule's (``coeffs.alpha_enc``, ``coeffs.alpha_dec``), so a
        progressive schedule pre-trains only the facets it has switched on."""
        p = self.config.pretrain_dropout
        inputs = F.dropout(x, p, training=self.training) if p > 0 else x
        codes = [q.mean for q in self.encoder(inputs, coeffs.alpha_enc)]
        recon = self.likelihood.log_prob(x, self.decoder(codes, coeffs.alpha_dec)).mean()
        return LossOutput(-recon, {"recon": recon.detach()})  # "recon": log p(x|z), as the ELBO logs it

    def _loss(self, x: Tensor, coeffs: Coefficients) -> LossOutput:
        if self._compiled_elbo is None:
            out = self.elbo(self, x, coeffs)
        else:
            # a new iteration: CUDA graphs (mode reduce-overhead) may reuse the last step's buffers
            torch.compiler.cudagraph_mark_step_begin()
            out = self._compiled_elbo(self, x, coeffs.on_device(x.device))
        return self._with_coefficients(out, coeffs, x.device)

    def compile_training(self, mode: str) -> None:
        """``trainer.compile``: compile the training loss with ``torch.compile(mode=mode)``.

        On a GPU the whole ELBO call -- encoder, decoder, priors, likelihood, every KL term,
        forward and backward -- becomes one graph (with ``reduce-overhead``, one CUDA graph):
        an eager step there is bound by the host launching ~500 small kernels (H200, paper
        MNIST model: eager 6.7 ms, compiled 5.0 ms, reduce-overhead 2.3 ms per step). On a CPU
        only the estimator's :meth:`~mfcf_ladder.elbos.MFCVAEELBOBase.densities` are compiled
        (fused C++ loops for the MoG and likelihood terms); the networks stay eager, because
        inductor's CPU code for them was slower than eager oneDNN (2-core CPU, paper MNIST model:
        full step over the bare network 1.07-1.11 eager, 1.04-1.08 (median 1.05) with compiled
        densities, ~1.4 with everything compiled). On the small CPU configs the compiled step
        is 0.99-1.04x the eager one: there compiling does not pay. ``benchmarks/speed/gpu.py``,
        ``step_overhead.py`` and ``throughput.py --compare-compile`` measure these.

        The schedule stays outside, in Python. The whole compiled ELBO gets its coefficients
        as 0-dim tensors (:meth:`Coefficients.on_device`); the compiled densities do not use
        them (the betas weight their results outside). Either way a progressive fade does not
        recompile. The last, smaller batch of an epoch costs one recompilation, validation
        (same code, no gradients, eval mode) one more; cluster assignment and sampling stay
        eager.
        """
        if self._device().type == "cuda":
            self._compile_whole_elbo(mode)
        else:
            self.elbo.compile_densities(mode)

    def _compile_whole_elbo(self, mode: str) -> None:
        self._compiled_elbo = torch.compile(self.elbo.__call__, mode=mode)

    @torch.no_grad()
    def validation_loss(self, x: Tensor, *, epoch: int) -> LossOutput:
        """Eval-mode loss: the autoencoder loss during pre-training, then the ELBO estimator's loss with
        the coefficients at (epoch, 0) (§9, D14)."""
        coeffs = self.schedule(epoch, 0)
        with self.evaluating():
            if epoch < self.config.pretrain_epochs:
                return self.autoencoder_loss(x, coeffs)
            return self._loss(x, coeffs)

    @staticmethod
    def _with_coefficients(out: LossOutput, coeffs: Coefficients, device: torch.device) -> LossOutput:
        # torch.full launches a fill, never a host->device copy that would synchronise
        for field in ("alpha_dec", "beta_z", "beta_c"):
            for j, value in enumerate(getattr(coeffs, field)):
                out.terms[f"{field}/{j}"] = torch.full((), value, device=device)
        return out

    def on_epoch_start(self, epoch: int, train: DataSplit) -> None:
        cfg = self.config
        if epoch == 0 and cfg.data_init:
            n = min(cfg.data_init_examples, len(train.images))
            rows = np.sort(self._random_state().choice(len(train.images), n, replace=False))
            self.data_init(train.images[torch.from_numpy(rows).to(train.images.device)])
        due = [j for j, (at, done) in enumerate(zip(self._gmm_epochs, self.gmm_done)) if epoch == at and not done]
        if cfg.gmm_init and due:
            self.gmm_init(train.images, facets=due)

    def on_epoch_end(self, epoch: int, train: DataSplit) -> None:
        fitted = [j for j, done in enumerate(self.gmm_done) if done]
        if self.config.gmm_init and epoch in self.config.gmm_refit_epochs and fitted:
            self.gmm_init(train.images, facets=fitted, refit=True)

    def _random_state(self) -> np.random.RandomState:
        """A fresh generator seeded with ``gmm_seed`` (``None``: the trainer's seed), for the
        examples of the data-dependent initialisation and for the mixture fits."""
        seed = self.config.gmm_seed if self.config.gmm_seed is not None else torch.initial_seed() % 2**32
        return np.random.RandomState(seed)

    def data_init(self, images: Tensor) -> None:
        """Data-dependent initialisation of encoder and decoder on ``images`` (§5.2).

        Runs in train mode with all coefficients 1, one posterior sample per example; batch-norm
        running statistics are updated by this one pass, or by two with ``data_init_mode:
        official``, which first runs the official code's plain forward pass.
        """
        device = self._device()
        official = self.config.data_init_mode == "official"

        def forward() -> None:
            zs = [q.rsample() for q in self.encoder(images.to(device))]
            self.decoder(zs)

        was_training = self.training
        self.train()
        try:
            if official:
                with torch.no_grad():
                    forward()
            data_dependent_init(nn.ModuleList([self.encoder, self.decoder]), forward, scale=self.config.data_init_scale,
                                official=official)
        finally:
            self.train(was_training)

    @torch.no_grad()
    def gmm_init(self, images: Tensor, facets: Sequence[int] | None = None, *, refit: bool = False) -> None:
        """Fit a GMM per facet (``facets``; default: all) to the posterior means of ``images``
        and copy it into the priors (what is copied: ``gmm_fit``; a ``refit`` copies at least
        means and covariances, which are ``gmm_covariance``). Deterministic given ``gmm_seed``."""
        cfg = self.config
        random_state = self._random_state()
        if cfg.gmm_examples is not None and cfg.gmm_examples < len(images):
            chosen = np.sort(random_state.choice(len(images), cfg.gmm_examples, replace=False))
            images = images[torch.from_numpy(chosen).to(images.device)]
        features = encode_means(self.encoder, images, chunk_size=cfg.gmm_chunk_size, bn_mode=cfg.gmm_bn_mode,
                                device=self._device(), random_state=random_state)
        chosen_facets = range(len(self.facets)) if facets is None else sorted(facets)
        for j in chosen_facets:
            prior, facet, feats = self.priors[j], self.facets[j], features[j]
            with threadpool_limits(limits=torch.get_num_threads()):  # scikit-learn's pools busy-wait on shared cores
                mixture = GMM_METHODS[self._gmm_methods[j]](feats, facet.n_clusters, random_state, cfg.gmm_n_init,
                                                             cfg.gmm_covariance, cfg.gmm_neighbours)
            means = torch.from_numpy(mixture.means)
            if cfg.gmm_fit == "means" and not refit:
                prior.initialise(means, torch.full_like(means, cfg.gmm_variance))
            elif cfg.gmm_fit != "all":
                prior.initialise(means, torch.from_numpy(mixture.covariances))
            else:
                prior.initialise(means, torch.from_numpy(mixture.covariances), torch.from_numpy(mixture.weights))
            self.gmm_done[j] = True

    # -- state -----------------------------------------------------------------------------
    def get_extra_state(self) -> dict[str, Any]:
        return {"schedule": self.schedule.state_dict(), "gmm_done": list(self.gmm_done)}

    def set_extra_state(self, state: dict[str, Any]) -> None:
        self.schedule.load_state_dict(state["schedule"])
        done = state.get("gmm_done", False)
        # checkpoints before per-facet initialisation epochs hold one bool for all facets
        self.gmm_done = list(done) if isinstance(done, list) else [bool(done)] * len(self.facets)

    # -- clustering ------------------------------------------------------------------------
    @torch.no_grad()
    def cluster_probs(self, x: Tensor) -> list[Tensor]:
        with self.evaluating():
            posteriors = self.encoder(x)
            if self.config.assignment == "mean":
                return [prior.responsibilities(q.mean) for prior, q in zip(self.priors, posteriors)]
            return [torch.softmax(prior.log_weights() + prior.expected_component_log_prob(q), dim=-1)
                    for prior, q in zip(self.priors, posteriors)]

    # -- sampling (eval mode, no grad, no side effects) ------------------------------------
    @torch.no_grad()
    def posterior_means(self, x: Tensor) -> list[Tensor]:
        """Mean of q(z_j | x) for every facet: [(B, D_j)]."""
        with self.evaluating():
            return [q.mean for q in self.encoder(x)]

    @torch.no_grad()
    def decode_mean(self, zs: Sequence[Tensor]) -> Tensor:
        """The mean image of p(x | z) for one latent per facet: (B, *data_shape)."""
        with self.evaluating():
            return self.likelihood.mean(self.decoder(list(zs)))

    @torch.no_grad()
    def generate(self, facet: int, cluster: int, n: int, *, temperature: float = 1.0,
                 generator: torch.Generator | None = None) -> Tensor:
        """``n`` mean images whose facet ``facet`` latent is drawn from cluster ``cluster``.

        Every other facet k is held at one draw (c_k ~ p(c_k), z_k ~ p(z_k | c_k)) shared by all
        ``n`` images, so they differ only in the chosen facet. ``temperature`` scales the prior's
        standard deviation (§7.4). ``generator`` (on the model's device) makes the draw
        reproducible without touching the global RNG.
        """
        self._check_facet(facet)
        if not 0 <= cluster < self.facets[facet].n_clusters:
            raise ValueError(f"facet {facet} has clusters 0..{self.facets[facet].n_clusters - 1}, got {cluster}")
        zs = []
        for j, prior in enumerate(self.priors):
            if j == facet:
                clusters = torch.full((n,), cluster, dtype=torch.long, device=self._device())
                zs.append(prior.sample(clusters, temperature=temperature, generator=generator))
            else:
                c = prior.sample_clusters(1, generator=generator)
                zs.append(prior.sample(c, temperature=temperature, generator=generator).expand(n, -1))
        return self.decode_mean(zs)

    @torch.no_grad()
    def swap_facet(self, x_a: Tensor, x_b: Tensor, facet: int) -> Tensor:
        """Decode x_a's posterior means with facet ``facet`` taken from x_b (same batch size)."""
        self._check_facet(facet)
        if len(x_a) != len(x_b):
            raise ValueError(f"x_a and x_b need the same batch size, got {len(x_a)} and {len(x_b)}")
        zs = self.posterior_means(x_a)
        zs[facet] = self.posterior_means(x_b)[facet]
        return self.decode_mean(zs)

    # -- helpers ---------------------------------------------------------------------------
    def _check_facet(self, facet: int) -> None:
        if not 0 <= facet < self.n_facets:
            raise ValueError(f"facet must be in 0..{self.n_facets - 1}, got {facet}")

    def _device(self) -> torch.device:
        return next(self.parameters()).device

