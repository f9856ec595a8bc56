"""Plugin discovery: entry points of a really installed package, config modules, env switches,
duplicate names, malformed registrations."""

from __future__ import annotations

import json
import subprocess
import sys
import types

import pytest
from demo_package import installed_demo_package

import mfcf
from mfcf.api import Encoder
from mfcf.errors import PluginError
from mfcf.plugins import plugin_manager
from mfcf.registry import Registry


def _module(name: str, **hooks) -> types.ModuleType:
    module = types.ModuleType(name)
    for hook, classes in hooks.items():
        setattr(module, hook, mfcf.hookimpl(lambda classes=classes: classes))
    sys.modules[name] = module
    return module


class _Enc(Encoder):
    """Test encoder."""

    name = "dup_enc"


def test_config_module_is_registered_with_provenance():
    registry = Registry(plugin_manager(["mfcf_toy"], autoload=False))
    assert registry.names("model") == ["toy_kmeans", "toy_softkmeans"]
    entry = next(registry.entries("dataset"))
    assert (entry.name, entry.plugin) == ("toy_blobs", "mfcf_toy")
    assert "not installed" in entry.package


def test_autoload_off_gives_an_empty_registry():
    assert list(Registry(plugin_manager(autoload=False)).entries()) == []


def test_duplicate_names_fail_and_name_both_providers():
    a = _module("dup_plugin_a", mfcf_register_encoders=[_Enc])
    b_cls = type("OtherEnc", (Encoder,), {"name": "dup_enc", "__doc__": "x"})
    b = _module("dup_plugin_b", mfcf_register_encoders=[b_cls])
    with pytest.raises(PluginError) as err:
        Registry(plugin_manager([a.__name__, b.__name__], autoload=False))
    text = str(err.value)
    assert "two encoders are named 'dup_enc'" in text
    assert "_Enc" in text and "OtherEnc" in text
    assert "dup_plugin_a" in text and "dup_plugin_b" in text


def test_registration_must_be_a_subclass_of_its_kind():
    m = _module("bad_kind_plugin", mfcf_register_encoders=[dict])
    with pytest.raises(PluginError, match="not a subclass of mfcf.api.Encoder"):
        Registry(plugin_manager([m.__name__], autoload=False))


def test_registration_needs_a_snake_case_name():
    cls = type("NoName", (Encoder,), {"name": "BadName"})
    m = _module("bad_name_plugin", mfcf_register_encoders=[cls])
    with pytest.raises(PluginError, match="snake_case class attribute `name`"):
        Registry(plugin_manager([m.__name__], autoload=False))


def test_misspelt_hook_fails_loudly():
    m = _module("typo_plugin", mfcf_register_encoderz=[_Enc])
    with pytest.raises(PluginError, match="hook mfcf does not know"):
        plugin_manager([m.__name__], autoload=False)


def test_unimportable_module_names_the_config_key():
    with pytest.raises(PluginError, match=r"could not import plugin module 'no_such_mod' \(config key: plugins\.0\)"):
        plugin_manager(["no_such_mod"], autoload=False)


def test_env_switches(monkeypatch):
    monkeypatch.setenv("MFCF_PLUGINS", "mfcf_toy")
    monkeypatch.setenv("MFCF_DISABLE_PLUGIN_AUTOLOAD", "1")
    registry = Registry(plugin_manager())
    assert registry.names("model") == ["toy_kmeans", "toy_softkmeans"]
    assert registry.names("encoder") == []  # built-ins were not autoloaded
    monkeypatch.setenv("MFCF_BLOCK_PLUGINS", "mfcf_toy")
    assert Registry(plugin_manager()).names("model") == []


def test_builtin_plugins_come_from_entry_points():
    pm = plugin_manager()
    dists = {dist.project_name for _, dist in pm.list_plugin_distinfo()}
    assert "mfcf" in dists
    assert {"datasets", "ladder"} <= {name for name, _ in pm.list_name_plugin()}


@pytest.mark.slow
def test_third_party_package_installed_with_pip_is_found(tmp_path, toy_config):
    """Build and pip-install a real distribution with an `mfcf` entry point, then use it."""
    with installed_demo_package(tmp_path, dist="mfcf-thirdparty-demo", plugin="demo", model="demo_nearest_mean",
                                version="0.3.1"):
        listing = subprocess.run([sys.executable, "-m", "mfcf.cli", "plugins", "--json"], check=True, capture_output=True,
                                 text=True)  # this interpreter's mfcf, whatever PATH says
        entry = next(e for e in json.loads(listing.stdout) if e["name"] == "demo_nearest_mean")
        assert (entry["kind"], entry["package"], entry["version"]) == ("model", "mfcf-thirdparty-demo", "0.3.1")
        # the installed model trains through the public API, found by entry point alone
        toy_config["model"] = {"name": "demo_nearest_mean", "scale": 2.0}
        toy_config["facets"] = [{"latent_dim": 1, "n_clusters": 3}]
        run = mfcf.train(toy_config, quiet=True)
        plugins = json.loads((run / "plugins.json").read_text())
        assert {"plugin": "demo", "package": "mfcf-thirdparty-demo", "version": "0.3.1"} in plugins
