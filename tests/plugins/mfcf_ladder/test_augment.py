"""The nuisance transforms of ``elbo.invariance`` (mfcf_ladder.augment)."""

from __future__ import annotations

import itertools

import pytest
import torch

from mfcf.errors import ConfigError
from mfcf_ladder.augment import (TRANSFORMS, affine, channel_mixing, channel_permutation, check_transform, hue_rotation,
                                 mirror, resized_crop, shift, transform)


def test_channel_permutation_reorders_each_images_channels_independently():
    torch.manual_seed(0)
    x = torch.rand(64, 3, 4, 5)
    y = channel_permutation(x)
    orders = set()
    for xi, yi in zip(x, y):
        order = next(p for p in itertools.permutations(range(3)) if torch.equal(yi, xi[list(p)]))
        orders.add(order)
    assert len(orders) == 6  # all 3! orders drawn over 64 images
    grey = torch.rand(8, 1, 4, 4).expand(8, 3, 4, 4)
    assert torch.equal(channel_permutation(grey), grey)  # no colour, nothing to change


def test_hue_rotation_turns_each_images_colours_about_the_grey_axis():
    torch.manual_seed(2)
    x = 0.4 + 0.2 * torch.rand(1, 3, 4, 4).expand(64, 3, 4, 4)  # one image 64 times, never clipped
    y = hue_rotation(x)
    grey, chroma = x.mean(1, keepdim=True), x - x.mean(1, keepdim=True)
    assert torch.allclose(y.mean(1, keepdim=True), grey, atol=1e-6)  # brightness along the axis kept
    assert torch.allclose((y - y.mean(1, keepdim=True)).norm(dim=1), chroma.norm(dim=1), atol=1e-6)  # saturation
    cosines = (y - y.mean(1, keepdim=True))[:, :, 0, 0] @ chroma[0, :, 0, 0] / chroma[0, :, 0, 0].norm() ** 2
    assert cosines.min() < -0.9 and cosines.max() > 0.9  # angles all round the circle, per image
    # one angle per image: the rotation is the same linear map at every pixel of an image
    a, b = y[0].flatten(1).T, x[0].flatten(1).T
    solved = torch.linalg.lstsq(b, a).solution
    assert torch.allclose(b @ solved, a, atol=1e-5)
    grey_images = torch.rand(8, 1, 4, 4).expand(8, 3, 4, 4)
    assert torch.allclose(hue_rotation(grey_images), grey_images, atol=1e-6)
    saturated = torch.tensor([1.0, 0.0, 0.0]).view(1, 3, 1, 1).expand(16, 3, 2, 2)
    assert hue_rotation(saturated).min() >= 0 and hue_rotation(saturated).max() <= 1  # clipped to [0, 1]
    with pytest.raises(ConfigError, match="RGB") as info:
        hue_rotation(torch.rand(2, 1, 4, 4))
    assert info.value.key == "elbo.invariance_transform"


def test_channel_mixing_maps_each_images_colours_by_its_own_invertible_affine_map_onto_0_1():
    torch.manual_seed(3)
    # one scene 256 times: three flat colours (floor, wall, object), as in 3DShapes
    colours = torch.tensor([[1.0, 0.0, 0.0], [0.0, 1.0, 1.0], [0.2, 0.2, 1.0]])
    regions = torch.tensor([[0, 0, 1, 1], [0, 2, 2, 1], [0, 2, 2, 1], [0, 0, 1, 1]])
    x = colours[regions].permute(2, 0, 1).expand(256, 3, 4, 4)
    y = channel_mixing(x)
    assert y.shape == x.shape
    assert torch.allclose(y.amin(dim=(1, 2, 3)), torch.zeros(256))
    assert torch.allclose(y.amax(dim=(1, 2, 3)), torch.ones(256))
    # per image one affine map of the colours, the same at every pixel, whose linear part is
    # well conditioned (singular values within the gain range 0.5-1.5, up to the stretch)
    patches = torch.rand(8, 3, 4, 4)
    mapped = channel_mixing(patches)
    for xi, yi in zip(patches, mapped):
        flat_x = torch.cat([xi.flatten(1).T, torch.ones(16, 1)], 1)
        solved = torch.linalg.lstsq(flat_x, yi.flatten(1).T).solution
        assert torch.allclose(flat_x @ solved, yi.flatten(1).T, atol=1e-5)
        singular = torch.linalg.svdvals(solved[:3])
        assert singular.max() / singular.min() <= 3 + 1e-4
    seen = y[:, :, [0, 0, 1], [0, 2, 1]].transpose(1, 2)  # (B, 3 regions, RGB)
    distances = torch.stack([(seen[:, 0] - seen[:, 1]).norm(dim=1), (seen[:, 0] - seen[:, 2]).norm(dim=1),
                             (seen[:, 1] - seen[:, 2]).norm(dim=1)], 1)
    assert distances.min() > 0.05  # distinct colours stay distinct
    ratio = distances[:, 0] / distances[:, 1]
    assert ratio.max() / ratio.min() > 2  # colour relations are not kept (no isometry, unlike a rotation)
    assert (seen[:, 0] - seen[0, 0]).abs().amax() > 0.5  # and the floor's colour itself varies
    grey = torch.rand(16, 1, 5, 5)
    low, high = grey.amin((1, 2, 3), keepdim=True), grey.amax((1, 2, 3), keepdim=True)
    stretched = (grey - low) / (high - low)
    mixed = channel_mixing(grey)  # one channel: per image a random sign and gain, then stretched
    inverted = [torch.allclose(m, 1 - s, atol=1e-5) for m, s in zip(mixed, stretched)]
    assert all(inverted[i] or torch.allclose(mixed[i], stretched[i], atol=1e-5) for i in range(16))
    assert 0 < sum(inverted) < 16
    flat = torch.full((2, 3, 4, 4), 0.3)
    assert torch.isfinite(channel_mixing(flat)).all()  # a single-colour image does not divide by zero


