"""The autoencoder baselines (ae_kmeans, dec, idec, vade): the two phases, their initialisation,
DEC's target distribution, VaDE's reuse of the registered prior and ELBO, determinism, resume
across the phase boundary, and early errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.cluster import KMeans
from sklearn.mixture import GaussianMixture

import mfcf
from mfcf.engine.build import build, resolve
from mfcf.engine.checkpoint import load_checkpoint
from mfcf.errors import ConfigError, TrainingError
from mfcf_baselines.dec import DECModel, student_t_log_probs, target_log_probs

MODELS = ["ae_kmeans", "dec", "idec", "vade"]


def built(cfg):
    return build(mfcf.load_config(base=cfg))


def grads_of(module):
    return [p.grad for p in module.parameters()]


# -- the two phases --------------------------------------------------------------------------
@pytest.mark.parametrize("model", MODELS)
def test_pretraining_trains_only_the_autoencoder(ae_config, model):
    exp = built(ae_config(model))
    m, x = exp.model, exp.train.images[:64]
    out = m.training_loss(x, epoch=1, step=0)
    expected = -m.likelihood.log_prob(x, m.decoder([m.encoder(x)[0].mean])).mean()
    torch.testing.assert_close(out.loss, expected)
    assert set(out.terms) == {"recon"}
    out.loss.backward()
    assert all(g is not None for g in grads_of(m.decoder))
    clustering = [p for name, p in m.named_parameters() if not name.startswith(("encoder.", "decoder."))]
    assert all(p.grad is None for p in clustering)  # centres / prior untouched, so Adam skips them
    with pytest.raises(TrainingError, match="trainer.epochs must be at least 3"):
        m.training_loss(x, epoch=2, step=0)  # the clustering phase before its initialisation


def test_pretrain_dropout_corrupts_only_the_input(ae_config):
    m = built(ae_config("dec", pretrain_dropout=0.5)).model
    x = torch.rand(32, 1, 8, 8)
    torch.manual_seed(0)
    loss = m.training_loss(x, epoch=0, step=0).loss
    torch.manual_seed(0)
    noisy = torch.nn.functional.dropout(x, 0.5)
    torch.testing.assert_close(loss, -m.likelihood.log_prob(x, m.decoder([m.encoder(noisy)[0].mean])).mean())
    m.eval()
    torch.testing.assert_close(m.validation_loss(x, epoch=0).loss, m.reconstruction(x).mean())


def test_ae_kmeans_runs_kmeans_once_on_the_codes(ae_config):
    exp = built(ae_config("ae_kmeans", seed=7))
    m = exp.model
    m.on_epoch_start(1, exp.train)
    assert not bool(m.initialised)
    m.on_epoch_start(2, exp.train)
    codes = m.encode(exp.train.images).double().numpy()
    reference = KMeans(10, n_init=10, random_state=7).fit(codes)
    np.testing.assert_allclose(m.centres.numpy(), reference.cluster_centers_, rtol=1e-6)
    np.testing.assert_array_equal(m.assign(exp.train.images)[0].numpy(), reference.labels_)
    before = m.centres.clone()
    with torch.no_grad():
        m.encoder.heads[0].weight.mul_(2)
    m.on_epoch_start(3, exp.train)  # later epochs never refit
    assert torch.equal(m.centres, before)
    out = m.training_loss(exp.train.images[:8], epoch=3, step=0)
    out.loss.backward()
    assert all(p.grad is None for p in m.parameters())


def test_ae_kmeans_weights_do_not_move_after_kmeans(ae_config):
    states = []
    cfg = ae_config("ae_kmeans", pretrain_epochs=2, epochs=4)
    mfcf.train(cfg, quiet=True, on_epoch_end=lambda row, run: states.append(
        {k: v.clone() for k, v in load_checkpoint(run.checkpoint)["model"].items()}))
    after_pretraining, after_kmeans, last = states[1], states[2], states[3]
    assert not torch.equal(after_pretraining["centres"], after_kmeans["centres"])
    assert all(torch.equal(after_kmeans[k], last[k]) for k in last)
    assert all(torch.equal(after_pretraining[k], after_kmeans[k]) for k in last if k.startswith("encoder."))


# -- DEC / IDEC ------------------------------------------------------------------------------
def test_student_t_and_target_formulas():
    z = torch.tensor([[0.0], [2.0]])
    centres = torch.tensor([[0.0], [1.0]])
    q = student_t_log_probs(z, centres, alpha=1.0).exp()
    # (1 + d^2)^-1: row 0 -> [1, 1/2], row 1 -> [1/5, 1/2]
    torch.testing.assert_close(q, torch.tensor([[2 / 3, 1 / 3], [2 / 7, 5 / 7]]))
    q3 = student_t_log_probs(z, centres, alpha=3.0).exp()  # (1 + d^2/3)^-2
    row1 = torch.tensor([(1 + 4 / 3) ** -2, (1 + 1 / 3) ** -2])
    torch.testing.assert_close(q3[1], row1 / row1.sum())
    freq = q.sum(0)
    p = target_log_probs(q.log(), freq.log()).exp()
    expected = q ** 2 / freq
    torch.testing.assert_close(p, expected / expected.sum(-1, keepdim=True))
    assert (p.max(-1).values > q.max(-1).values).all()  # sharper than q


def full_target(m: DECModel, images: torch.Tensor) -> torch.Tensor:
    """DEC's target matrix computed the textbook way, over the whole training split."""
    with torch.no_grad():
        q = student_t_log_probs(m.encode(images), m.centres, m.config.alpha).exp()
    p = q ** 2 / q.sum(0)
    return p / p.sum(-1, keepdim=True)


