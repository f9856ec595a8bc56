"""Sweeps given bad input: malformed sweep files, folders that are no sweep directory or a
damaged one, an address where nothing listens, damaged trials, a working directory holding a
folder named `mfcf`, and a sweep whose every trial fails. Each ends in a clean error naming
what was wrong, or in a summary; never in a traceback.

Two tests start a real (private, local) Ray instance; the others stop before Ray starts.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

sys.path.insert(0, str(Path(__file__).parent))
from sweep_support import (  # noqa: E402
    cli_env, free_port, mfcf, mfcf_script, read_json, short_tmp, toy_experiment, write_sweep,
)

from mfcf.cli import main  # noqa: E402
from mfcf.errors import RunDirError  # noqa: E402
from mfcf.tune.results import write_sweep_summary  # noqa: E402
from mfcf.tune.spec import SWEEP_FILE, SweepError, load_sweep  # noqa: E402


@pytest.fixture
def ray_tmp():
    with short_tmp() as path:
        yield path


def _sweep_file(tmp_path: Path, **fields) -> Path:
    fields.setdefault("experiment", toy_experiment(epochs=2))
    fields.setdefault("storage", str(tmp_path / "sweeps"))
    return write_sweep(tmp_path / "sweep.yaml", **fields)


def _sweep_dir(tmp_path: Path, **fields) -> Path:
    """A sweep directory as `mfcf sweep` leaves it before any trial ran: just its plan."""
    sweep = load_sweep(_sweep_file(tmp_path, name="stored", **fields))
    sweep.directory.mkdir(parents=True)
    (sweep.directory / SWEEP_FILE).write_text(yaml.safe_dump(sweep.to_dict(), sort_keys=False))
    return sweep.directory


@pytest.mark.parametrize("fields, expected", [
    ({"seeds": [0, -1]}, "seeds run from 0 to 4294967295 (2**32 - 1), got [0, -1] (config key: seeds)"),
    ({"seeds": [2**33]}, "seeds run from 0 to 4294967295"),
    ({"search": {"trainer.lr": {"loguniform": [1e-3, float("inf")]}}},
     "must be a finite number, got inf (config key: search.trainer.lr.loguniform.1)"),
    ({"search": {"trainer.lr": [0.1, 0.01, 0.1]}},
     "the grid holds 0.1 twice: the same setting would run twice (config key: search.trainer.lr)"),
    ({"search": {"trainer.lr": [0.1, 0.2, 0.3], "trainer.grad_clip": {"uniform": [0.5, 2.0]}}, "num_samples": 4000},
     "plans 12,000 trials (num_samples x grid points x seeds), more than the 10,000 one sweep may hold"),
    ({"storage": "~no-such-user-mfcf/sweeps"},
     "'~no-such-user-mfcf/sweeps' starts with ~ but names no user this machine knows (config key: storage)"),
    ({"experiment": "~no-such-user-mfcf/x.yaml"}, "names no user this machine knows (config key: experiment)"),
    ({"search": {"facets.5.n_clusters": [2]}}, "cannot apply facets.5.n_clusters=2: list index out of range "
                                                "(config key: facets.5.n_clusters)"),
])
def test_malformed_sweep_files_fail_naming_the_key(tmp_path, fields, expected):
    with pytest.raises(SweepError) as err:
        load_sweep(_sweep_file(tmp_path, **fields))
    assert expected in str(err.value)
    assert "object_type" not in str(err.value)  # no OmegaConf internals


def test_storage_that_cannot_hold_the_sweep_fails_before_anything_is_made(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    path = _sweep_file(tmp_path, storage=str(blocker / "sweeps"), name="s")
    with pytest.raises(SweepError) as err:
        load_sweep(path)
    assert (f"'{blocker}' is a file, so the sweep directory '{blocker}/sweeps/s' cannot be made; choose another "
            "storage=... or name=... (config key: storage)") in str(err.value)
    assert blocker.read_text() == ""


@pytest.mark.parametrize("damage, expected", [
    ("missing", "sweep directory '{d}' does not exist"),
    ("a file", "sweep directory '{d}' is a file"),
    ("not YAML", "'{d}/sweep.yaml' is damaged: config file '{d}/sweep.yaml' does not parse as YAML"),
    ("a list", "'{d}/sweep.yaml' is damaged: config file '{d}/sweep.yaml' must hold a mapping"),
    ("no settings", "'{d}/sweep.yaml' is damaged: must be a non-empty list of mappings, got None "
                    "(config key: settings)"),
    ("bad seeds", "'{d}/sweep.yaml' is damaged: must be a non-empty list of integers, got 'x' (config key: seeds)"),
])
def test_resume_and_summary_of_a_folder_that_is_no_sweep_or_a_damaged_one(tmp_path, capsys, damage, expected):
    d = _sweep_dir(tmp_path)
    plan = yaml.safe_load((d / SWEEP_FILE).read_text())
    if damage == "missing":
        d = tmp_path / "nowhere"
    elif damage == "a file":
        d = tmp_path / "sweep.yaml"
    elif damage == "not YAML":
        (d / SWEEP_FILE).write_text("experiment: [unclosed\n")
    elif damage == "a list":
        (d / SWEEP_FILE).write_text("- 1\n- 2\n")
    elif damage == "no settings":
        del plan["settings"]
        (d / SWEEP_FILE).write_text(yaml.safe_dump(plan))
    else:
        (d / SWEEP_FILE).write_text(yaml.safe_dump({**plan, "seeds": "x"}))
    before = sorted(tmp_path.rglob("*"))
    with pytest.raises(RunDirError) as err:
        write_sweep_summary(d)
    assert expected.format(d=d) in str(err.value)
    assert main(["sweep", "--resume", str(d)]) == 2  # fails before Ray starts
    err = capsys.readouterr().err
    assert err.startswith("RunDirError: " + expected.format(d=d)) and "Traceback" not in err
    assert sorted(tmp_path.rglob("*")) == before


def test_a_damaged_tune_state_is_named(tmp_path):
    from mfcf.tune.runner import _restore_tuner  # what `mfcf sweep --resume` calls once Ray is up
    from mfcf.tune.trainable import train_trial

    d = _sweep_dir(tmp_path)
    (d / "tuner.pkl").write_bytes(b"\x80\x04not a pickle")
    with pytest.raises(RunDirError) as err:
        _restore_tuner(d, train_trial)
    assert f"Tune's saved state in '{d}' cannot be read (UnpicklingError" in str(err.value)
    assert f"Move '{d}/tuner.pkl' away and resume again" in str(err.value)


def test_a_summary_lists_failed_and_damaged_trials_and_keeps_the_others(tmp_path):
    d = _sweep_dir(tmp_path, seeds=[0, 1], search={"trainer.lr": [0.01, 0.003]})
    (d / "s000-seed0").mkdir()
    (d / "s000-seed0" / "trial.json").write_text('{"status": "failed"}')  # failed before it made a run
    (d / "s000-seed1" / "run").mkdir(parents=True)
    (d / "s000-seed1" / "run" / "resolved.yaml").write_text("trainer: [unclosed\n")
    (d / "s001-seed0").mkdir()
    (d / "s001-seed0" / "trial.json").write_text("[1, 2]")  # not an object: ignored
    summary, md, _ = write_sweep_summary(d)
    text = md.read_text()
    assert "0 of 4 trials completed" in text
    for row in ("| s000 | 0 | failed |", "| s000 | 1 | damaged |", "| s001 | 0 | missing |",
                "| s001 | 1 | missing |"):
        assert row in text


def test_an_address_where_nothing_listens_fails_at_once(tmp_path, ray_tmp):
    path = _sweep_file(tmp_path, name="nowhere")
    address = f"127.0.0.1:{free_port()}"
    recorded = ray_tmp / "ray" / "ray_current_cluster"  # what `--address auto` reads: a cluster now gone
    recorded.parent.mkdir()
    recorded.write_text(address)
    env = cli_env(ray_tmp)
    for given in (address, "auto"):
        # without the check Ray retries for many minutes; the timeout turns that into a failure
        res = mfcf("sweep", str(path), "--address", given, env=env, timeout=120)
        assert res.returncode == 2, res.stdout + res.stderr
        assert (f"ClusterError: could not join the Ray cluster at '{given}': ConnectionError: nothing answers at "
                f"{address} (Connection refused)") in res.stderr
        assert "Start one with `ray start --head`" in res.stderr and "Traceback" not in res.stderr
    assert not (tmp_path / "sweeps").exists()


@pytest.mark.slow
def test_a_sweep_started_beside_a_folder_named_mfcf_uses_the_installed_package(tmp_path, ray_tmp):
    """Ray puts the driver's working directory first on every worker's sys.path."""
    work = tmp_path / "work"
    (work / "mfcf").mkdir(parents=True)
    touched = tmp_path / "shadow-imported"
    (work / "mfcf" / "__init__.py").write_text(f"open({str(touched)!r}, 'w').close()\n"
                                               "raise RuntimeError('this folder is not the mfcf package')\n")
    shadowed = subprocess.run([sys.executable, "-c", "import mfcf"], cwd=work, capture_output=True, text=True)
    assert "this folder is not the mfcf package" in shadowed.stderr  # it does shadow, where cwd is on sys.path
    touched.unlink()

    path = _sweep_file(tmp_path, seeds=[0, 1], name="beside")
    res = mfcf_script("sweep", str(path), "--num-cpus", "2", env=cli_env(ray_tmp), cwd=work)
    assert res.returncode == 0, res.stdout + res.stderr
    for seed in (0, 1):
        assert read_json(tmp_path / "sweeps" / "beside" / f"s000-seed{seed}" / "trial.json")["status"] == "completed"
    assert not touched.exists()  # no worker even tried the folder
    assert [p.name for p in work.iterdir()] == ["mfcf"]  # nothing written where the driver ran


DYING_PLUGIN = """
import os

