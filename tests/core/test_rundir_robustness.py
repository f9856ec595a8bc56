"""Damaged run directories and unusable run folders: each is a clean exit-2 error naming the file
or folder, and nothing in the run directory is created, changed or deleted.

`--resume`, `evaluate` and `report` are run through the real command (in process: a Python
traceback would escape ``main``); the folder cases that need a real filesystem property
(read-only, not writable, full, a file-size limit) run the command in a subprocess."""

from __future__ import annotations

import copy
import hashlib
import json
import os
import resource
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml

import mfcf
from mfcf.cli import main
from mfcf.engine.checkpoint import load_checkpoint
from mfcf.errors import TrainingError


def snapshot(folder: Path) -> dict[str, tuple[str, int]]:
    """Every file under ``folder`` with its content hash and modification time."""
    return {str(p.relative_to(folder)): (hashlib.sha256(p.read_bytes()).hexdigest(), p.stat().st_mtime_ns)
            for p in sorted(folder.rglob("*")) if p.is_file()}


def run_cli(capsys, *args: str) -> tuple[int, str]:
    code = main(list(args))
    return code, capsys.readouterr().err


def assert_clean_error(code: int, err: str, kind: str, *names: str) -> None:
    assert code == 2, err
    assert err.startswith(f"{kind}:"), err
    assert "Traceback" not in err
    for name in names:
        assert name in err, (name, err)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A trained toy run, and the weights of a toy run with another config."""
    root = tmp_path_factory.mktemp("trained")
    config = {
        "plugins": ["mfcf_toy"],
        "data": {"name": "toy_blobs", "batch_size": 32, "val_fraction": 0.2},
        "model": {"name": "toy_softkmeans"},
        "facets": [{"latent_dim": 2, "n_clusters": 3}, {"latent_dim": 2, "n_clusters": 2}],
        "trainer": {"epochs": 3, "lr": 0.01, "seed": 1, "threads": 1},
    }
    run = mfcf.train(config, run_dir=root / "run", quiet=True)
    other = copy.deepcopy(config)
    other["facets"][0]["n_clusters"] = 5
    other_run = mfcf.train(other, run_dir=root / "other", quiet=True)
    return run, other_run / "checkpoints" / "last.pt"


@pytest.fixture
def unfinished(trained, tmp_path):
    """A copy of the trained run as if killed before its last write: no model.pt, status running."""
    run = Path(shutil.copytree(trained[0], tmp_path / "run"))
    (run / "model.pt").unlink()
    info = json.loads((run / "run.json").read_text())
    (run / "run.json").write_text(json.dumps({**info, "status": "running"}))
    return run


def _save(obj):
    return lambda path, other: torch.save(obj, path)


def _edit_checkpoint(**changes):
    def write(path, other):
        state = load_checkpoint(path)
        torch.save({**state, **changes}, path)
    return write


DAMAGES = {  # name: (file, how to damage it, the commands that must refuse it)
    "run.json not utf-8": ("run.json", lambda p, o: p.write_bytes(b"\xff\xfe\x00garbage"), ("resume", "report")),
    "run.json a list": ("run.json", lambda p, o: p.write_text("[1, 2]"), ("resume", "report")),
    "resolved.yaml not yaml": ("resolved.yaml", lambda p, o: p.write_text("data: [unclosed\n"),
                               ("resume", "evaluate", "report")),
    "resolved.yaml a list": ("resolved.yaml", lambda p, o: p.write_text("- 1\n- 2\n"),
                             ("resume", "evaluate", "report")),
    "resolved.yaml invalid": ("resolved.yaml",
                              lambda p, o: p.write_text(p.read_text().replace("epochs: 3", "epochs: -3")),
                              ("resume", "evaluate", "report")),
    "metrics.csv bad epoch": ("metrics.csv", lambda p, o: p.write_text("epoch,train/loss\nfirst,1.0\n"),
                              ("resume", "report")),
    "metrics.csv binary": ("metrics.csv", lambda p, o: p.write_bytes(bytes(range(256))), ("resume", "report")),
    "last.pt garbage": ("checkpoints/last.pt", lambda p, o: p.write_bytes(b"not a checkpoint"),
                        ("resume", "evaluate", "report")),
    "last.pt empty dict": ("checkpoints/last.pt", _save({}), ("resume", "evaluate", "report")),
    "last.pt bare tensor": ("checkpoints/last.pt", _save(torch.zeros(3)), ("resume", "evaluate", "report")),
    "last.pt unknown format": ("checkpoints/last.pt", _edit_checkpoint(format=99), ("resume", "evaluate", "report")),
    "last.pt beyond the run": ("checkpoints/last.pt", _edit_checkpoint(epoch=10, global_step=60), ("resume",)),
    "last.pt of another config": ("checkpoints/last.pt", lambda p, other: shutil.copyfile(other, p),
                                  ("resume", "evaluate", "report")),
}
CASES = [(name, command) for name, (_, _, commands) in DAMAGES.items() for command in commands]


@pytest.mark.parametrize(("damage", "command"), CASES, ids=[f"{c}-{d.replace(' ', '_')}" for d, c in CASES])
def test_a_damaged_run_directory_is_refused_and_left_as_it_is(unfinished, trained, capsys, damage, command):
    name, write, _ = DAMAGES[damage]
    write(unfinished / name, trained[1])
    before = snapshot(unfinished)
    args = {"resume": ["train", "--resume", str(unfinished), "--quiet"], "evaluate": ["evaluate", str(unfinished)],
            "report": ["report", str(unfinished)]}[command]
    code, err = run_cli(capsys, *args)
    assert_clean_error(code, err, "RunDirError", str(unfinished / name))
    assert snapshot(unfinished) == before
    assert not (unfinished / "report-test").exists()


def test_final_weights_of_another_config_are_refused_by_evaluate(trained, tmp_path, capsys):
    run = Path(shutil.copytree(trained[0], tmp_path / "run"))
    shutil.copyfile(trained[1], run / "model.pt")
    before = snapshot(run)
    code, err = run_cli(capsys, "evaluate", str(run))
    assert_clean_error(code, err, "RunDirError", str(run / "model.pt"), "another run")
    assert snapshot(run) == before


@pytest.mark.parametrize("kind", ["missing", "plain folder", "file"])
def test_report_and_evaluate_of_what_is_not_a_run_create_nothing(tmp_path, capsys, kind):
    target = tmp_path / "nope"
    if kind == "plain folder":
        target.mkdir()
    elif kind == "file":
        target.write_text("x")
    for command in ("report", "evaluate"):
        code, err = run_cli(capsys, command, str(target))
        assert_clean_error(code, err, "RunDirError", str(target))
    assert sorted(p.name for p in tmp_path.rglob("*")) == ([] if kind == "missing" else ["nope"])


def test_resume_removes_temp_files_a_killed_write_left(unfinished, capsys):
    stale = [unfinished / "checkpoints" / ".last.pt.4242.tmp", unfinished / ".run.json.4242.tmp"]
    for path in stale:
        path.write_bytes(b"half a file")
    code, err = run_cli(capsys, "train", "--resume", str(unfinished), "--quiet", "--no-eval")
    assert code == 0, err
    assert not any(p.exists() for p in stale)
    assert json.loads((unfinished / "run.json").read_text())["status"] == "completed"
    assert load_checkpoint(unfinished / "model.pt")["format"] == 1


# -- unusable run folders ------------------------------------------------------------------------

def test_a_runs_dir_or_run_dir_that_is_a_file_is_refused(toy_config, tmp_path, capsys):
    config = tmp_path / "toy.yaml"
    config.write_text(yaml.safe_dump(toy_config))
    blocker = tmp_path / "blocker"
    blocker.write_text("keep me")
    for args in ([f"trainer.runs_dir={blocker}"], [f"trainer.runs_dir={blocker / 'below'}"],
                 ["--run-dir", str(blocker)], ["--run-dir", str(blocker / "below")]):
        code, err = run_cli(capsys, "train", str(config), "--quiet", *args)
        assert_clean_error(code, err, "RunDirError", str(blocker), "file")
    assert blocker.read_text() == "keep me"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["blocker", "toy.yaml"]


def test_a_runs_dir_on_a_pseudo_filesystem_is_refused(toy_config, tmp_path, capsys):
    config = tmp_path / "toy.yaml"
    config.write_text(yaml.safe_dump(toy_config))
    code, err = run_cli(capsys, "train", str(config), "--quiet", "trainer.runs_dir=/proc/mfcf-runs")
    assert_clean_error(code, err, "RunDirError", "/proc", "pseudo filesystem", "trainer.runs_dir")
    assert not Path("/proc/mfcf-runs").exists()


def _cli(*args: str, prefix: tuple[str, ...] = (), **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run([*prefix, sys.executable, "-m", "mfcf.cli", *args], capture_output=True, text=True,
                          timeout=300, **kwargs)


@pytest.mark.slow
def test_a_runs_dir_that_is_not_writable_is_refused(toy_config, tmp_path):
    """Run as root without the capability to override file permissions (root passes every check)."""
    if shutil.which("setpriv") is None:
        pytest.skip("needs util-linux's setpriv to drop the permission-override capabilities")
    config = tmp_path / "toy.yaml"
    config.write_text(yaml.safe_dump(toy_config))
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o555)
    locked.chmod(0o555)
    drop = ("setpriv", "--bounding-set=-dac_override,-dac_read_search")
    done = _cli("train", str(config), "--quiet", f"trainer.runs_dir={locked / 'runs'}", prefix=drop)
    assert done.returncode == 2, done.stderr
    assert done.stderr.startswith("RunDirError:") and "is not writable" in done.stderr
    assert str(locked) in done.stderr and "Traceback" not in done.stderr
    assert list(locked.iterdir()) == []


def _in_mount_namespace(script: str, tmp_path: Path) -> subprocess.CompletedProcess:
    """``script`` in a private mount namespace (mounts vanish with it); skips where that is not allowed."""
    if shutil.which("unshare") is None:
        pytest.skip("needs util-linux's unshare for a private mount namespace")
    probe = subprocess.run(["unshare", "-m", "sh", "-c", f"mount -t tmpfs -o size=64k tmpfs {tmp_path}"],
                           capture_output=True, text=True)
    if probe.returncode != 0:
        pytest.skip(f"this machine does not allow mounting a tmpfs in a private namespace: {probe.stderr.strip()}")
    return subprocess.run(["unshare", "-m", "sh", "-ec", script], capture_output=True, text=True, timeout=300)


@pytest.mark.slow
def test_a_runs_dir_on_a_read_only_filesystem_is_refused(toy_config, tmp_path):
    config = tmp_path / "toy.yaml"
    config.write_text(yaml.safe_dump(toy_config))
    mnt = tmp_path / "ro"
    mnt.mkdir()
    done = _in_mount_namespace(f"mount -t tmpfs -o ro,size=1m tmpfs {mnt}\n"
                               f"{sys.executable} -m mfcf.cli train {config} --quiet trainer.runs_dir={mnt}/runs",
                               mnt)
    assert done.returncode == 2, done.stderr
    assert done.stderr.startswith("RunDirError:") and "read-only filesystem" in done.stderr
    assert str(mnt) in done.stderr and "Traceback" not in done.stderr


@pytest.mark.slow
def test_a_full_disk_ends_training_with_a_training_error_and_a_failed_run(toy_config, tmp_path):
    """A 48 KiB tmpfs holds the run's small files but not its 28 KB checkpoint as well."""
    config = tmp_path / "toy.yaml"
    config.write_text(yaml.safe_dump(toy_config))
    mnt = tmp_path / "small"
    mnt.mkdir()
    done = _in_mount_namespace(
        f"mount -t tmpfs -o size=48k tmpfs {mnt}\n"
        f"{sys.executable} -m mfcf.cli train {config} --quiet --run-dir {mnt}/run || code=$?\n"
        f"cat {mnt}/run/run.json\nexit ${{code:-0}}", mnt)
    assert done.returncode == 2, done.stderr
    assert done.stderr.startswith("TrainingError:") and "No space left on device" in done.stderr
    assert f"{mnt}/run/" in done.stderr and "Traceback" not in done.stderr
    status = json.loads(done.stdout[done.stdout.index("{"):])
    assert status["status"] == "failed" and "No space left on device" in status["error"]


