"""The nuisance transforms of ``elbo.invariance`` (mfcf_ladder.augment)."""

from __future__ import annotations

import itertools

import torch

from mfcf_ladder.augment import TRANSFORMS, channel_permutation, shift


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


def test_transforms_are_named_for_the_config():
    assert TRANSFORMS == {"channel_permutation": channel_permutation, "shift": shift}
