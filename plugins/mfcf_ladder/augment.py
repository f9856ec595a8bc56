"""Image transforms that change a nuisance and keep a factor, for ``elbo.invariance``.

Each maps a batch (B, C, H, W) to a batch of the same shape, drawing its randomness per image
from torch's global generator (seeded by ``trainer.seed``). A name here is what
``elbo.invariance_transform`` accepts.
"""

from __future__ import annotations

import torch
from torch import Tensor


def channel_permutation(x: Tensor) -> Tensor:
    """Each image's colour channels in an independently drawn random order (one of C!): every
    colour becomes another, shapes and grey levels stay. For a facet meant to ignore colour."""
    order = torch.rand(x.shape[:2], device=x.device).argsort(dim=1)  # (B, C)
    return torch.gather(x, 1, order[:, :, None, None].expand_as(x))


def shift(x: Tensor, max_pixels: int = 2) -> Tensor:
    """Each image moved by its own random offset of up to ``max_pixels`` in each direction,
    filled by wrapping round (the images' borders are background): content kept, position
    changed. For a facet meant to ignore where the object sits."""
    b, _, h, w = x.shape
    dy = torch.randint(-max_pixels, max_pixels + 1, (b,), device=x.device)
    dx = torch.randint(-max_pixels, max_pixels + 1, (b,), device=x.device)
    rows = (torch.arange(h, device=x.device)[None, :] - dy[:, None]) % h  # (B, H)
    cols = (torch.arange(w, device=x.device)[None, :] - dx[:, None]) % w  # (B, W)
    x = torch.gather(x, 2, rows[:, None, :, None].expand(-1, x.shape[1], -1, w))
    return torch.gather(x, 3, cols[:, None, None, :].expand(-1, x.shape[1], h, -1))


#: ``elbo.invariance_transform`` names.
TRANSFORMS = {"channel_permutation": channel_permutation, "shift": shift}
