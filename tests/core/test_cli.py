"""The `mfcf` command: errors without tracebacks (exit 2), listings, config show, train + evaluate."""

from __future__ import annotations

import subprocess
import sys

import yaml


def _run(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "mfcf.cli", *args], capture_output=True, text=True, cwd=cwd)


def test_bad_config_exits_2_without_traceback(tmp_path, toy_config):
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(toy_config))
    res = _run("train", str(path), "model.name=toy_kmean")
    assert res.returncode == 2
    assert "Traceback" not in res.stderr
    assert "UnknownComponentError: no model named 'toy_kmean'" in res.stderr
    assert "did you mean: toy_kmeans" in res.stderr


def test_missing_config_and_resume_dir(tmp_path):
    res = _run("train", str(tmp_path / "none.yaml"))
    assert res.returncode == 2 and "does not exist" in res.stderr and "Traceback" not in res.stderr
    res = _run("train", "--resume", str(tmp_path / "none"))
    assert res.returncode == 2 and "RunDirError" in res.stderr and "Traceback" not in res.stderr


def test_config_show_prints_defaults(tmp_path, toy_config):
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(toy_config))
    res = _run("config", "show", str(path), "trainer.lr=0.5")
    assert res.returncode == 0, res.stderr
    shown = yaml.safe_load(res.stdout)
    assert shown["trainer"]["lr"] == 0.5 and shown["trainer"]["log_every_steps"] == 50
    assert shown["model"]["noise"] == 0.1


def test_plugins_lists_builtins_by_kind():
    res = _run("plugins")
    assert res.returncode == 0, res.stderr
    for kind in ("datasets:", "encoders:", "priors:", "elbos:", "schedules:", "models:"):
        assert kind in res.stdout


def test_train_then_evaluate(tmp_path, toy_config):
    toy_config["model"] = {"name": "toy_kmeans"}
    toy_config["facets"] = [{"latent_dim": 1, "n_clusters": 6}]
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(toy_config))
    res = _run("train", str(path), "--quiet", "--run-dir", str(tmp_path / "run"))
    assert res.returncode == 0, res.stderr
    assert "many-to-one acc" in res.stdout and "Hungarian acc (1:1)" in res.stdout
    res = _run("evaluate", str(tmp_path / "run"), "--split", "val")
    assert res.returncode == 0, res.stderr
    assert "split: val (48 examples)" in res.stdout
    assert (tmp_path / "run" / "eval-val.json").is_file()


def test_evaluate_several_runs_prints_mean_and_std(tmp_path, toy_config):
    toy_config["model"] = {"name": "toy_kmeans"}
    toy_config["facets"] = [{"latent_dim": 1, "n_clusters": 4}]
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(toy_config))
    runs = []
    for seed in (0, 1):
        run = tmp_path / f"run{seed}"
        res = _run("train", str(path), f"trainer.seed={seed}", "--quiet", "--no-eval", "--run-dir", str(run))
        assert res.returncode == 0, res.stderr
        runs.append(str(run))
    res = _run("evaluate", *runs, "--out", str(tmp_path))
    assert res.returncode == 0, res.stderr
    assert "Results over 2 runs (mean +- std)" in res.stdout and "| all | 2/2 |" in res.stdout
    import json

    rows = json.loads((tmp_path / "evaluation-summary.json").read_text())["rows"]
    singles = [json.loads((tmp_path / f"run{s}" / "eval-test.json").read_text()) for s in (0, 1)]
    nmi = [r["facets"][0]["factors"]["top"]["nmi"] for r in singles]
    row = next(r for r in rows if r.get("facet") in (0, "0") and r.get("factor") == "top" and r.get("metric") == "nmi"
               and r.get("split") == "test")
    assert abs(float(row["mean"]) - sum(nmi) / 2) < 1e-9