def test_dec_target_equals_the_full_matrix_and_stays_fixed_between_updates(ae_config):
    exp = built(ae_config("dec", pretrain_epochs=1, epochs=6, target_update_epochs=2))
    m, train = exp.model, exp.train
    m.on_epoch_start(1, train)
    reference = full_target(m, train.images)
    rows = torch.arange(0, len(train), 7)
    with torch.no_grad():
        ours = target_log_probs(m._target_q(train.images[rows]), m.target_log_freq).exp()
    torch.testing.assert_close(ours, reference[rows], atol=1e-6, rtol=1e-5)

    optimiser = torch.optim.Adam([p for p in m.parameters() if p.requires_grad], lr=1e-2)
    for step in range(5):
        optimiser.zero_grad()
        m.training_loss(train.images[step * 100:(step + 1) * 100], epoch=1, step=step).loss.backward()
        optimiser.step()
    assert m.decoder.output.weight.grad is None  # DEC drops the decoder after pre-training
    m.on_epoch_start(2, train)  # not an update epoch (every 2 from epoch 1)
    with torch.no_grad():
        still = target_log_probs(m._target_q(train.images[rows]), m.target_log_freq).exp()
    torch.testing.assert_close(still, reference[rows], atol=1e-6, rtol=1e-5)
    m.on_epoch_start(3, train)
    moved = full_target(m, train.images)
    assert not torch.allclose(moved, reference, atol=1e-3)
    with torch.no_grad():
        updated = target_log_probs(m._target_q(train.images[rows]), m.target_log_freq).exp()
    torch.testing.assert_close(updated, moved[rows], atol=1e-6, rtol=1e-5)


@pytest.mark.parametrize("model, options", [("dec", {}), ("idec", {"gamma": 0.5})])
def test_dec_and_idec_losses(ae_config, model, options):
    exp = built(ae_config(model, pretrain_epochs=0, **options))
    m = exp.model
    m.on_epoch_start(0, exp.train)
    x = exp.train.images[:50]
    out = m.training_loss(x, epoch=0, step=0)
    log_p = target_log_probs(m._target_q(x), m.target_log_freq)
    log_q = student_t_log_probs(m.code(x), m.centres, 1.0)
    kl = (log_p.exp() * (log_p - log_q)).sum(-1).mean()
    torch.testing.assert_close(out.terms["kl"], kl.detach())
    out.loss.backward()
    assert m.centres.grad is not None and torch.count_nonzero(m.centres.grad) > 0
    assert all(p.grad is None for p in m.target_encoder.parameters())
    if model == "dec":
        torch.testing.assert_close(out.loss, kl)
        assert m.decoder.output.weight.grad is None
    else:
        recon = (-m.likelihood.log_prob(x, m.decoder([m.code(x)])) / 64).mean()
        torch.testing.assert_close(out.loss, recon + 0.5 * kl)
        assert m.decoder.output.weight.grad is not None


