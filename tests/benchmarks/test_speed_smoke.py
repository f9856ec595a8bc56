"""Every speed benchmark runs end to end in --smoke mode and writes well-formed JSON.

Nothing here asserts on wall time (the machines are shared); only that each script exits 0
and reports positive, finite numbers under the keys the README's tables are built from.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

SPEED = Path(__file__).resolve().parents[2] / "benchmarks" / "speed"

pytestmark = pytest.mark.slow


def run(script: str, tmp_path: Path, *extra: str) -> dict:
    out = tmp_path / f"{script}.json"
    proc = subprocess.run([sys.executable, str(SPEED / f"{script}.py"), "--smoke", "--json", str(out), *extra],
                          capture_output=True, text=True, timeout=300, cwd=SPEED.parents[1])
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(out.read_text())


def positive(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value) and value > 0


def check_machine(result: dict) -> None:
    assert {"cpu", "cores", "torch_threads", "torch", "date"} <= set(result["machine"])


def test_throughput_smoke(tmp_path):
    r = run("throughput", tmp_path, "--compare-compile", "default")
    check_machine(r)
    assert r["smoke"] is True and r["compare_compile"] == "default"
    models = {s["model"] for s in r["steps"]}
    assert {"mfcvae", "dec"} <= models
    for s in r["steps"]:
        assert positive(s["examples_per_s"]) and positive(s["full_step"]["ms_median"])
        if s["model"] == "mfcvae":
            assert positive(s["bare_step"]["ms_median"])
            assert positive(s["full_over_bare"]["ratio_of_medians"])
            assert positive(s["full_over_bare"]["median_pairwise_ratio"])
        else:
            assert positive(s["pretrain_examples_per_s"])
    compiled = [s["full_step_compiled"] for s in r["steps"] if "full_step_compiled" in s]
    assert len(compiled) == 1  # the J = 2 config of the smoke run, not its baselines
    assert compiled[0]["compile"] == "default" and positive(compiled[0]["ms_median"])
    assert positive(compiled[0]["over_eager"]["ratio_of_medians"]) and positive(compiled[0]["over_bare"]["ratio_of_medians"])
    assert any(s["facets"] == 1 and s["model"] == "mfcvae" for s in r["steps"])  # J = 1 too
    assert r["fits"] and all(positive(f["fit_s"]) and positive(f["examples_per_s"]) for f in r["fits"])
    assert r["memory"] and all(positive(m["peak_rss_kb"]) and positive(m["wall_s"]) for m in r["memory"])


def test_scaling_smoke(tmp_path):
    r = run("scaling", tmp_path, "--figures", str(tmp_path / "figures"))
    check_machine(r)
    assert set(r["axes"]) == {"batch", "facets", "image"}
    assert [p["x"] for p in r["axes"]["facets"]] == [1, 2, 3, 4]
    for points in r["axes"].values():
        for p in points:
            assert positive(p["examples_per_s"]) and positive(p["step"]["ms_median"])
    for name in ("batch", "facets", "image"):
        png = tmp_path / "figures" / f"scaling_{name}.png"
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_epoch_shares_smoke(tmp_path):
    r = run("epoch_shares", tmp_path)
    check_machine(r)
    assert [m["name"] for m in r["models"]][0] == "paper_mnist_random"
    for m in r["models"]:
        assert positive(m["epoch_s_estimate"])
        for key in ("gmm_init", "gmm_init_subsample", "evaluate", "assign"):
            assert positive(m["seconds_median"][key]) and positive(m["share_of_epoch"][key])
        assert set(m["target_met"]) == {"gmm_init", "gmm_init_subsample", "evaluate"}


def test_step_overhead_smoke(tmp_path):
    r = run("step_overhead", tmp_path, "--threads", "1")
    check_machine(r)
    for key in ("full_ms_median", "bare_ms_median", "ratio_of_medians", "median_pairwise_ratio", "examples_per_s_full"):
        assert positive(r[key])


def test_data_iteration_smoke(tmp_path):
    r = run("data_iteration", tmp_path, "--threads", "1")
    check_machine(r)
    for key in ("data_epoch_s_median", "train_epoch_s_estimate", "data_share_of_epoch"):
        assert positive(r[key])


def test_gpu_smoke_on_cpu(tmp_path):
    """The GPU benchmark's step variants (eager; bf16 autocast) and its protocol run work on the
    CPU too: a two-epoch version of the paper MNIST protocol on the Debian Fashion-MNIST files."""
    r = run("gpu", tmp_path, "--variants", "eager-fp32,eager-bf16", "--protocol-root",
            "/usr/share/datasets/fashion-mnist", "--protocol-run-dir", str(tmp_path / "protocol"),
            "--protocol-overrides", "schedule.epochs_per_step=[1,1]", "trainer.epochs=2")
    check_machine(r)
    assert [s["variant"] for s in r["steps"]] == ["eager-fp32", "eager-bf16"]
    for s in r["steps"]:
        assert positive(s["full_ms_median"]) and positive(s["bare_ms_median"]) and positive(s["examples_per_s"])
        assert s["sync_check"] == {"checked": False, "why": "not a CUDA device"}
    protocol = r["protocol"]
    assert protocol["finished"] is True and protocol["epochs_done"] == 2
    assert positive(protocol["train_s"]) and protocol["wall_s"] >= protocol["train_s"]
    assert 0 <= protocol["until_run_dir_s"] <= protocol["wall_s"] + 1
    assert '"hungarian_acc"' in protocol["evaluation"]