@pytest.mark.slow
def test_a_file_size_limit_ends_training_with_a_training_error_naming_the_checkpoint(toy_config, tmp_path):
    config = tmp_path / "toy.yaml"
    config.write_text(yaml.safe_dump(toy_config))
    run = tmp_path / "run"
    limit = lambda: resource.setrlimit(resource.RLIMIT_FSIZE, (16_000, 16_000))  # the checkpoint is ~28 KB
    done = _cli("train", str(config), "--quiet", "--run-dir", str(run), preexec_fn=limit)
    assert done.returncode == 2, done.stderr
    assert done.stderr.startswith("TrainingError:") and str(run / "checkpoints" / "last.pt") in done.stderr
    assert "Traceback" not in done.stderr
    assert json.loads((run / "run.json").read_text())["status"] == "failed"
    assert not list((run / "checkpoints").glob(".*.tmp"))


def test_a_checkpoint_folder_replaced_by_a_file_ends_training_with_a_training_error(toy_config):
    def replace_checkpoints(row, run):
        if row["epoch"] == 0:
            shutil.rmtree(run.path / "checkpoints")
            (run.path / "checkpoints").write_text("not a folder")

    with pytest.raises(TrainingError) as err:
        mfcf.train(toy_config, quiet=True, on_epoch_end=replace_checkpoints)
    run = next(Path(toy_config["trainer"]["runs_dir"]).iterdir())
    assert str(run / "checkpoints" / "last.pt") in str(err.value)
    status = json.loads((run / "run.json").read_text())
    assert status["status"] == "failed" and "last.pt" in status["error"]


