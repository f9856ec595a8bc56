"""`mfcf report` on a short real MFCVAE run: every figure exists, is a readable non-blank PNG of
screen size, report.html embeds and links them all, and the run directory is left untouched."""

from __future__ import annotations

import base64
import json
import re
import subprocess
import sys
from pathlib import Path

import mfcf
import pytest
from mfcf.report import ReportOptions, build_report
from mfcf.report.checks import png_problems

pytestmark = pytest.mark.slow  # trains a conv MFCVAE for two short epochs (~10-20 s on 2 CPU cores)

FIGURES = ["nmi_matrix.png", "confusion_facet0.png", "confusion_facet1.png", "top_examples_facet0.png",
           "top_examples_facet1.png", "generated_facet0.png", "generated_facet1.png", "swap_facet0.png",
           "swap_facet1.png", "training_curves.png"]


def shapes_config(runs_dir: Path) -> dict:
    """3DShapes-like scenes where only floor hue (10 values) and shape (4) vary."""
    return {
        "data": {"name": "shapes_procedural", "sampling": "random", "n_train": 600, "n_test": 200, "image_size": 32,
                 "wall_hue": [5], "object_hue": [6], "scale": [3], "orientation": [7], "cache": False,
                 "batch_size": 100, "val_fraction": 0.2},
        "model": {"name": "mfcvae"},
        "encoder": {"name": "ladder_conv", "width": 0.25},
        "decoder": {"name": "ladder_conv", "width": 0.25, "faithful_output": False},
        "likelihood": {"name": "gaussian", "sigma": 0.3, "mean_activation": "sigmoid"},
        "facets": [{"latent_dim": 3, "n_clusters": 6, "prior": {"name": "mog", "covariance": "full"}},
                   {"latent_dim": 3, "n_clusters": 4, "prior": {"name": "mog", "covariance": "diag"}}],
        "elbo": {"name": "mfcvae_analytic"},
        "schedule": {"name": "progressive", "epochs_per_step": [1, 1], "fade_in_batches": 3},
        "trainer": {"epochs": 2, "lr": 0.003, "seed": 0, "threads": 2, "runs_dir": str(runs_dir)},
    }


def check_png(path: Path, **limits) -> None:
    assert not png_problems(path, **limits)


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory):
    runs = tmp_path_factory.mktemp("runs")
    return mfcf.train(shapes_config(runs), quiet=True)


def _snapshot(run: Path) -> dict[str, int]:
    return {str(p.relative_to(run)): p.stat().st_mtime_ns for p in run.rglob("*") if p.is_file()}


def test_report_writes_every_figure_and_a_self_contained_page(trained_run, tmp_path):
    before = _snapshot(trained_run)
    page, sections = build_report(trained_run, "test", tmp_path / "rep", ReportOptions(n_examples=6, n_pairs=5))
    assert _snapshot(trained_run) == before, "the report must not modify the run directory"
    assert [s.skipped for s in sections] == [None] * len(sections)
    for name in FIGURES:
        check_png(tmp_path / "rep" / name)
    html = page.read_text()
    embedded = re.findall(r"src='data:image/png;base64,([A-Za-z0-9+/=]+)'", html)
    assert len(embedded) == len(FIGURES)
    assert {base64.b64decode(e) for e in embedded} == {(tmp_path / "rep" / n).read_bytes() for n in FIGURES}
    for link in re.findall(r"href='([^'#]+)'", html):  # every link is relative and resolves
        assert (tmp_path / "rep" / link).is_file(), link
    assert "http://" not in html and "https://" not in html and "<script" not in html
    assert "Hungarian acc (1:1)" in html and "many-to-one acc (majority)" in html and "Model selection" in html
    summary = json.loads((tmp_path / "rep" / "evaluation.json").read_text())
    assert [f["factor"] for f in summary["matching"]] and summary["nmi_matrix"]["factors"] == ["floor_hue", "shape"]
    assert sorted(f for s in summary["report"]["sections"] for f in s["figures"]) == sorted(FIGURES)


def test_report_command_with_options(trained_run, tmp_path):
    out = tmp_path / "val-report"
    res = subprocess.run([sys.executable, "-m", "mfcf.report", str(trained_run), "--split", "val", "--out", str(out),
                          "--order", "confidence", "--examples", "4", "--temperature", "0.5", "--max-clusters", "3"],
                         capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    assert f"written: {out / 'report.html'}" in res.stdout and "skipped" not in res.stdout
    assert "val split" in (out / "report.html").read_text()
    for name in FIGURES:
        check_png(out / name)
    options = json.loads((out / "evaluation.json").read_text())["report"]["options"]
    assert options["order"] == "confidence" and options["temperature"] == 0.5 and options["max_clusters"] == 3
