"""`mfcf report` for models without a decoder: one facet (k-means) and two facets (soft k-means)
-- what does not apply is skipped with a reason, everything else is drawn; command errors."""

from __future__ import annotations

import mfcf
import pytest
from mfcf.report import build_report
from mfcf.report.checks import png_problems
from mfcf.report.command import main


def check_png(path, **limits):
    assert not png_problems(path, **limits)


@pytest.fixture
def kmeans_run(toy_config):
    toy_config["model"] = {"name": "toy_kmeans"}
    toy_config["facets"] = [{"latent_dim": 1, "n_clusters": 6}]
    return mfcf.train(toy_config, quiet=True)


def test_one_facet_no_decoder(kmeans_run, tmp_path):
    page, sections = build_report(kmeans_run, out=tmp_path / "r")
    skipped = {s.title: s.skipped for s in sections if s.skipped}
    assert set(skipped) == {"Samples from each cluster", "Compositionality: swapping one facet between inputs",
                            "Training curves"}
    assert "cannot sample from a cluster" in skipped["Samples from each cluster"]
    assert "no decoder" in skipped["Compositionality: swapping one facet between inputs"]
    assert "fit_seconds" in skipped["Training curves"]
    for name in ("nmi_matrix.png", "confusion_facet0.png", "top_examples_facet0.png"):
        check_png(tmp_path / "r" / name, min_size=(250, 120))
    assert sorted(p.name for p in (tmp_path / "r").glob("*.png")) == sorted(
        ["nmi_matrix.png", "confusion_facet0.png", "top_examples_facet0.png"])
    html = page.read_text()
    assert html.count("class='skipped'") == 3 and "fitted without a gradient loop" in html


def test_two_facets_without_decoder_get_curves_but_no_swaps(toy_config, tmp_path):
    run = mfcf.train(toy_config, quiet=True)  # toy_softkmeans: gradient-trained, cluster_probs only
    _, sections = build_report(run, out=tmp_path / "r")
    skipped = {s.title for s in sections if s.skipped}
    assert skipped == {"Samples from each cluster", "Compositionality: swapping one facet between inputs"}
    check_png(tmp_path / "r" / "training_curves.png")
    for j in (0, 1):
        check_png(tmp_path / "r" / f"confusion_facet{j}.png", min_size=(250, 120))


def test_command_errors_exit_2_without_traceback(kmeans_run, tmp_path, capsys):
    assert main([str(tmp_path / "nothing")]) == 2
    assert "RunDirError" in capsys.readouterr().err
    assert main([str(kmeans_run), "--examples", "0", "--out", str(tmp_path / "r")]) == 2
    assert "ConfigError: n_examples must be at least 1" in capsys.readouterr().err
    assert main([str(kmeans_run), "--split", "val", "--out", str(tmp_path / "r")]) == 0  # toy: val_fraction 0.2
    out = capsys.readouterr().out
    assert "Samples from each cluster: skipped (" in out and f"written: {tmp_path / 'r' / 'report.html'}" in out


def test_single_facet_generative_model_samples_but_does_not_swap(toy_config, tmp_path):
    """An MFCVAE with J = 1 (VaDE-like) on the toy blobs: samples yes, swaps no (nothing to keep)."""
    toy_config.update(
        model={"name": "mfcvae"}, facets=[{"latent_dim": 2, "n_clusters": 4, "prior": {"name": "mog"}}],
        encoder={"name": "ladder_fc", "backbone_dims": [16], "backbone_layers": [1]},
        decoder={"name": "ladder_fc", "backbone_dims": [16], "backbone_layers": [1], "rung_dims": [16],
                 "rung_layers": [1]},
        likelihood={"name": "gaussian", "sigma": 0.3}, elbo={"name": "mfcvae_analytic"},
        schedule={"name": "constant"})
    toy_config["trainer"]["epochs"] = 2
    run = mfcf.train(toy_config, quiet=True)
    _, sections = build_report(run, out=tmp_path / "r", options=None)
    skipped = {s.title: s.skipped for s in sections if s.skipped}
    assert list(skipped) == ["Compositionality: swapping one facet between inputs"]
    assert "single facet" in skipped["Compositionality: swapping one facet between inputs"]
    check_png(tmp_path / "r" / "generated_facet0.png", min_size=(250, 100))