def test_a_failure_before_training_leaves_no_run_directory(toy_config, tmp_path, capsys):
    config = tmp_path / "toy.yaml"
    config.write_text(yaml.safe_dump(toy_config))
    code, err = run_cli(capsys, "train", str(config), "--quiet", "trainer.lr=-1")
    assert_clean_error(code, err, "ConfigError", "trainer.lr")
    assert not Path(toy_config["trainer"]["runs_dir"]).exists()


@pytest.mark.slow
def test_a_home_whose_folders_cannot_be_written_does_not_stop_a_run(tmp_path):
    """HOME is a file: matplotlib's config folder and the default shapes cache cannot be made."""
    home = tmp_path / "home-is-a-file"
    home.write_text("")
    env = {k: v for k, v in os.environ.items()
           if k not in ("MPLCONFIGDIR", "XDG_CONFIG_HOME", "XDG_CACHE_HOME", "MFCF_CACHE_DIR")}
    shrink = ["data.n_train=200", "data.n_test=100", "data.batch_size=50", "model.gmm_init_epoch=0",
              "schedule.epochs_per_step=[1,1]", "schedule.fade_in_batches=2", "trainer.epochs=2", "trainer.threads=1"]
    done = _cli("train", str(Path(__file__).parents[2] / "configs" / "shapes_mfcvae.yaml"), "--quiet",
                "--run-dir", str(tmp_path / "run"), *shrink, env={**env, "HOME": str(home)}, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "going on without a cache" in done.stderr
    assert json.loads((tmp_path / "run" / "run.json").read_text())["status"] == "completed"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["home-is-a-file", "run"]


def test_an_exception_inside_a_plugin_during_training_names_the_plugin(toy_config, tmp_path, capsys):
    toy_config["plugins"].append("mfcf_toy_faulty")
    toy_config["model"] = {"name": "toy_faulty", "fail_at_epoch": 1, "fail_marker": str(tmp_path / "marker")}
    config = tmp_path / "faulty.yaml"
    config.write_text(yaml.safe_dump(toy_config))
    code, err = run_cli(capsys, "train", str(config), "--quiet", "--run-dir", str(tmp_path / "run"))
    assert_clean_error(code, err, "PluginError", "model 'toy_faulty'", "mfcf_toy_faulty.ToyFaultySoftKMeans",
                       "on_epoch_start()", "mfcf_toy_faulty.py:")
    assert err.rstrip().splitlines()[-1].startswith("  RuntimeError: deliberate failure at the start of epoch 1")
    status = json.loads((tmp_path / "run" / "run.json").read_text())
    assert status["status"] == "failed" and "raise RuntimeError" in status["traceback"]
