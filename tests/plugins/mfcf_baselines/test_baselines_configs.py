"""The shipped baseline configs: complete, valid, and runnable end to end; the CLI lists the
baselines and trains + evaluates one of them."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

import mfcf
from mfcf.engine.build import resolve

ROOT = Path(__file__).resolve().parents[3]
CONFIGS = ROOT / "configs" / "baselines"
BASELINES = ["kmeans", "gmm_pca", "umap_gmm", "ae_kmeans", "dec", "idec", "vade", "mfcvae_j1"]
CPU_SETS = ["mnist5k", "fashion_mnist", "colored_mnist", "colored_fashion_mnist", "shapes"]
ALL = sorted(CONFIGS.rglob("*.yaml"))


def cli(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "mfcf.cli", *args], capture_output=True, text=True,
                          timeout=timeout, cwd=ROOT)


def test_every_baseline_has_a_cpu_config_per_dataset_and_paper_configs():
    for folder in CPU_SETS:
        assert sorted(p.stem for p in (CONFIGS / folder).glob("*.yaml")) == sorted(BASELINES), folder
    assert {p.stem for p in (CONFIGS / "paper").glob("*.yaml")} >= {"dec_mnist", "idec_mnist", "vade_mnist"}


@pytest.mark.parametrize("name", BASELINES)
def test_coloured_fashion_configs_are_the_fashion_configs_on_coloured_data(name):
    """Same model, networks, epochs and batch as on Fashion-MNIST: only the data (and the
    likelihood, Gaussian for RGB) differ, so the coloured row compares methods at the same budget."""
    grey = mfcf.load_config(CONFIGS / "fashion_mnist" / f"{name}.yaml")
    coloured = mfcf.load_config(CONFIGS / "colored_fashion_mnist" / f"{name}.yaml")
    assert coloured["data"] == {**grey["data"], "name": "colored", "base": "fashion_mnist", "fg_colors": 5,
                                "bg_colors": 5, "image_size": 32}
    if "likelihood" in grey:
        assert coloured["likelihood"] == {"name": "gaussian", "sigma": 0.3, "mean_activation": "sigmoid"}
    drop = lambda c: {k: v for k, v in c.items() if k not in ("data", "likelihood")}  # noqa: E731
    assert drop(coloured) == drop(grey)


@pytest.mark.parametrize("path", ALL, ids=[str(p.relative_to(CONFIGS)) for p in ALL])
def test_config_resolves(path):
    """Every section is validated against its component (no data is loaded)."""
    resolved = resolve(mfcf.load_config(path))
    model = resolved.classes["model"]
    assert model.name in {"kmeans", "gmm_pca", "ae_kmeans", "dec", "idec", "vade", "mfcvae"}
    assert len(resolved.facets) == 1
    if "pretrain_epochs" in resolved.config["model"]:  # the clustering phase is reached
        assert resolved.trainer.epochs > resolved.config["model"]["pretrain_epochs"]


SMOKE = {"kmeans": [], "gmm_pca": ["facets.0.latent_dim=5"], "umap_gmm": ["facets.0.latent_dim=5"],
         "mfcvae_j1": ["trainer.epochs=1"]}


@pytest.mark.slow
@pytest.mark.parametrize("name", BASELINES)
def test_shapes_config_trains_and_is_scored_against_every_factor(tmp_path, name):
    """Each baseline on a small draw of the procedural shapes (3 colour channels, two labelled
    factors): one facet, scored against both factors."""
    small = ["data.sampling=random", "data.n_train=400", "data.n_test=100", f"data.cache_dir={tmp_path / 'cache'}",
             f"trainer.runs_dir={tmp_path}", "trainer.threads=1"]
    short = SMOKE.get(name, ["model.pretrain_epochs=1", "trainer.epochs=2"])
    run = mfcf.train(CONFIGS / "shapes" / f"{name}.yaml", small + short, quiet=True)
    (facet,) = mfcf.evaluate(run)["facets"]
    assert set(facet["factors"]) == {"shape", "floor_hue"}
    assert all(0.0 <= s["hungarian_acc"] <= 1.0 and -1.0 <= s["ari"] <= 1.0 for s in facet["factors"].values())
    assert facet["n_clusters"] == 10


def test_mfcf_plugins_lists_the_baselines():
    res = cli("plugins", timeout=120)
    assert res.returncode == 0, res.stderr
    models = res.stdout.split("models:")[1]
    for name in ("kmeans", "gmm_pca", "ae_kmeans", "dec", "idec", "vade"):
        assert f"  {name} " in models
    assert "  mlp " in res.stdout.split("encoders:")[1].split("decoders:")[0]
    assert "  mlp " in res.stdout.split("decoders:")[1]


def test_cli_trains_and_evaluates_a_baseline_config(tmp_path):
    run = tmp_path / "digits_kmeans"
    res = cli("train", "configs/baselines/digits/kmeans.yaml", "trainer.threads=1", "--run-dir", str(run), "--quiet")
    assert res.returncode == 0, res.stderr
    assert "hungarian" in res.stdout.lower() and "label" in res.stdout
    res = cli("evaluate", str(run))
    assert res.returncode == 0, res.stderr
    scores = json.loads((run / "eval-test.json").read_text())["facets"][0]["factors"]["label"]
    assert 0.7 <= scores["hungarian_acc"] <= 0.85


def test_cli_reports_a_bad_baseline_config_without_traceback(tmp_path):
    res = cli("train", "configs/baselines/digits/kmeans.yaml", "facets.0.n_clusters=0", "--run-dir",
              str(tmp_path / "bad"))
    assert res.returncode == 2 and "Traceback" not in res.stderr
    assert "facets.0.n_clusters" in res.stderr
