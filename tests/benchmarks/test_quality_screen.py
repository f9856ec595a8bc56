"""benchmarks/quality/screen.py: arms x screening seeds on the validation split, a table with the
rule applied, finished runs never run again, and the seeds that report results refused."""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCREEN = ROOT / "benchmarks/quality/screen.py"
KMEANS = str(ROOT / "configs/baselines/digits/kmeans.yaml")


def screen(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(SCREEN), *args], capture_output=True, text=True, timeout=600)


@pytest.mark.slow
def test_arms_are_scored_on_validation_and_finished_runs_are_kept(tmp_path):
    out = tmp_path / "screen"
    arms = ["--arm", "base=data.val_fraction=0.2", "--arm", "one=data.val_fraction=0.2 model.n_init=1",
            "--arm", "broken=model.n_init=0"]
    proc = screen(KMEANS, "--out", str(out), *arms, "--seeds", "0,1", "--factor", "label", "--rule", "0.5")
    assert proc.returncode == 0, proc.stderr
    rows = {line.split("|")[1].strip(): line for line in proc.stdout.splitlines() if line.startswith("| ")}
    for arm in ("base", "one"):
        accs = []
        for seed in (0, 1):
            report = json.loads((out / arm / f"seed{seed}" / "eval-val.json").read_text())
            assert report["split"] == "val"
            config = (out / arm / f"seed{seed}" / "resolved.yaml").read_text()
            assert f"seed: {seed}" in config and f"split_seed: {seed}" in config
            (match,) = [m for m in report["matching"] if m["factor"] == "label"]
            accs.append(match["hungarian_acc"])
        assert f"{statistics.fmean(accs):.3f}" in rows[arm] and f"{accs[0]:.3f} / {accs[1]:.3f}" in rows[arm]
    assert "reference" in rows["base"]
    assert "does not pass" in rows["one"]  # no arm gains 0.5 over the reference
    assert "failed, see" in rows["broken"] and (out / "broken" / "seed0.log").is_file()
    assert (out / "screen.md").read_text().count("| base |") == 1

    model = out / "base" / "seed0" / "model.pt"
    before = model.stat().st_mtime_ns
    again = screen(KMEANS, "--out", str(out), arms[0], arms[1], "--seeds", "0,1", "--factor", "label")
    assert again.returncode == 0, again.stderr
    assert model.stat().st_mtime_ns == before  # scored runs are not trained again
    assert rows["base"].split("|")[3] == again.stdout.splitlines()[2].split("|")[3]


@pytest.mark.parametrize("args, message", [
    (["--seeds", "0,10"], "screening uses seeds 0-4 only (got [10])"),
    (["--seeds", "zero"], "is not a comma-separated list of integers"),
    (["--arm", "noequals"], "is not NAME=OVERRIDES"),
    (["--arm", "a=", "--arm", "a=model.n_init=1"], "two --arm options share a name"),
])
def test_bad_arguments_exit_2_with_the_fix(tmp_path, args, message):
    arms = [] if "--arm" in args else ["--arm", "base="]
    proc = screen(KMEANS, "--out", str(tmp_path / "s"), *arms, *args)
    assert proc.returncode == 2 and message in proc.stderr and "Traceback" not in proc.stderr
    assert not (tmp_path / "s").exists()  # nothing written before the arguments are checked


def test_a_missing_config_names_the_file(tmp_path):
    proc = screen(str(tmp_path / "nope.yaml"), "--out", str(tmp_path / "s"), "--arm", "base=")
    assert proc.returncode == 2 and "nope.yaml" in proc.stderr and "not found" in proc.stderr
