"""Config stage 1 (file, overrides, top level) and stage 2 (component sections)."""

from __future__ import annotations

import pytest

from mfcf.config import load_config, parse_override
from mfcf.engine.build import resolve
from mfcf.errors import ConfigError, UnknownComponentError, UnknownKeyError


@pytest.mark.parametrize("text, expected", [
    ("trainer.lr=1e-3", ("trainer.lr", 0.001)),
    ("trainer.epochs=5", ("trainer.epochs", 5)),
    ("trainer.device=cpu", ("trainer.device", "cpu")),
    ("encoder.dims=[500, 2000]", ("encoder.dims", [500, 2000])),
    ("facets.0.prior={name: mog, covariance: full}", ("facets.0.prior", {"name": "mog", "covariance": "full"})),
    ("trainer.threads=null", ("trainer.threads", None)),
    ("trainer.run_name=", ("trainer.run_name", None)),
    ("model.flag=true", ("model.flag", True)),
])
def test_override_parsing(text, expected):
    assert parse_override(text) == expected


@pytest.mark.parametrize("text", ["trainer.lr", "=3", "trainer.lr 3"])
def test_override_without_equals_is_an_error(text):
    with pytest.raises(ConfigError, match="key=value"):
        parse_override(text)


def test_override_with_unparseable_value():
    with pytest.raises(ConfigError, match="does not parse as YAML") as err:
        parse_override("encoder.dims=[1, 2")
    assert err.value.key == "encoder.dims"


def test_overrides_reach_list_items_and_new_keys(toy_config):
    cfg = load_config(base=toy_config, overrides=["facets.1.n_clusters=7", "trainer.grad_clip=1.5"])
    assert cfg["facets"][1]["n_clusters"] == 7
    assert cfg["trainer"]["grad_clip"] == 1.5


def test_interpolation_is_resolved(toy_config):
    toy_config["data"]["split_seed"] = "${trainer.seed}"
    assert load_config(base=toy_config)["data"]["split_seed"] == 1


def test_missing_file(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "nope.yaml")


def test_unparseable_file(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("data: {name: x\nmodel: [")
    with pytest.raises(ConfigError, match="does not parse as YAML"):
        load_config(path)


def test_file_must_be_a_mapping(tmp_path):
    path = tmp_path / "list.yaml"
    path.write_text("- a\n- b\n")
    with pytest.raises(ConfigError, match="must hold a mapping"):
        load_config(path)


def test_unknown_top_level_key_suggests_a_close_match(toy_config):
    toy_config["trainr"] = {}
    with pytest.raises(UnknownKeyError) as err:
        load_config(base=toy_config)
    assert "unknown config key 'trainr'" in str(err.value)
    assert "did you mean: trainer" in str(err.value)


def test_no_target_or_code_in_configs(toy_config):
    toy_config["_target_"] = "os.system"
    with pytest.raises(UnknownKeyError, match="_target_"):
        load_config(base=toy_config)


def test_mistyped_trainer_key(toy_config):
    toy_config["trainer"]["epochz"] = 3
    with pytest.raises(UnknownKeyError) as err:
        load_config(base=toy_config)
    assert err.value.key == "trainer.epochz"
    assert "did you mean: epochs" in str(err.value)


@pytest.mark.parametrize("override, key, message", [
    ("trainer.epochs=abc", "trainer.epochs", "could not be converted to Integer"),
    ("trainer.epochs=0", "trainer.epochs", "greater than 0"),
    ("trainer.lr=-1", "trainer.lr", "greater than 0"),
    ("trainer.device=tpu", "trainer.device", "auto, cpu, cuda"),
    ("trainer.precision=fp16", "trainer.precision", "fp32, bf16"),
    ("trainer.compile=off", "trainer.compile", "eager, default, reduce-overhead"),
    ("facets.0.latent_dim=-2", "facets.0.latent_dim", "greater than 0"),
    ("facets.1.n_clusters=0", "facets.1.n_clusters", "2 or more"),
    ("data.batch_size=0", "data.batch_size", "greater than 0"),
    ("data.val_fraction=1.5", "data.val_fraction", "[0, 1)"),
])
def test_bad_values_name_the_key(toy_config, override, key, message):
    with pytest.raises(ConfigError) as err:
        resolve(load_config(base=toy_config, overrides=[override]))
    assert err.value.key == key
    assert message in str(err.value)


def test_missing_facet_field(toy_config):
    del toy_config["facets"][0]["n_clusters"]
    with pytest.raises(ConfigError) as err:
        load_config(base=toy_config)
    assert err.value.key == "facets.0.n_clusters"


def test_unknown_component_lists_what_exists(toy_config):
    toy_config["model"]["name"] = "toy_softkmean"
    with pytest.raises(UnknownComponentError) as err:
        resolve(load_config(base=toy_config))
    text = str(err.value)
    assert "no model named 'toy_softkmean' (config key: model.name)" in text
    assert "did you mean: toy_softkmeans" in text
    assert "toy_kmeans" in text and "entry-point group" in text
    assert isinstance(err.value, LookupError) and not isinstance(err.value, KeyError)


def test_component_section_is_validated_against_its_config(toy_config):
    toy_config["model"]["noize"] = 0.3
    with pytest.raises(UnknownKeyError) as err:
        resolve(load_config(base=toy_config))
    assert err.value.key == "model.noize"
    assert "did you mean: noise" in str(err.value)


def test_dataset_section_lists_core_keys_too(toy_config):
    toy_config["data"]["batchsize"] = 3
    with pytest.raises(ConfigError, match="core data keys: name, batch_size"):
        resolve(load_config(base=toy_config))


def test_unused_section_is_rejected(toy_config):
    toy_config["encoder"] = {"name": "whatever"}
    with pytest.raises(ConfigError, match="does not use the `encoder:` section") as err:
        resolve(load_config(base=toy_config))
    assert err.value.key == "encoder"


def test_facet_count_the_model_cannot_host(toy_config):
    toy_config["model"] = {"name": "toy_kmeans"}
    with pytest.raises(ConfigError, match="supports 1 facet") as err:
        resolve(load_config(base=toy_config))
    assert err.value.key == "facets"


def test_resolved_config_fills_every_default(toy_config):
    resolved = resolve(load_config(base=toy_config)).config
    assert resolved["model"] == {"name": "toy_softkmeans", "noise": 0.1, "nan_at_epoch": -1, "nan_at_step": 0}
    assert resolved["data"]["eval_batch_size"] == 1024 and resolved["data"]["n_train"] == 240
    assert resolved["trainer"]["checkpoint_every_steps"] == 0
    # resolving the resolved config is a fixed point (what `--resume` relies on)
    assert resolve(resolved).config == resolved
