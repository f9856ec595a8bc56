"""The sanity claim on real data: in a short CPU run, VaDE and DEC cluster MNIST-5k better than
k-means on its pixels, for each of two seeds (the shipped configs, trained by `mfcf train`)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

import mfcf

ROOT = Path(__file__).resolve().parents[3]
SEEDS = (0, 1)


def train_pair(model: str, runs: Path) -> dict[int, Path]:
    """Train configs/baselines/mnist5k/<model>.yaml for both seeds at once, one thread each."""
    dirs = {seed: runs / f"{model}-{seed}" for seed in SEEDS}
    procs = [subprocess.Popen([sys.executable, "-m", "mfcf.cli", "train", f"configs/baselines/mnist5k/{model}.yaml",
                               f"trainer.seed={seed}", "trainer.threads=1", "--run-dir", str(path), "--quiet",
                               "--no-eval"], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for seed, path in dirs.items()]
    for proc in procs:
        _, err = proc.communicate(timeout=900)
        assert proc.returncode == 0, err
    return dirs


@pytest.mark.slow
def test_vade_and_dec_beat_kmeans_on_pixels(tmp_path):
    scores = {}
    for model in ("kmeans", "dec", "vade"):
        for seed, run in train_pair(model, tmp_path).items():
            label = mfcf.evaluate(run)["facets"][0]["factors"]["label"]
            scores[model, seed] = (label["hungarian_acc"], label["nmi"])
    table = "\n".join(f"{m} seed {s}: acc {a:.3f} nmi {n:.3f}" for (m, s), (a, n) in scores.items())
    best_acc = max(scores["kmeans", s][0] for s in SEEDS)
    best_nmi = max(scores["kmeans", s][1] for s in SEEDS)
    assert 0.45 <= best_acc <= 0.6, table  # k-means on MNIST pixels: about 0.5
    for model in ("dec", "vade"):
        for seed in SEEDS:
            acc, nmi = scores[model, seed]
            assert acc >= best_acc + 0.05 and nmi >= best_nmi + 0.1, f"{model} seed {seed}\n{table}"
