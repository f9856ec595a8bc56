"""The report's building blocks: cluster order, curve grouping, image mosaics, PNG checks."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from mfcf.report.checks import png_problems
from mfcf.report.context import order_clusters
from mfcf.report.curves import curve_panels, curves_figure
from mfcf.report.plotting import mosaic, plt, save, to_display


def test_cluster_order_by_size_and_by_confidence():
    # cluster 0: 3 examples, mean conf 0.6; cluster 2: 2 examples, conf 0.95; cluster 1: empty
    probs = np.array([[0.6, 0.2, 0.2], [0.5, 0.3, 0.2], [0.7, 0.1, 0.2],
                      [0.0, 0.1, 0.9], [0.0, 0.0, 1.0]])
    by_size = order_clusters(probs, "size")
    assert [f.cluster for f in by_size] == [0, 2] and [f.size for f in by_size] == [3, 2]
    assert by_size[0].members.tolist() == [2, 0, 1]  # most confident first
    assert by_size[0].confidence == pytest.approx(0.6)
    assert [f.cluster for f in order_clusters(probs, "confidence")] == [2, 0]
    with pytest.raises(ValueError, match="size, confidence"):
        order_clusters(probs, "alphabet")


def test_ties_keep_lower_cluster_and_example_first():
    probs = np.eye(3)[[1, 0, 1, 0]]  # two clusters of two, all confidence 1
    facts = order_clusters(probs, "size")
    assert [f.cluster for f in facts] == [0, 1] and facts[0].members.tolist() == [1, 3]


def test_curve_panels_group_per_facet_terms_and_lr():
    cols = ["epoch", "global_step", "train/loss", "train/kl_z/0", "train/kl_z/1", "train/alpha_dec/0", "lr",
            "examples_per_s", "time/train_s", "val/loss", "val/kl_z/0", "val/facet0/shape/nmi",
            "val/facet1/shape/nmi", "val/facet0/shape/hungarian_acc"]
    panels = dict(curve_panels(cols))
    assert list(panels) == ["loss", "kl_z per facet", "alpha_dec per facet", "nmi (validation)",
                            "hungarian_acc (validation)", "learning rate (lr)"]
    assert panels["loss"] == [("train/loss", "train", None, None), ("val/loss", "val", None, None)]
    assert panels["kl_z per facet"] == [("train/kl_z/0", "train", 0, None), ("train/kl_z/1", "train", 1, None),
                                        ("val/kl_z/0", "val", 0, None)]
    assert panels["nmi (validation)"] == [("val/facet0/shape/nmi", "val", 0, "facet 0: shape"),
                                          ("val/facet1/shape/nmi", "val", 1, "facet 1: shape")]
    assert curve_panels(["epoch", "fit_seconds"]) == []


def test_curves_figure_zooms_past_an_off_scale_first_epoch(tmp_path):
    rows = [{"epoch": str(e), "train/loss": str(v), "lr": "0.001"} for e, v in enumerate([5000, 10, 8, 7, 6.5])]
    fig = curves_figure(rows, "t")
    loss_ax = fig.axes[0]
    assert loss_ax.get_ylim()[1] < 100 and any("off scale" in t.get_text() for t in loss_ax.texts)
    assert any("constant 0.001" in t.get_text() for t in fig.axes[1].texts)
    save(fig, tmp_path / "c.png")
    assert not png_problems(tmp_path / "c.png")


def test_mosaic_and_display_conversion():
    grey = torch.rand(3, 1, 4, 5)
    shown = to_display(grey * 2 - 1, (-1.0, 1.0))  # rescaled from the data's value range
    assert shown.shape == (3, 4, 5, 3) and np.allclose(shown[..., 0], grey[:, 0].numpy(), atol=1e-6)
    pic = mosaic([shown, shown[:1]], n_cols=3, pad=1)
    assert pic.shape == (2 * 5 + 1, 3 * 6 + 1, 3)
    assert np.allclose(pic[1:5, 1:6], shown[0]) and (pic[6:10, 7:] == 1.0).all()  # short row blank


def test_png_problems_catch_blank_and_oversized_figures(tmp_path):
    fig, _ = plt.subplots(figsize=(5, 3))
    save(fig, tmp_path / "blank.png")
    assert any("blank" in p or "white" in p for p in png_problems(tmp_path / "blank.png"))
    fig, ax = plt.subplots(figsize=(20, 3))
    ax.imshow(np.random.default_rng(0).random((10, 60)))
    save(fig, tmp_path / "wide.png")
    assert any("px, outside" in p for p in png_problems(tmp_path / "wide.png"))
    (tmp_path / "fake.png").write_text("not an image")
    assert png_problems(tmp_path / "fake.png") == ["fake.png: not a PNG file"]
    assert png_problems(tmp_path / "none.png") == ["none.png: missing"]
