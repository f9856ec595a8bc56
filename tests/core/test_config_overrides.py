"""Assembling variants from the command line: a mapping replaces a section, `~key` deletes, a
switched component drops the old one's options (saying which), `trainer.stop_after_epochs`
shortens any run, and `mfcf config show` makes every check training makes before it starts."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

import mfcf
from mfcf.cli import main
from mfcf.engine.build import resolve
from mfcf.errors import ConfigError, UnknownComponentError

SHAPES = Path(__file__).parents[2] / "configs" / "shapes_mfcvae.yaml"


def test_a_mapping_value_replaces_the_section():
    cfg = mfcf.load_config(SHAPES, ["schedule={name: constant, beta_z: 0.5}"])
    assert cfg["schedule"] == {"name": "constant", "beta_z": 0.5}
    assert resolve(cfg).config["schedule"]["beta_z"] == 0.5


def test_a_list_value_replaces_the_list():
    cfg = mfcf.load_config(SHAPES, ["facets=[{latent_dim: 3, n_clusters: 4, prior: {name: mog}}]"])
    assert cfg["facets"] == [{"latent_dim": 3, "n_clusters": 4, "prior": {"name": "mog"}}]


def test_tilde_deletes_a_key_a_section_or_a_list_item():
    cfg = mfcf.load_config(SHAPES, ["~model.gmm_init_epoch", "~facets.0", "~trainer"])
    assert "gmm_init_epoch" not in cfg["model"] and len(cfg["facets"]) == 1 and "trainer" not in cfg
    assert cfg["facets"][0]["n_clusters"] == 10  # what was facet 1
    with pytest.raises(ConfigError, match=r"override '~model.nope': there is no key 'model.nope' to delete"):
        mfcf.load_config(SHAPES, ["~model.nope"])


def test_switching_a_component_drops_the_options_it_does_not_have(capsys):
    cfg = mfcf.load_config(SHAPES, ["schedule.name=constant"])
    assert cfg["schedule"] == {"name": "constant"}
    err = capsys.readouterr().err
    assert err.strip() == ("schedule.name=constant: dropped schedule.epochs_per_step, schedule.fade_in_batches "
                           "(options of schedule 'progressive' that 'constant' does not have)")
    resolved = resolve(mfcf.load_config(SHAPES, ["schedule.name=constant", "schedule.beta_z=0.5"]))
    assert resolved.config["schedule"]["beta_z"] == 0.5


def test_switching_keeps_shared_options_and_core_data_keys():
    cfg = mfcf.load_config(SHAPES, ["schedule.kl_warmup_batches=7", "schedule.name=constant",
                                    "data.name=digits"])
    assert cfg["schedule"] == {"name": "constant", "kl_warmup_batches": 7}  # both schedules have it
    assert cfg["data"] == {"name": "digits", "image_size": 32, "batch_size": 128, "eval_batch_size": 1000,
                           "val_fraction": 0.1}  # image_size: an option of both datasets


def test_switching_a_facet_prior_spells_the_key_as_overrides_do(capsys):
    cfg = mfcf.load_config(SHAPES, ["facets.0.prior={name: mog, covariance: full, init_variance: 0.5}",
                                    "facets.0.prior.name=mog"])
    assert cfg["facets"][0]["prior"]["init_variance"] == 0.5  # the same name: nothing dropped
    assert capsys.readouterr().err == ""


def test_switching_to_an_unknown_component_is_named_by_resolution():
    cfg = mfcf.load_config(SHAPES, ["schedule.name=constnt"])
    with pytest.raises(UnknownComponentError, match="did you mean: constant"):
        resolve(cfg)


def test_stop_after_epochs_shortens_a_run_and_says_so(toy_config):
    toy_config["trainer"].update(epochs=6, stop_after_epochs=2)
    run = mfcf.train(toy_config, quiet=True)
    rows = (run / "metrics.csv").read_text().splitlines()
    assert [r.split(",")[0] for r in rows[1:]] == ["0", "1"]
    assert json.loads((run / "run.json").read_text())["status"] == "completed"
    assert "after 2 of the config's 6 training epochs" in mfcf.evaluate(run)["selection"]


def test_stop_after_epochs_beyond_the_run_is_refused(toy_config):
    toy_config["trainer"].update(epochs=3, stop_after_epochs=4)
    with pytest.raises(ConfigError, match=r"must be at most trainer.epochs \(3\).*trainer.stop_after_epochs"):
        mfcf.load_config(base=toy_config)


def test_a_schedule_mismatch_points_to_stop_after_epochs():
    with pytest.raises(ConfigError, match="set trainer.stop_after_epochs=N"):
        resolve(mfcf.load_config(SHAPES, ["trainer.epochs=5"]))


def test_config_show_makes_the_checks_training_makes(tmp_path, capsys):
    """A J = 3 config whose parts are sized for two facets resolves, but cannot be built."""
    config = tmp_path / "j3.yaml"
    config.write_text(yaml.safe_dump({
        "data": {"name": "digits", "batch_size": 64},
        "model": {"name": "mfcvae", "gmm_init_epoch": [1, 2]},
        "facets": [{"latent_dim": 2, "n_clusters": 3, "prior": {"name": "mog"}}] * 3,
        "encoder": {"name": "ladder_fc"}, "decoder": {"name": "ladder_fc"}, "likelihood": {"name": "bernoulli"},
        "elbo": {"name": "mfcvae_analytic"}, "schedule": {"name": "progressive", "epochs_per_step": [2, 2]},
        "trainer": {"epochs": 4, "runs_dir": str(tmp_path / "runs")},
    }))
    errors = []
    for command in (["config", "show"], ["train"]):
        assert main([*command, str(config)]) == 2
        errors.append(capsys.readouterr().err)
    assert errors[0] == errors[1] and errors[0].startswith("ConfigError:") and "encoder.backbone_dims" in errors[0]
    assert not (tmp_path / "runs").exists()
