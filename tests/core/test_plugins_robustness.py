"""Broken plugins and plugin switches through a real `mfcf` call: exit 2, one PluginError naming
the module (or entry point) and where it was listed, no traceback, no run directory."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import yaml

from mfcf.cli import main
from mfcf.plugins import plugin_manager
from mfcf.registry import Registry

HOOK = """
import mfcf
from mfcf_toy import ToyKMeans

@mfcf.hookimpl
def mfcf_register_models({args}):
    {body}
"""


@pytest.fixture
def plugin_dir(tmp_path, monkeypatch):
    """``write(module, source)``: a plugin module in a folder on sys.path (forgotten afterwards)."""
    folder = tmp_path / "plugin_modules"
    folder.mkdir()
    monkeypatch.syspath_prepend(str(folder))
    written = []

    def write(module: str, source: str) -> Path:
        written.append(module)
        return _write(folder / f"{module}.py", source)

    yield write
    for module in written:
        sys.modules.pop(module, None)


def _write(path: Path, source: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(source))
    return path


def _hook(body: str, args: str = "") -> str:
    return HOOK.format(args=args, body=body)


@pytest.fixture
def mfcf_cli(tmp_path, toy_config, capsys):
    """``mfcf_cli(*argv, plugins=[...])``: `mfcf` in-process (``train`` of the toy config with the
    extra ``plugins:`` when argv is empty); returns stderr after checking exit status 2, no
    traceback and no run directory."""

    def run(*argv, plugins=()):
        if not argv:
            toy_config["plugins"] = [*toy_config["plugins"], *plugins]
            (tmp_path / "config.yaml").write_text(yaml.safe_dump(toy_config))
            argv = ("train", str(tmp_path / "config.yaml"), "--quiet", "--no-eval")
        code = main(list(argv))
        err = capsys.readouterr().err
        assert code == 2, err
        assert "Traceback" not in err
        assert not Path(toy_config["trainer"]["runs_dir"]).exists()
        return err

    return run


def test_a_listed_module_that_registers_nothing_is_named(plugin_dir, mfcf_cli, monkeypatch):
    plugin_dir("helpers_only", "def mfcf_register_models():  # not decorated: no hook\n    return []\n")
    err = mfcf_cli(plugins=["helpers_only"])
    assert "PluginError: plugin module 'helpers_only' (config key: plugins.1) registers nothing" in err
    assert "@mfcf.hookimpl" in err
    monkeypatch.setenv("MFCF_PLUGINS", "mfcf_ladder")  # the package, not its .plugin module
    err = mfcf_cli()
    assert "plugin module 'mfcf_ladder' (listed in MFCF_PLUGINS) registers nothing" in err


@pytest.mark.parametrize("spelling", ["ladder", "mfcf_ladder.plugin", "mfcf_ladder"])
def test_block_plugins_accepts_entry_point_module_and_package_names(monkeypatch, spelling):
    monkeypatch.setenv("MFCF_BLOCK_PLUGINS", f"baselines, {spelling}")
    registry = Registry(plugin_manager(["mfcf_ladder.plugin"]))  # listing it does not bring it back
    assert "ladder_fc" not in registry.names("encoder") and registry.names("model") == []
    assert "mnist" in registry.names("dataset")


def test_block_plugins_with_a_name_that_matches_nothing_is_an_error(mfcf_cli, monkeypatch):
    monkeypatch.setenv("MFCF_BLOCK_PLUGINS", "mfcf_ladr")
    err = mfcf_cli("plugins")
    assert "PluginError: MFCF_BLOCK_PLUGINS names 'mfcf_ladr'" in err and "did you mean: mfcf_ladder" in err


def test_a_module_that_raises_on_import_is_named_with_the_line(plugin_dir, mfcf_cli):
    path = plugin_dir("crashes", "import mfcf\n\nLIMIT = 1 / 0\n")
    err = mfcf_cli(plugins=["crashes"])
    assert ("PluginError: could not import plugin module 'crashes' (config key: plugins.1): "
            f"ZeroDivisionError: division by zero (at {path}:3)") in err


def test_a_hook_that_raises_is_named_with_the_line(plugin_dir, mfcf_cli):
    path = plugin_dir("hook_crashes", _hook("raise RuntimeError('no GPU found')"))
    err = mfcf_cli(plugins=["hook_crashes"])
    assert "PluginError: mfcf_register_models of plugin 'hook_crashes'" in err
    assert f"raised RuntimeError: no GPU found (at {path}:7)" in err


@pytest.mark.parametrize("body, shown", [
    ("return ToyKMeans", "<class 'mfcf_toy.ToyKMeans'>"),
    ("[ToyKMeans]", "None"),  # a forgotten `return`
    ("return 'toy_kmeans'", "'toy_kmeans'"),
])
def test_a_hook_must_return_a_list(plugin_dir, mfcf_cli, body, shown):
    plugin_dir("returns_no_list", _hook(body))
    err = mfcf_cli(plugins=["returns_no_list"])
    assert f"PluginError: mfcf_register_models of plugin 'returns_no_list' (returns_no_list (not installed)) " \
           f"returned {shown}; it must return a list of mfcf.api.Model subclasses" in err


def test_a_hook_with_arguments_does_not_fit(plugin_dir, mfcf_cli):
    plugin_dir("takes_args", _hook("return [ToyKMeans]", args="config"))
    err = mfcf_cli(plugins=["takes_args"])
    assert "PluginError: plugin module 'takes_args' (config key: plugins.1) does not fit mfcf's hooks" in err
    assert "hookimpl definition: mfcf_register_models(config)" in err


def _distribution(folder: Path, dist: str, entry_points: dict[str, str]) -> None:
    """An installed distribution as importlib.metadata finds it: a .dist-info folder on sys.path."""
    info = folder / f"{dist}-1.0.dist-info"
    _write(info / "METADATA", f"Metadata-Version: 2.1\nName: {dist}\nVersion: 1.0\n")
    _write(info / "entry_points.txt", "[mfcf]\n" + "".join(f"{k} = {v}\n" for k, v in entry_points.items()))


@pytest.mark.parametrize("case, says", [
    ("raises", "PluginError: loading the entry-point plugin 'broken' (ep_raises, from ep-demo 1.0) failed: "
               "ImportError: cannot import name 'nothing'"),
    ("empty", "PluginError: entry-point plugin 'broken' (ep_empty, from ep-demo 1.0) registers nothing"),
    ("clash", "PluginError: two installed packages declare an 'mfcf' entry point named 'ladder'"),
])
def test_a_broken_entry_point_plugin_is_named(plugin_dir, tmp_path, mfcf_cli, case, says):
    plugin_dir("ep_raises", "from mfcf import nothing\n")
    plugin_dir("ep_empty", "VERSION = 1\n")
    plugin_dir("ep_clash", _hook("return []"))
    module = f"ep_{case}"
    _distribution(tmp_path / "plugin_modules", "ep-demo", {"ladder" if case == "clash" else "broken": module})
    err = mfcf_cli("plugins")
    assert says in err


def test_a_broken_entry_point_plugin_in_a_real_process(tmp_path):
    folder = tmp_path / "site"
    _write(folder / "ep_raises.py", "raise SystemError('half installed')\n")
    _distribution(folder, "ep-demo", {"broken": "ep_raises"})
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(folder), os.environ.get("PYTHONPATH", "")])}
    res = subprocess.run([sys.executable, "-m", "mfcf.cli", "plugins"], capture_output=True, text=True, env=env)
    assert res.returncode == 2 and "Traceback" not in res.stderr
    where = folder / "ep_raises.py"
    assert f"'broken' (ep_raises, from ep-demo 1.0) failed: SystemError: half installed (at {where}:1)" in res.stderr
    assert "MFCF_BLOCK_PLUGINS=broken" in res.stderr
