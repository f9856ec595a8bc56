"""Sweeps on a real Ray: a local sweep and its summary, a pip-installed plugin in the workers,
a crashed trial retried from its checkpoint, a killed driver resumed, an existing cluster
with token authentication, and the GPU-less cluster error.

Each test gives Ray its own short temp dir and ends only the processes that use it.
"""

from __future__ import annotations

import csv
import json
import math
import subprocess
import sys
import time
from pathlib import Path

import pytest
from demo_package import installed_demo_package
import torch
import yaml

sys.path.insert(0, str(Path(__file__).parent))
from sweep_support import (  # noqa: E402
    cli_env, kill_session, mfcf, mfcf_background, processes_using, ray_head, read_json, session_processes,
    short_tmp, toy_experiment, trial_dirs, write_sweep,
)

pytestmark = pytest.mark.slow



@pytest.fixture
def ray_tmp():
    with short_tmp() as path:
        yield path


def _csv(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def _trial_lines(stdout: str) -> list[str]:
    return [line for line in stdout.splitlines() if line.startswith("[") and "] s0" in line]


def _weights(run: Path) -> dict[str, torch.Tensor]:
    return torch.load(run / "model.pt", weights_only=True)["model"]


def test_local_sweep_two_settings_by_two_seeds(tmp_path, ray_tmp):
    path = write_sweep(tmp_path / "lr.yaml", experiment=toy_experiment(), seeds=[0, 1],
                       search={"trainer.lr": [0.01, 0.003]}, metric="val/loss", mode="min",
                       resources={"cpu": 1}, max_concurrent=2, storage=str(tmp_path / "sweeps"), name="lr")
    env = cli_env(ray_tmp)
    res = mfcf("sweep", str(path), "--num-cpus", "2", env=env)
    assert res.returncode == 0, res.stdout + res.stderr
    lines = _trial_lines(res.stdout)
    assert len(lines) == 4, res.stdout
    assert all("done" in line and "val/loss" in line for line in lines)
    # Ray's own output stays quiet: no log records, no Tune tables, no tracebacks
    assert "Traceback" not in res.stdout + res.stderr and "INFO" not in res.stdout + res.stderr
    assert len(res.stderr.strip().splitlines()) <= 2, res.stderr

    sweep_dir = tmp_path / "sweeps" / "lr"
    trials = trial_dirs(sweep_dir)
    assert sorted(trials) == ["s000-seed0", "s000-seed1", "s001-seed0", "s001-seed1"]
    val_loss, test_scores = {}, {}
    for name, trial in trials.items():
        info = read_json(trial / "trial.json")
        assert (info["status"], info["attempts"], info["restored_from_checkpoint"]) == ("completed", 1, [])
        run = trial / "run"
        resolved = yaml.safe_load((run / "resolved.yaml").read_text())
        assert resolved["trainer"]["seed"] == info["seed"] == int(name[-1])
        assert resolved["trainer"]["lr"] == {"s000": 0.01, "s001": 0.003}[name[:4]]
        assert read_json(run / "run.json")["status"] == "completed"
        rows = _csv(run / "metrics.csv")
        assert [r["epoch"] for r in rows] == ["0", "1", "2"]
        progress = [json.loads(line) for line in (trial / "result.json").read_text().splitlines()]
        assert [r["training_iteration"] for r in progress] == [1, 2, 3]  # what Tune received: a row per epoch
        assert [float(r["train/loss"]) for r in progress] == pytest.approx([float(r["train/loss"]) for r in rows])
        assert float(progress[-1]["test/facet0/top/nmi"]) == pytest.approx(
            read_json(run / "eval-test.json")["facets"][0]["factors"]["top"]["nmi"])
        assert read_json(run / "eval-val.json")["split"] == "val"
        val_loss.setdefault(name[:4], []).append(float(rows[-1]["val/loss"]))
        test_scores.setdefault(name[:4], []).append(read_json(run / "eval-test.json")["facets"][1]["factors"]["bottom"]["ari"])

    summary = _csv(sweep_dir / "summary.csv")
    for setting in ("s000", "s001"):
        row = next(r for r in summary if r["setting"] == setting and r["score"] == "test/facet1/bottom/ari")
        values = test_scores[setting]
        assert float(row["mean"]) == pytest.approx(sum(values) / 2)
        assert float(row["std"]) == pytest.approx(abs(values[0] - values[1]) / math.sqrt(2))
        assert (row["n"], row["runs_done"], row["runs_planned"]) == ("2", "2", "2")
    best = min(val_loss, key=lambda s: sum(val_loss[s]))
    assert {r["setting"] for r in summary if r["best"] == "True"} == {best}
    md = (sweep_dir / "summary.md").read_text()
    assert f"Best setting: {best} (trainer.lr=" in md and "chosen by val/loss (min)" in md
    assert "## test split: mean ± std over seeds" in md and "## val split" in md
    assert md in res.stdout

    # `mfcf evaluate SWEEP_DIR` rebuilds the same summary without Ray
    code = ("import sys; from mfcf.cli import main; rc = main(['evaluate', sys.argv[1]]); "
            "assert 'ray' not in sys.modules; sys.exit(rc)")
    again = subprocess.run([sys.executable, "-c", code, str(sweep_dir)], capture_output=True, text=True, env=env)
    assert again.returncode == 0, again.stderr
    assert md in again.stdout


def test_pip_installed_plugin_package_is_used_by_the_workers(tmp_path, ray_tmp):
    with installed_demo_package(tmp_path, dist="mfcf-sweepdemo", plugin="sweepdemo", model="sweepdemo_means",
                                version="0.2.0"):
        experiment = toy_experiment(epochs=2)
        experiment.update(plugins=["mfcf_toy"], model={"name": "sweepdemo_means"},
                          facets=[{"latent_dim": 1, "n_clusters": 3}])
        path = write_sweep(tmp_path / "demo.yaml", experiment=experiment, seeds=[0, 1],
                           search={"model.scale": [2.0]}, storage=str(tmp_path / "sweeps"), name="demo")
        res = mfcf("sweep", str(path), "--num-cpus", "2", "--quiet", env=cli_env(ray_tmp))
        assert res.returncode == 0, res.stdout + res.stderr
        assert _trial_lines(res.stdout) == []  # --quiet: the summary only
        trials = trial_dirs(tmp_path / "sweeps" / "demo")
        assert len(trials) == 2
        for trial in trials.values():
            plugins = read_json(trial / "run" / "plugins.json")  # written by the worker that trained it
            assert {"plugin": "sweepdemo", "package": "mfcf-sweepdemo", "version": "0.2.0"} in plugins
            assert read_json(trial / "trial.json")["status"] == "completed"


def test_a_crashed_trial_is_retried_from_its_checkpoint(tmp_path, ray_tmp):
    """s000 fails once and is retried; s002 fails on every attempt (its marker cannot be
    written); s001 and s003 never fail."""
    marker = tmp_path / "failed-once"
    experiment = toy_experiment()
    experiment["model"] = {"name": "toy_faulty"}
    path = write_sweep(tmp_path / "fault.yaml", experiment=experiment, seeds=[0],
                       search={"model.fail_marker": [str(marker), "/nonexistent-mfcf-dir/marker"],
                               "model.fail_at_epoch": [1, -1]},
                       metric="val/loss", max_failures=1, storage=str(tmp_path / "sweeps"), name="fault")
    res = mfcf("sweep", str(path), "--num-cpus", "2", env=cli_env(ray_tmp))
    assert res.returncode == 2, res.stdout + res.stderr
    assert "s000-seed0  crashed  (RuntimeError: deliberate failure at the start of epoch 1" in res.stdout
    assert "retrying from its last checkpoint (1 epoch(s) done)" in res.stdout
    assert "s002-seed0  crashed  (FileNotFoundError" in res.stdout
    assert "s002-seed0  FAILED" in res.stdout
    assert sum("  done  " in line for line in _trial_lines(res.stdout)) == 3  # s000, s001, s003
    assert "TrainingError: 1 trial(s) failed after all retries:\n  s002-seed0: FileNotFoundError" in res.stderr
    assert "s002-seed0/error.txt" in res.stderr
    assert "Continue with: mfcf sweep --resume" in res.stderr
    assert "Traceback" not in res.stdout + res.stderr

    failed, first_pid, first_epoch = marker.read_text().splitlines()[0].split()
    later = [line.split() for line in marker.read_text().splitlines()[1:]]
    assert (failed, first_epoch) == ("failed", "1")
    # the retry ran in another process and started at epoch 1, not 0: it resumed from the checkpoint
    assert [int(epoch) for _, epoch in later] == [1, 2] and {pid for pid, _ in later} != {first_pid}

    sweep_dir = tmp_path / "sweeps" / "fault"
    trials = trial_dirs(sweep_dir)
    info = read_json(trials["s000-seed0"] / "trial.json")
    assert (info["attempts"], info["restored_from_checkpoint"], info["status"]) == (2, [2], "completed")
    assert [r["epoch"] for r in _csv(trials["s000-seed0"] / "run" / "metrics.csv")] == ["0", "1", "2"]
    assert len(list((trials["s000-seed0"] / "run" / "tb").iterdir())) == 2  # one event file per attempt
    # the trainer's resume is exact: the same weights as the trial that never failed
    crashed, clean = _weights(trials["s000-seed0"] / "run"), _weights(trials["s001-seed0"] / "run")
    assert all(torch.equal(crashed[k], clean[k]) for k in clean)

    info = read_json(trials["s002-seed0"] / "trial.json")
    assert (info["attempts"], info["status"]) == (2, "failed")
    assert "FileNotFoundError" in (trials["s002-seed0"] / "error.txt").read_text()
    summary = (sweep_dir / "summary.md").read_text()
    assert "3 of 4 trials completed" in summary
    assert "| s002 | 0 | failed |" in summary
    best = next(r for r in _csv(sweep_dir / "summary.csv") if r["best"] == "True")["setting"]
    assert best != "s002"


def test_a_killed_driver_resumes_without_repeating_finished_trials(tmp_path, ray_tmp):
    experiment = toy_experiment(epochs=6)
    experiment["model"] = {"name": "toy_faulty", "sleep_per_epoch": 0.5}
    path = write_sweep(tmp_path / "kill.yaml", experiment=experiment, seeds=[0, 1],
                       search={"trainer.lr": [0.01, 0.003]}, metric="val/loss", max_concurrent=2,
                       storage=str(tmp_path / "sweeps"), name="kill")
    env = cli_env(ray_tmp)
    sweep_dir = tmp_path / "sweeps" / "kill"
    driver = mfcf_background("sweep", str(path), "--num-cpus", "2", env=env, log=tmp_path / "driver.log")

    def progress():
        done, running = [], []
        if sweep_dir.is_dir():
            for name, trial in trial_dirs(sweep_dir).items():
                status = read_json(trial / "trial.json").get("status")
                rows = len(_csv(trial / "run" / "metrics.csv")) if (trial / "run" / "metrics.csv").is_file() else 0
                (done if status == "completed" else running).append((name, rows))
        return done, running

    try:
        deadline = time.monotonic() + 240
        while True:  # a finished trial, and a running one a few epochs (checkpoints) in, far from its end
            done, running = progress()
            if done and any(3 <= rows <= 4 for _, rows in running):
                break
            assert driver.poll() is None, (tmp_path / "driver.log").read_text()
            assert time.monotonic() < deadline, "the sweep made no progress"
            time.sleep(0.2)
        kill_session(driver.pid)  # the driver, its private Ray instance and the trial workers, at once
        driver.wait(timeout=30)
    finally:
        kill_session(driver.pid)
    time.sleep(0.5)
    assert session_processes(driver.pid) == []
    finished = {name for name, _ in done}
    def untouched(name):  # what a repeated trial would rewrite
        run = sweep_dir / name / "run"
        return [(run / f).stat().st_mtime_ns for f in ("model.pt", "eval-test.json", "metrics.csv")]

    before = {name: untouched(name) for name in finished}
    interrupted = {name for name, rows in running if 3 <= rows <= 4}
    assert len(finished) < 4

    res = mfcf("sweep", "--resume", str(sweep_dir), "--num-cpus", "2", env=env)
    assert res.returncode == 0, res.stdout + res.stderr
    assert "resuming: finished trials are kept" in res.stdout
    lines = _trial_lines(res.stdout)
    assert len(lines) >= 4 - len(finished)
    # a trial that finished in the instant before the kill, unknown to Tune's saved state, is
    # reported again from its files, not trained again
    assert all("finished before the resume" in line for line in lines for name in finished if name in line)
    trials = trial_dirs(sweep_dir)
    for name, trial in trials.items():
        info = read_json(trial / "trial.json")
        assert info["status"] == "completed"
        assert [r["epoch"] for r in _csv(trial / "run" / "metrics.csv")] == [str(e) for e in range(6)]
        if name in finished:  # untouched: not trained again, not evaluated again
            assert info["attempts"] == 1 and untouched(name) == before[name]
        if name in interrupted:  # continued from its last Tune checkpoint, in the same run directory
            assert info["attempts"] == 2 and info["restored_from_checkpoint"] == [2]
            assert len(list((trial / "run" / "tb").iterdir())) == 2
    summary = (sweep_dir / "summary.md").read_text()
    assert "4 of 4 trials completed" in summary and "Best setting: s00" in summary


def test_asha_stops_weak_trials_and_the_summary_leaves_them_out(tmp_path, ray_tmp):
    path = write_sweep(tmp_path / "asha.yaml", experiment=toy_experiment(epochs=4), seeds=[0],
                       search={"trainer.lr": [0.03, 0.01, 0.001, 0.0001]}, metric="val/loss", mode="min",
                       max_concurrent=2, scheduler={"asha": {"grace_period": 1, "reduction_factor": 2}},
                       storage=str(tmp_path / "sweeps"), name="asha")
    res = mfcf("sweep", str(path), "--num-cpus", "2", env=cli_env(ray_tmp))
    assert res.returncode == 0, res.stdout + res.stderr
    sweep_dir = tmp_path / "sweeps" / "asha"
    stopped = []
    for name, trial in trial_dirs(sweep_dir).items():
        status = read_json(trial / "trial.json")["status"]
        epochs = len(_csv(trial / "run" / "metrics.csv"))
        if status == "completed":
            assert epochs == 4 and (trial / "run" / "eval-test.json").is_file()
        else:  # stopped at a rung: fewer epochs, never evaluated, named in the output
            assert status == "stopped early" and epochs < 4 and not (trial / "run" / "eval-test.json").exists()
            assert f"{name}  stopped  " in res.stdout
            stopped.append(name)
    summary = (sweep_dir / "summary.md").read_text()
    assert f"{4 - len(stopped)} of 4 trials completed" in summary
    for name in stopped:
        assert f"| {name[:4]} | 0 | stopped early |" in summary
    best = next(r for r in _csv(sweep_dir / "summary.csv") if r["best"] == "True")["setting"]
    assert f"{best}-seed0" not in stopped


def test_gpu_trials_on_a_machine_without_gpus_fail_at_once(tmp_path, ray_tmp):
    path = write_sweep(tmp_path / "gpu.yaml", experiment=toy_experiment(), resources={"cpu": 1, "gpu": 0.25},
                       storage=str(tmp_path / "sweeps"), name="gpu")
    started = time.monotonic()
    res = mfcf("sweep", str(path), "--num-cpus", "2", "--num-gpus", "0", env=cli_env(ray_tmp), timeout=120)
    assert res.returncode == 2, res.stdout + res.stderr
    assert "ClusterError: each trial asks for 0.25 GPU (resources.gpu) but this Ray cluster has no GPU" in res.stderr
    assert "Traceback" not in res.stderr
    assert time.monotonic() - started < 90
    assert not (tmp_path / "sweeps" / "gpu").exists()


def test_existing_cluster_with_token_authentication(tmp_path, ray_tmp):
    path = write_sweep(tmp_path / "c.yaml", experiment=toy_experiment(epochs=2), seeds=[0, 1],
                       storage=str(tmp_path / "sweeps"), name="cluster", metric="val/loss")
    with ray_head(ray_tmp) as head:
        assert processes_using(ray_tmp / "head")
        address = head["address"]
        # without the cluster's token: a clear error that says what to set
        res = mfcf("sweep", str(path), "--address", address, env=cli_env(ray_tmp), timeout=180)
        assert res.returncode == 2, res.stdout + res.stderr
        assert f"ClusterError: could not join the Ray cluster at '{address}'" in res.stderr
        assert "export RAY_AUTH_MODE=token RAY_AUTH_TOKEN=<that token>" in res.stderr
        assert "Traceback" not in res.stderr

        env = cli_env(ray_tmp, RAY_AUTH_MODE="token", RAY_AUTH_TOKEN=head["token"])
        res = mfcf("sweep", str(path), "resources.gpu=0.5", "--address", address, env=env, timeout=120)
        assert res.returncode == 2 and "this Ray cluster has no GPU" in res.stderr, res.stderr

        # the head runs without the tests' PYTHONPATH: the toy plugins reach its workers only
        # through the driver's runtime_env
        res = mfcf("sweep", str(path), "--address", address, env=env)
        assert res.returncode == 0, res.stdout + res.stderr
        assert f"on the Ray cluster at {address} (2 CPUs)" in res.stdout
        assert len(_trial_lines(res.stdout)) == 2
        for trial in trial_dirs(tmp_path / "sweeps" / "cluster").values():
            assert read_json(trial / "trial.json")["status"] == "completed"
            assert (trial / "run" / "eval-test.json").is_file()
    assert processes_using(ray_tmp / "head") == []  # that node, and only it, is gone