def test_dec_snapshot_stays_in_eval_mode(ae_config):
    cfg = ae_config("dec")
    cfg["encoder"]["batch_norm"] = True
    m = built(cfg).model
    m.train()
    assert m.encoder.training and not m.target_encoder.training


# -- VaDE ------------------------------------------------------------------------------------
def test_vade_initialises_the_registered_prior_from_a_gmm(ae_config):
    exp = built(ae_config("vade", seed=5))
    m = exp.model
    assert type(m.priors[0]).name == "mog" and type(m.elbo).name == "mfcvae_analytic"
    m.on_epoch_start(2, exp.train)
    codes = m.encode(exp.train.images).double().numpy()
    start = KMeans(10, n_init=10, random_state=5).fit(codes).cluster_centers_
    gmm = GaussianMixture(10, covariance_type="diag", means_init=start, random_state=5).fit(codes)
    prior = m.priors[0]
    np.testing.assert_allclose(prior.means.detach().numpy(), gmm.means_, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(prior.variances().detach().numpy(), gmm.covariances_, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(prior.log_weights().exp().detach().numpy(), gmm.weights_, rtol=1e-4)
    np.testing.assert_array_equal(m.assign(exp.train.images)[0].numpy(), gmm.predict(codes))


def test_vade_loss_is_the_registered_elbo_with_the_schedule_counted_from_pretraining(ae_config):
    cfg = ae_config("vade", pretrain_epochs=2, epochs=6)
    cfg["schedule"] = {"name": "constant", "kl_warmup_batches": 20}
    exp = built(cfg)
    m, x = exp.model, exp.train.images[:64]
    m.on_epoch_start(2, exp.train)
    torch.manual_seed(0)
    out = m.training_loss(x, epoch=3, step=4)
    coeffs = m.schedule(1, 4)  # epoch 3 is the ELBO's epoch 1
    assert coeffs.beta_z[0] == pytest.approx((12 + 4) / 20)
    torch.manual_seed(0)
    reference = m.elbo(m, x, coeffs)
    torch.testing.assert_close(out.loss, reference.loss)
    assert {"elbo", "recon", "kl_z", "kl_c"} <= set(out.terms)


def test_vade_analytic_assignment(ae_config):
    exp = built(ae_config("vade", assignment="analytic"))
    m = exp.model
    m.on_epoch_start(2, exp.train)
    x = exp.test.images
    q = m.encoder(x)[0]
    prior = m.priors[0]
    expected = torch.softmax(prior.log_weights() + prior.expected_component_log_prob(q), dim=-1)
    torch.testing.assert_close(m.cluster_probs(x)[0], expected)


# -- whole runs ------------------------------------------------------------------------------
@pytest.mark.parametrize("model", MODELS)
def test_two_runs_with_one_seed_are_identical(ae_config, tmp_path, model):
    cfg = ae_config(model, pretrain_epochs=1, epochs=3, pretrain_dropout=0.1)
    cfg["data"]["val_fraction"] = 0.1  # the validation pass must not disturb anything either
    runs = [mfcf.train(cfg, run_dir=tmp_path / f"run{i}", quiet=True) for i in range(2)]
    a, b = (load_checkpoint(r / "model.pt")["model"] for r in runs)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a if isinstance(a[k], torch.Tensor))
    assert bool(a["initialised"])
    evaluations = [mfcf.evaluate(run)["facets"] for run in runs]
    assert evaluations[0] == evaluations[1]


def test_validation_scores_start_once_the_clusters_exist(ae_config):
    import csv
    cfg = ae_config("dec", pretrain_epochs=2, epochs=4)
    cfg["data"]["val_fraction"] = 0.2
    cfg["trainer"]["score_every_epochs"] = 1
    with open(mfcf.train(cfg, quiet=True) / "metrics.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    scored = [r["val/facet0/label/hungarian_acc"] != "" for r in rows]
    assert scored == [False, False, True, True]  # k-means runs at the start of epoch 2


@pytest.mark.parametrize("model", ["dec", "vade"])
def test_resume_mid_epoch_after_the_initialisation_is_bit_identical(ae_config, tmp_path, monkeypatch, model):
    """Killed inside the clustering phase (after a mid-epoch checkpoint), the resumed run ends
    with exactly the weights of an uninterrupted one: the DEC target snapshot and the schedule
    travel with the checkpoint and the initialisation is not repeated."""
    cfg = ae_config(model, pretrain_epochs=2, epochs=4)
    cfg["trainer"]["checkpoint_every_steps"] = 5  # 12 steps per epoch
    reference = load_checkpoint(mfcf.train(cfg, run_dir=tmp_path / "ref", quiet=True) / "model.pt")["model"]

    cls = type(built(cfg).model)
    original, calls = cls.training_loss, {"n": 0}

    def dies_at_step_31(self, x, *, epoch, step):
        calls["n"] += 1
        if calls["n"] == 31:  # epoch 2, step 6: after the checkpoint at global step 30
            raise KeyboardInterrupt
        return original(self, x, epoch=epoch, step=step)

    monkeypatch.setattr(cls, "training_loss", dies_at_step_31)
    with pytest.raises(KeyboardInterrupt):
        mfcf.train(cfg, run_dir=tmp_path / "killed", quiet=True)
    monkeypatch.setattr(cls, "training_loss", original)
    state = load_checkpoint(tmp_path / "killed" / "checkpoints" / "last.pt")
    assert (state["epoch"], state["step"]) == (2, 6)  # mid-epoch, in the clustering phase
    resumed = load_checkpoint(mfcf.resume(tmp_path / "killed", quiet=True) / "model.pt")["model"]
    assert all(torch.equal(reference[k], resumed[k]) for k in reference if isinstance(reference[k], torch.Tensor))


def test_a_run_too_short_for_the_clustering_says_so(ae_config):
    run = mfcf.train(ae_config("dec", pretrain_epochs=2, epochs=2), quiet=True)
    with pytest.raises(TrainingError, match=r"start of epoch 2 \(model.pretrain_epochs\).*at least 3"):
        mfcf.evaluate(run)


# -- early errors ----------------------------------------------------------------------------
def config_error(cfg) -> ConfigError:
    with pytest.raises(ConfigError) as err:
        build(resolve(mfcf.load_config(base=cfg)))
    return err.value


def test_vade_needs_more_epochs_than_pretraining(ae_config):
    err = config_error(ae_config("vade", pretrain_epochs=4, epochs=4))
    assert err.key == "trainer.epochs" and "must exceed model.pretrain_epochs (4)" in str(err)


@pytest.mark.parametrize("model, drop, key, message", [
    ("vade", "elbo", "elbo", "model 'vade' needs a `elbo:` section"),
    ("dec", "decoder", "decoder", "model 'dec' needs a `decoder:` section"),
    ("ae_kmeans", "likelihood", "likelihood", "available: bernoulli, gaussian"),
])
def test_missing_parts_are_named(ae_config, model, drop, key, message):
    cfg = ae_config(model)
    del cfg[drop]
    err = config_error(cfg)
    assert err.key == key and message in str(err)


def test_vade_needs_a_prior_and_one_facet(ae_config):
    cfg = ae_config("vade")
    del cfg["facets"][0]["prior"]
    assert config_error(cfg).key == "facets.0.prior"
    cfg = ae_config("idec")
    cfg["facets"].append({"latent_dim": 2, "n_clusters": 3})
    err = config_error(cfg)
    assert err.key == "facets" and "supports 1 facet(s)" in str(err)


@pytest.mark.parametrize("model, option, key", [
    ("dec", {"alpha": 0}, "model.alpha"),
    ("dec", {"pretrain_dropout": 1.0}, "model.pretrain_dropout"),
    ("idec", {"gamma": -1}, "model.gamma"),
    ("vade", {"gmm_fit": "weights"}, "model.gmm_fit"),
    ("ae_kmeans", {"pretrain_epochs": -1}, "model.pretrain_epochs"),
])
def test_bad_options_name_their_key(ae_config, model, option, key):
    assert config_error(ae_config(model, **option)).key == key
