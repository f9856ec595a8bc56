"""`colored`: grey datasets turned into (label, foreground colour, background colour) tasks."""

from __future__ import annotations

import colorsys

import pytest
import torch

from mfcf.errors import ConfigError, UnknownKeyError
from mfcf_datasets.colored import ColoredDataset
from mfcf_datasets.small_digits import MNIST5kDataset


def palette(n: int, offset: float, value: float) -> torch.Tensor:
    return torch.tensor([colorsys.hsv_to_rgb((k + offset) / n, 1.0, value) for k in range(n)], dtype=torch.float32)


def test_colours_replace_ink_and_paper_exactly(build):
    ds = build(ColoredDataset, fg_colors=4, bg_colors=3, bg_value=0.4)
    assert ds.info.shape == (3, 28, 28) and ds.info.likelihood_hint == "gaussian"
    assert dict(ds.info.factors) == {"label": 10, "fg_color": 4, "bg_color": 3}
    coloured, grey = ds.load("test"), build(MNIST5kDataset).load("test")
    assert torch.equal(coloured.factors["label"], grey.factors["label"])
    fg = palette(4, 0.0, 1.0)[coloured.factors["fg_color"]][:, :, None, None]
    bg = palette(3, 0.5, 0.4)[coloured.factors["bg_color"]][:, :, None, None]
    assert torch.allclose(coloured.images, grey.images * fg + (1 - grey.images) * bg, atol=1e-6)
    paper = (grey.images == 0).expand_as(coloured.images)
    assert torch.equal(coloured.images[paper], bg.expand_as(coloured.images)[paper])


def test_colours_are_uniform_and_independent_of_the_label(build):
    data = build(ColoredDataset, fg_colors=5, bg_colors=5).load("train")
    label, fg, bg = (data.factors[k] for k in ("label", "fg_color", "bg_color"))
    assert torch.bincount(fg).min() > 700 and torch.bincount(bg).min() > 700  # 800 expected each
    joint = torch.zeros(10, 5)
    joint.index_put_((label, fg), torch.ones(len(label)), accumulate=True)
    expected = 4000 / 50
    chi2 = float(((joint - expected) ** 2 / expected).sum())
    assert chi2 < 80  # 36 degrees of freedom: p < 1e-4 for a dependent draw
    assert not torch.equal(fg, bg)


def test_draws_are_fixed_by_the_seed_and_differ_between_splits(build):
    a, b = build(ColoredDataset, seed=4).load("test"), build(ColoredDataset, seed=4).load("test")
    c = build(ColoredDataset, seed=5).load("test")
    assert torch.equal(a.images, b.images) and torch.equal(a.factors["fg_color"], b.factors["fg_color"])
    assert not torch.equal(a.factors["fg_color"], c.factors["fg_color"])
    train = build(ColoredDataset, seed=4).load("train")
    assert not torch.equal(train.factors["fg_color"][:1000], a.factors["fg_color"])


def test_wraps_other_grey_bases_with_their_options(tmp_path, writers, build):
    ds = build(ColoredDataset, base="digits", base_options={"image_size": 16, "resize": "bilinear"},
               bg_colors=1, bg_value=0.0)
    assert ds.info.shape == (3, 16, 16) and dict(ds.info.factors) == {"label": 10, "fg_color": 5}
    data = ds.load("test")
    assert set(data.factors) == {"label", "fg_color"} and data.images.shape[1:] == (3, 16, 16)
    assert data.images.amin(dim=(1, 2, 3)).max() == 0.0  # black background
    writers.mnist(tmp_path / "m")
    mnist = build(ColoredDataset, base="mnist", base_options={"root": str(tmp_path / "m")}).load("train")
    assert mnist.images.shape == (80, 3, 28, 28)


def test_image_size_frames_the_image_in_its_background(build):
    framing = build(ColoredDataset, image_size=32)
    framed, plain = framing.load("test"), build(ColoredDataset).load("test")
    assert framing.info.shape == (3, 32, 32)
    assert framed.images.shape[1:] == (3, 32, 32)
    for name in ("label", "fg_color", "bg_color"):
        assert torch.equal(framed.factors[name], plain.factors[name])
    assert torch.equal(framed.images[:, :, 2:30, 2:30], plain.images)
    bg = palette(5, 0.5, 0.35)[framed.factors["bg_color"]][:, :, None]
    assert torch.allclose(framed.images[:, :, 0], bg.expand(-1, -1, 32), atol=1e-6)  # top row: background
    assert torch.allclose(framed.images[:, :, :, 31], bg.expand(-1, -1, 32), atol=1e-6)  # right column


def test_config_errors_name_the_key(build):
    with pytest.raises(ConfigError, match=r"mnist5k, mnist, fashion_mnist, digits.*data.base\)"):
        build(ColoredDataset, base="svhn")
    with pytest.raises(UnknownKeyError, match=r"'data.base_options.image_siz'(.|\n)*did you mean: image_size") as err:
        build(ColoredDataset, base="digits", base_options={"image_siz": 16})
    assert err.value.key == "data.base_options.image_siz"
    with pytest.raises(ConfigError, match="data.fg_colors"):
        build(ColoredDataset, fg_colors=0)
    with pytest.raises(ConfigError, match="data.bg_value"):
        build(ColoredDataset, bg_value=1.5)
    with pytest.raises(ConfigError, match=r"24 would crop the 28x28 images of 'mnist5k'.*>= 28.*data.image_size"):
        build(ColoredDataset, image_size=24)
    with pytest.raises(ConfigError, match="data.image_size"):
        build(ColoredDataset, image_size=0)
