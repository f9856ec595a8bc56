"""Bad config files and out-of-range values: one clean error naming the file or key, exit status
2 from the CLI, no traceback and no run directory left behind."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from mfcf.cli import main
from mfcf.config import MAX_DEPTH, MAX_FILE_BYTES, MAX_NODES, load_config, parse_override
from mfcf.engine.build import build, resolve, resolve_device
from mfcf.errors import ConfigError


@pytest.fixture
def config_file(tmp_path, toy_config):
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(toy_config))
    return path


@pytest.fixture
def mfcvae_config(toy_config):
    """The toy blobs under a small MFCVAE: every ladder component has a section to get wrong."""
    toy_config.update({
        "model": {"name": "mfcvae"},
        "facets": [{"latent_dim": 2, "n_clusters": 3, "prior": {"name": "mog"}}],
        "encoder": {"name": "ladder_fc", "backbone_dims": [8]},
        "decoder": {"name": "ladder_fc", "backbone_dims": [8], "rung_dims": [8]},
        "likelihood": {"name": "gaussian"},
        "elbo": {"name": "mfcvae_mc"},
        "schedule": {"name": "constant"}})
    return toy_config


def train_fails(capsys, toy_config, *args: str) -> str:
    """Run ``mfcf train *args`` in-process; check the clean failure and return stderr."""
    assert main(["train", *args, "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert not Path(toy_config["trainer"]["runs_dir"]).exists()
    return err


def config_error(cfg, *overrides: str) -> ConfigError:
    with pytest.raises(ConfigError) as err:
        resolve(load_config(base=cfg, overrides=overrides))
    return err.value


# -- config files ------------------------------------------------------------------------------

def test_file_that_is_not_utf8(tmp_path, toy_config, capsys):
    path = tmp_path / "latin1.yaml"
    path.write_bytes(yaml.safe_dump(toy_config).encode() + "# caf\xe9\n".encode("latin-1"))
    err = train_fails(capsys, toy_config, str(path))
    assert f"ConfigError: config file '{path}' is not UTF-8 text: byte 0xe9 at offset" in err
    assert "save it as UTF-8" in err


def test_deeply_nested_yaml(tmp_path, toy_config, capsys):
    path = tmp_path / "deep.yaml"
    path.write_text("data: " + "[" * 50_000 + "\n")
    err = train_fails(capsys, toy_config, str(path))
    assert f"config file '{path}', line 1: lists and mappings are nested more than {MAX_DEPTH} levels" in err


def test_alias_bomb_fails_fast(tmp_path, toy_config, capsys):
    lines = [yaml.safe_dump(toy_config), "x:", "  a: &a [x, x, x, x, x, x, x, x, x]"]
    lines += [f"  {c}: &{c} [{', '.join([f'*{p}'] * 9)}]" for p, c in zip("abcdefgh", "bcdefghi")]
    path = tmp_path / "bomb.yaml"
    path.write_text("\n".join(lines) + "\n")  # 9**9 = 387 million values once expanded
    err = train_fails(capsys, toy_config, str(path))
    assert f"config file '{path}', line" in err and f"more than {MAX_NODES:,} values" in err


def test_a_few_aliases_and_merge_keys_still_load(tmp_path, toy_config):
    toy_config.pop("facets")
    path = tmp_path / "aliases.yaml"
    path.write_text(yaml.safe_dump(toy_config) + "facets:\n  - &f {latent_dim: 2, n_clusters: 3}\n"
                    "  - {<<: *f, n_clusters: 2}\n")
    assert load_config(path)["facets"] == [{"latent_dim": 2, "n_clusters": 3}, {"latent_dim": 2, "n_clusters": 2}]


def test_recursive_alias(tmp_path, toy_config, capsys):
    path = tmp_path / "loop.yaml"
    path.write_text("data: &d {name: toy_blobs, again: *d}\n")
    err = train_fails(capsys, toy_config, str(path))
    assert f"config file '{path}', line 1: an alias is used inside the list or mapping it names" in err


def test_duplicate_key_names_the_key_file_and_both_lines(tmp_path, toy_config, capsys):
    path = tmp_path / "dup.yaml"
    path.write_text(yaml.safe_dump(toy_config) + "data: {name: toy_blobs}\n")
    first = 1 + yaml.safe_dump(toy_config).splitlines().index("data:")
    last = len(path.read_text().splitlines())
    err = train_fails(capsys, toy_config, str(path))
    assert (f"ConfigError: config file '{path}', line {last}: the key 'data' is given twice in one mapping "
            f"(first on line {first})") in err


def test_directory_given_as_config(tmp_path, toy_config):
    """`mfcf train .`: a real process, run where a stray run directory would show up."""
    res = subprocess.run([sys.executable, "-m", "mfcf.cli", "train", "."], capture_output=True, text=True,
                         cwd=tmp_path)
    assert res.returncode == 2 and "Traceback" not in res.stderr
    assert "ConfigError: config file '.' is a directory; give the path of a YAML file" in res.stderr
    assert list(tmp_path.iterdir()) == []


def test_unreadable_file(config_file, toy_config, capsys):
    """As root, in a process without the capabilities that let root read any file."""
    config_file.chmod(0)
    if os.geteuid() != 0:
        err = train_fails(capsys, toy_config, str(config_file))
    elif shutil.which("setpriv"):
        done = subprocess.run(["setpriv", "--bounding-set=-dac_override,-dac_read_search", sys.executable, "-m",
                               "mfcf.cli", "train", str(config_file)], capture_output=True, text=True, timeout=300)
        assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr
        err = done.stderr
    else:
        pytest.skip("as root this needs util-linux's setpriv to drop the permission-override capabilities")
    assert f"cannot read config file '{config_file}': Permission denied" in err


def test_file_larger_than_any_config(tmp_path, toy_config, capsys):
    path = tmp_path / "big.yaml"
    path.write_text(yaml.safe_dump(toy_config) + "#" * MAX_FILE_BYTES + "\n")
    err = train_fails(capsys, toy_config, str(path))
    assert f"config file '{path}' is {path.stat().st_size:,} bytes, more than the {MAX_FILE_BYTES:,}" in err


@pytest.mark.parametrize("text, message", [
    ("", "got nothing (it is empty)"),
    ("# nothing but a comment\n", "got nothing (it is empty)"),
    ("5\n", "got a value of type int"),
    ("1: x\n", "line 1: the key '1' is not a name (YAML reads it as !!int); quote it"),
    ("data:\n  on: 3\n", "line 2: the key 'on' is not a name (YAML reads it as !!bool)"),
    ("null: 3\n", "the key 'null' is not a name (YAML reads it as !!null)"),
    ("data: !!set {a, b}\n", "line 1: the tag !!set is not allowed"),
    ("data: !!python/object/apply:os.system [ls]\n", "the tag !!python/object/apply:os.system is not allowed"),
    pytest.param("data: " + "1" * 5000 + "\n", "does not parse as YAML", id="5000-digit-integer"),
])
def test_file_holding_no_plain_mapping(tmp_path, text, message):
    path = tmp_path / "c.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=f"config file '{path}'") as err:
        load_config(path)
    assert message in str(err.value)


def test_dates_stay_strings(toy_config):
    cfg = load_config(base=toy_config, overrides=["trainer.run_name=2024-01-31"])
    assert cfg["trainer"]["run_name"] == "2024-01-31"


# -- overrides ---------------------------------------------------------------------------------

@pytest.mark.parametrize("override, message", [
    ("facets.-1.latent_dim=3", "list indices count from 0 and cannot be negative"),
    ("facets[-1].latent_dim=3", "list indices count from 0 and cannot be negative"),
    ("trainer..lr=3", "the key has an empty part"),
    ("trainer.=3", "the key has an empty part"),
    ("model.x={a: 1, a: 2}", "line 1: the key 'a' is given twice in one mapping"),
    ("trainer.lr=!!python/name:os.system", "the tag !!python/name:os.system is not allowed"),
])
def test_bad_override_keys_and_values(toy_config, override, message):
    with pytest.raises(ConfigError) as err:
        load_config(base=toy_config, overrides=[override])
    assert message in str(err.value) and override in str(err.value)
    assert err.value.key == override.partition("=")[0]


@pytest.mark.parametrize("text, expected", [
    ("trainer.epochs=1e3", 1000), ("trainer.epochs='5'", 5), ("trainer.lr=2e-3", 0.002), ("trainer.lr=nan", "nan"),
])
def test_numbers_in_overrides(text, expected):
    value = parse_override(text)[1]
    assert value == expected and type(value) is type(expected)


# -- values out of range -----------------------------------------------------------------------

def test_nan_learning_rate_fails_before_the_run_directory(config_file, toy_config, capsys):
    err = train_fails(capsys, toy_config, str(config_file), "trainer.lr=nan")
    assert "ConfigError: must be a finite number, got nan (config key: trainer.lr)" in err


@pytest.mark.parametrize("override, key", [
    ("trainer.lr=inf", "trainer.lr"),
    ("trainer.lr=.nan", "trainer.lr"),
    ("trainer.lr=1e999", "trainer.lr"),
    ("trainer.grad_clip=nan", "trainer.grad_clip"),
    ("data.val_fraction=nan", "data.val_fraction"),
    ("model.gmm_variance=nan", "model.gmm_variance"),
    ("schedule.beta_z=nan", "schedule.beta_z"),
    ("likelihood.sigma=-inf", "likelihood.sigma"),
    ("facets.0.prior.init_variance=nan", "facets.0.prior.init_variance"),
])
def test_non_finite_floats_in_any_section(mfcvae_config, override, key):
    err = config_error(mfcvae_config, override)
    assert err.key == key and "must be a finite number" in str(err)


@pytest.mark.parametrize("override, key, message", [
    ("trainer.seed=-1", "trainer.seed", "must be a seed from 0 to 4294967295 (2**32 - 1), got -1"),
    ("trainer.seed=18446744073709551616", "trainer.seed", "got a number beyond 64 bits"),
    ("data.split_seed=-1", "data.split_seed", "must be a seed from 0 to 4294967295"),
    ("model.gmm_seed=4294967296", "model.gmm_seed", "got 4294967296"),
    ("trainer.log_every_steps=9223372036854775808", "trainer.log_every_steps", "integers must fit in 64 bits"),
    pytest.param("trainer.lr=" + "1" * 400, "trainer.lr", "integers must fit in 64 bits", id="400-digit-lr"),
    ("trainer.epochs=1e30", "trainer.epochs", "integers must fit in 64 bits"),
    ("trainer.epochs=1000001", "trainer.epochs", "must be at most 1,000,000"),
    ("trainer.threads=100000", "trainer.threads", "must be at most 1024"),
    ("trainer.device=cuda:x", "trainer.device", "must be auto, cpu, cuda or cuda:N"),
    ("trainer.runs_dir=''", "trainer.runs_dir", "must be a directory path"),
    ("model.gmm_init=5", "model.gmm_init", "must be true or false, got 5"),
    ("facets.0.n_clusters=1", "facets.0.n_clusters", "must be 2 or more"),
])
def test_numbers_out_of_range(mfcvae_config, override, key, message):
    err = config_error(mfcvae_config, override)
    assert err.key == key and message in str(err)


@pytest.mark.parametrize("overrides, key", [
    (["facets.0.latent_dim=1e9", "facets.0.n_clusters=1e6"], "facets.0.latent_dim"),
    (["facets.0.n_clusters=1e12"], "facets.0.n_clusters"),
    (["facets.0.latent_dim=1e6", "facets.0.prior.covariance=full"], "facets.0.latent_dim"),
])
def test_facet_too_large_for_memory(mfcvae_config, overrides, key):
    err = config_error(mfcvae_config, *overrides)
    assert err.key == key and "GiB" in str(err) and "of memory; lower n_clusters or latent_dim" in str(err)


def test_batch_larger_than_the_training_split(config_file, toy_config, capsys):
    toy_config["data"]["batch_size"] = 192  # 240 examples, 20 % held out for validation
    build(load_config(base=toy_config))
    err = train_fails(capsys, toy_config, str(config_file), "data.batch_size=193")
    assert ("ConfigError: 193 is more than the 192 examples of the training split; set data.batch_size to 192 or "
            "less (config key: data.batch_size)") in err


def test_cuda_index_beyond_the_gpus(monkeypatch):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    with pytest.raises(ConfigError, match="this machine has 1 GPU") as err:
        resolve_device("cuda:1")
    assert err.value.key == "trainer.device"


@pytest.mark.parametrize("name", ["../x", "/abs/x", "..", ".", "a\\b", "", "a\0b", pytest.param("x" * 201, id="201-x"),
                                  "a b"])
def test_run_name_is_a_name_not_a_path(toy_config, name):
    toy_config["trainer"]["run_name"] = name
    err = config_error(toy_config)
    assert err.key == "trainer.run_name" and "ASCII letters, digits and . _ - + = , @ only" in str(err)


def test_run_name_cannot_escape_the_runs_dir(config_file, toy_config, tmp_path, capsys):
    err = train_fails(capsys, toy_config, str(config_file), "trainer.run_name=../escaped")
    assert "must be a name, not a path" in err and "(config key: trainer.run_name)" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.yaml"]
