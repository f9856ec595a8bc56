"""The quality benchmark's smoke version: two methods x two seeds on the 8x8 digits through
real `mfcf sweep` runs (private local Ray instances), then its tables, records and plot."""

from __future__ import annotations

import csv
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests" / "integration"))
from sweep_support import short_tmp  # noqa: E402


@pytest.mark.slow
def test_quality_benchmark_smoke(tmp_path):
    out, figures = tmp_path / "quality", tmp_path / "figures"
    with short_tmp() as ray_tmp:
        env = {**os.environ, "RAY_TMPDIR": str(ray_tmp), "MFCF_RAY_OBJECT_STORE_MB": "100"}
        proc = subprocess.run([sys.executable, str(ROOT / "benchmarks/quality/run.py"), "--smoke", "--out", str(out),
                               "--figures", str(figures), "--parallel", "2", "--cpus", "1"],
                              capture_output=True, text=True, env=env, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]

    records = json.loads((out / "quality.json").read_text())["records"]
    assert sorted((r["method"], r["seed"]) for r in records) == [("kmeans", 0), ("kmeans", 1),
                                                                ("mfcvae_j2", 0), ("mfcvae_j2", 1)]
    for r in records:
        score = r["scores"]["label"]
        assert 0.0 <= score["hungarian_acc"] <= 1.0 and 0.0 <= score["nmi"] <= 1.0
        # the reported test score is exactly the chosen facet's entry in the run's own evaluation
        assert score["hungarian_acc"] == r["test_all"][f"facet{score['facet']}/label/hungarian_acc"]
        assert r["curve"] and all(t > 0 for t, _ in r["curve"])
    assert len(next(r for r in records if r["method"] == "mfcvae_j2")["curve"]) == 2  # one point per epoch
    # k-means on raw digits pixels is far above chance (0.1)
    assert min(r["scores"]["label"]["hungarian_acc"] for r in records if r["method"] == "kmeans") > 0.6

    with open(out / "quality.csv", newline="") as fh:
        rows = {(r["method"], r["metric"]): r for r in csv.DictReader(fh)}
    accs = [r["scores"]["label"]["hungarian_acc"] for r in records if r["method"] == "kmeans"]
    assert math.isclose(float(rows[("kmeans", "hungarian_acc")]["mean"]), sum(accs) / 2)
    assert rows[("kmeans", "hungarian_acc")]["n"] == "2"
    assert "| `kmeans` |" in (out / "quality.md").read_text()
    assert (figures / "quality_accuracy_over_time.png").stat().st_size > 10_000

    # every finished trial is stored on its own; a second call runs only the seeds without a record
    stored = out / "trials" / "digits"
    assert sorted(p.relative_to(stored).as_posix() for p in stored.rglob("*.json")) == [
        "kmeans/seed0.json", "kmeans/seed1.json", "mfcvae_j2/seed0.json", "mfcvae_j2/seed1.json"]
    kept = (stored / "mfcvae_j2" / "seed0.json").read_text()
    (stored / "kmeans" / "seed1.json").unlink()
    with short_tmp() as ray_tmp:
        env = {**os.environ, "RAY_TMPDIR": str(ray_tmp), "MFCF_RAY_OBJECT_STORE_MB": "100"}
        again = subprocess.run([sys.executable, str(ROOT / "benchmarks/quality/run.py"), "--smoke", "--out", str(out),
                                "--figures", str(figures)], capture_output=True, text=True, env=env, timeout=300)
    assert again.returncode == 0, again.stdout[-3000:] + again.stderr[-3000:]
    assert "digits-mfcvae_j2: ok (every seed stored)" in again.stdout
    assert len(list((out / "sweeps").glob("digits-kmeans-*-seeds-1"))) == 1  # a sweep over the missing seed alone
    assert not list((out / "sweeps").glob("digits-mfcvae_j2-*-seeds-1"))
    assert (stored / "kmeans" / "seed1.json").is_file() and (stored / "mfcvae_j2" / "seed0.json").read_text() == kept
    assert len(json.loads((out / "quality.json").read_text())["records"]) == 4