def test_resized_crop_zooms_each_image_into_its_own_square_inside_it():
    torch.manual_seed(4)
    x = torch.zeros(256, 1, 32, 32)
    x[:, :, 12:20, 12:20] = 1.0  # a centred 8x8 square
    y = resized_crop(x)
    assert y.shape == x.shape and y.min() >= 0 and y.max() <= 1
    area = y.sum(dim=(1, 2, 3))  # the square grows by 1 / side^2, 1 to 1 / 0.75^2 (up to bilinear edges)
    assert area.min() >= 64 - 1 and area.max() <= 64 / 0.75**2 + 3
    assert area.max() - area.min() > 30  # sizes differ per image
    rows = torch.arange(32.0)[None, :]
    centre = (y.sum(dim=(1, 3)) * rows).sum(1) / y.sum(dim=(1, 2, 3))
    assert centre.max() - centre.min() > 4  # and so do positions
    assert torch.allclose(resized_crop(x, min_side=1.0), x, atol=1e-5)  # the whole image: no change


def test_shift_rolls_each_image_by_its_own_offset_of_at_most_the_limit():
    torch.manual_seed(1)
    x = torch.rand(64, 2, 7, 6)
    y = shift(x, max_pixels=2)
    offsets = set()
    for xi, yi in zip(x, y):
        found = [(dy, dx) for dy in range(-2, 3) for dx in range(-2, 3)
                 if torch.equal(yi, torch.roll(xi, (dy, dx), dims=(1, 2)))]
        assert len(found) == 1
        offsets.add(found[0])
    assert len(offsets) > 10
    assert torch.equal(shift(x, max_pixels=0), x)


def test_affine_turns_and_moves_each_image_by_its_own_small_amount():
    torch.manual_seed(4)
    x = torch.zeros(64, 1, 33, 33)
    x[:, :, 16, 4:29] = 1.0  # a horizontal bar through the centre
    y = affine(x, max_degrees=10.0, max_shift=0.1)
    rows, cols = torch.meshgrid(torch.arange(33.0), torch.arange(33.0), indexing="ij")
    mass = y.sum((1, 2, 3))
    centre_r, centre_c = (y[:, 0] * rows).sum((1, 2)) / mass, (y[:, 0] * cols).sum((1, 2)) / mass
    assert (centre_r - 16).abs().max() <= 0.1 * 33 + 0.5 and (centre_c - 16).abs().max() <= 0.1 * 33 + 0.5
    assert len({(round(r), round(c)) for r, c in zip(centre_r.tolist(), centre_c.tolist())}) > 10  # per image
    # the bar's angle, from the second moments, stays within the limit and varies per image
    dr, dc = rows - centre_r[:, None, None], cols - centre_c[:, None, None]
    w = y[:, 0] / mass[:, None, None]
    crc, ccc, crr = (w * dr * dc).sum((1, 2)), (w * dc * dc).sum((1, 2)), (w * dr * dr).sum((1, 2))
    angle = torch.rad2deg(0.5 * torch.atan2(2 * crc, ccc - crr)).abs()
    assert angle.max() <= 10.5 and angle.max() > 5
    assert torch.allclose(affine(x, max_degrees=0.0, max_shift=0.0), x, atol=1e-6)
    coloured = torch.tensor([0.2, 0.5, 0.1]).view(1, 3, 1, 1).expand(8, 3, 9, 9)
    assert torch.allclose(affine(coloured), coloured, atol=1e-6)  # corners continue the border colour


def test_mirror_reverses_each_row():
    x = torch.rand(3, 2, 4, 5)
    y = mirror(x)
    assert torch.equal(y[..., 0], x[..., 4]) and torch.equal(y[..., 2], x[..., 2])
    assert torch.equal(mirror(y), x)


def test_transforms_are_named_for_the_config():
    assert TRANSFORMS == {"channel_permutation": channel_permutation, "hue_rotation": hue_rotation,
                          "channel_mixing": channel_mixing, "shift": shift, "mirror": mirror, "affine": affine,
                          "resized_crop": resized_crop}
    assert transform("shift") is shift


def test_joined_names_apply_their_transforms_left_to_right():
    torch.manual_seed(3)
    x = torch.rand(16, 3, 4, 6)

    def drawn(f):
        torch.manual_seed(5)
        return f(x)

    both = drawn(transform("channel_permutation+mirror"))
    assert torch.equal(both, drawn(lambda images: mirror(channel_permutation(images))))  # same draws, then mirror
    assert torch.equal(drawn(transform("shift+mirror")), drawn(lambda images: mirror(shift(images))))
    assert not torch.equal(drawn(transform("shift+mirror")), drawn(lambda images: shift(mirror(images))))  # order
    assert not torch.equal(both, mirror(x)) and not torch.equal(both, x)


def test_check_transform_names_the_key_and_the_choices():
    check_transform("affine", "augment")  # a known name passes
    check_transform("channel_permutation+mirror", "augment")  # joined known names pass
    with pytest.raises(ConfigError, match=r"unknown transform 'rotate'; choose one of \['affine', .*\] or several "
                                          r"joined by '\+', or null") as info:
        check_transform("rotate", "augment", hint=", or null")
    assert info.value.key == "augment"
    for bad, part in [("mirror+rotate", "rotate"), ("mirror+", ""), ("+mirror", "")]:
        with pytest.raises(ConfigError, match=f"unknown transform '{part}'") as info:
            check_transform(bad, "elbo.invariance_transform")
        assert info.value.key == "elbo.invariance_transform"