from mfcf_toy_faulty import ToyFaultySoftKMeans

import mfcf


class ToyDying(ToyFaultySoftKMeans):
    name = "toy_dying"

    def on_epoch_start(self, epoch, train):
        os._exit(3)  # the worker process dies: Tune gets no result, not even the trial's config


@mfcf.hookimpl
def mfcf_register_models():
    return [ToyDying]
"""


@pytest.mark.slow
def test_a_sweep_whose_every_trial_fails_names_each_error_and_writes_the_summary(tmp_path, ray_tmp):
    """s000 raises at its first epoch, s001's worker process dies there; neither reported
    anything. The driver runs beside an empty `mfcf/` folder, which would make the workers
    import a namespace package (and fail on that instead) if it reached their sys.path."""
    work = tmp_path / "work"
    (work / "mfcf").mkdir(parents=True)
    (tmp_path / "plugins").mkdir()
    (tmp_path / "plugins" / "mfcf_toy_dying.py").write_text(DYING_PLUGIN)
    marker = tmp_path / "no-such-dir" / "marker"  # toy_faulty fails writing it: FileNotFoundError
    experiment = toy_experiment(epochs=2)
    experiment["plugins"].append("mfcf_toy_dying")
    experiment["model"] = {"name": "toy_faulty", "fail_at_epoch": 0, "fail_marker": str(marker)}
    path = _sweep_file(tmp_path, experiment=experiment, search={"model.name": ["toy_faulty", "toy_dying"]},
                       max_failures=0, name="broken")
    env = cli_env(ray_tmp)
    env["PYTHONPATH"] += f"{os.pathsep}{tmp_path / 'plugins'}"
    res = mfcf_script("sweep", str(path), "--num-cpus", "2", env=env, cwd=work)
    out = res.stdout + res.stderr
    assert res.returncode == 2, out
    assert "Traceback" not in out
    sweep_dir = tmp_path / "sweeps" / "broken"
    assert "TrainingError: all 2 trials failed after all their retries:\n" in res.stderr
    lines = res.stderr.splitlines()
    for name, expected in (("s000-seed0", f"No such file or directory: '{marker}'"),
                           ("s001-seed0", "The actor is dead because its worker process has died")):
        error_file = sweep_dir / name / "error.txt"
        at = next(i for i, line in enumerate(lines) if line.startswith(f"  {name}: "))
        assert lines[at + 1] == f"    full error: {error_file}"
        assert expected in error_file.read_text()
        assert read_json(sweep_dir / name / "trial.json")["status"] == "failed"
    # the trial's own exception (the trainer may wrap the model's in a PluginError naming the model)
    raised = next(line for line in lines if line.startswith("  s000-seed0: "))
    assert "FileNotFoundError" in raised or "model 'toy_faulty'" in raised, raised
    assert any(line.startswith("  s001-seed0: The actor is dead because its worker process has died.")
               for line in lines)
    assert f"The summary, every trial marked failed, is in {sweep_dir / 'summary.md'}" in res.stderr
    summary = (sweep_dir / "summary.md").read_text()
    assert "0 of 2 trials completed" in summary
    assert "| s000 | 0 | failed |" in summary and "| s001 | 0 | failed |" in summary
    assert (sweep_dir / "summary.csv").is_file()
    assert [p.name for p in work.iterdir()] == ["mfcf"]


def test_a_search_value_switching_a_component_drops_its_options(capsys):
    """Search values set keys as overrides do: a changed component name drops the old one's options."""
    from mfcf.config import load_config
    from mfcf.tune.spec import apply_values

    base = load_config(Path(__file__).parents[2] / "configs" / "shapes_mfcvae.yaml")
    cfg = apply_values(base, {"schedule.name": "constant", "schedule.beta_z": 0.5})
    assert cfg["schedule"] == {"name": "constant", "beta_z": 0.5}
    assert "dropped schedule.epochs_per_step" in capsys.readouterr().err
    assert apply_values(base, {"schedule": {"name": "constant"}})["schedule"] == {"name": "constant"}


def test_sweep_overrides_may_replace_and_delete_experiment_keys(tmp_path):
    from mfcf.tune import load_sweep

    sweep = tmp_path / "s.yaml"
    sweep.write_text(yaml.safe_dump({"experiment": str(Path(__file__).parents[2] / "configs" / "shapes_mfcvae.yaml"),
                                     "storage": str(tmp_path / "sweeps")}))
    loaded = load_sweep(sweep, ["schedule={name: constant}", "~model.gmm_init_epoch", "trainer.epochs=3"])
    assert loaded.experiment["schedule"] == {"name": "constant"}
    assert "gmm_init_epoch" not in loaded.experiment["model"]
