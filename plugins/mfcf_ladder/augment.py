"""Image transforms that change a nuisance and keep a factor, for ``elbo.invariance`` and
``model.augment``.

Each maps a batch (B, C, H, W) to a batch of the same shape, drawing its randomness per image
from torch's global generator (seeded by ``trainer.seed``). A name here, or several joined by
``+`` (applied left to right, e.g. ``channel_permutation+mirror``), is what
``elbo.invariance_transform`` and ``model.augment`` accept (:func:`transform`).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor

from mfcf.errors import ConfigError


def channel_permutation(x: Tensor) -> Tensor:
    """Each image's colour channels in an independently drawn random order (one of C!): every
    colour becomes another, shapes and grey levels stay. For a facet meant to ignore colour."""
    order = torch.rand(x.shape[:2], device=x.device).argsort(dim=1)  # (B, C)
    return torch.gather(x, 1, order[:, :, None, None].expand_as(x))


def hue_rotation(x: Tensor) -> Tensor:
    """Each RGB image's colours rotated about the grey axis by its own uniform random angle
    (the CSS ``hue-rotate`` matrix, Rodrigues' formula about (1, 1, 1) / sqrt(3)), clipped to
    [0, 1]: every hue moves by the same angle, grey stays grey. Unlike a channel permutation,
    which keeps each colour's set of channel values (a primary stays a primary), it leaves no
    trace of which colour an image had. For a facet meant to ignore colour."""
    if x.shape[1] != 3:
        raise ConfigError(f"hue_rotation needs RGB images, got {x.shape[1]} channel(s); use "
                          "channel_permutation or shift, or colour data", key="elbo.invariance_transform")
    angle = 2 * math.pi * torch.rand(x.shape[0], 1, 1, device=x.device, dtype=x.dtype)
    axis = x.new_full((3,), 3 ** -0.5)
    cross = x.new_tensor([[0.0, -1.0, 1.0], [1.0, 0.0, -1.0], [-1.0, 1.0, 0.0]]) * 3 ** -0.5  # [axis]_x
    rotation = (torch.cos(angle) * torch.eye(3, dtype=x.dtype, device=x.device)
                + torch.sin(angle) * cross + (1 - torch.cos(angle)) * torch.outer(axis, axis))  # (B, 3, 3)
    return torch.einsum("bij,bjhw->bihw", rotation, x).clamp(0.0, 1.0)


def channel_mixing(x: Tensor, min_gain: float = 0.5, max_gain: float = 1.5) -> Tensor:
    """Each image's colours sent through its own random linear map of the channels, then
    stretched to fill [0, 1]. The map is Q1 diag(g) Q2 with Q1, Q2 Haar-random orthogonal and
    gains g uniform in [``min_gain``, ``max_gain``], applied about mid-grey: invertible and
    well conditioned, so distinct colours stay distinct (edges and shapes survive), but neither
    the colours nor their distances to one another do, unlike ``channel_permutation`` and
    ``hue_rotation`` (an isometry or a rotation of the hue circle). Not a guarantee: on the
    3DShapes configurations, whose wall and object keep fixed hues, an encoder taught to match
    q(z|x) still inferred the floor hue through it (benchmarks/README.md, issue 17). For a facet
    meant to ignore colour."""
    b, c = x.shape[:2]

    def haar(n: int) -> Tensor:  # uniformly random orthogonal (B, n, n): QR with R's signs fixed
        q, r = torch.linalg.qr(torch.randn(b, n, n, device=x.device, dtype=x.dtype))
        return q * torch.diagonal(r, dim1=-2, dim2=-1).sign()[:, None, :]

    gains = min_gain + (max_gain - min_gain) * torch.rand(b, c, device=x.device, dtype=x.dtype)
    mixing = haar(c) @ torch.diag_embed(gains) @ haar(c)  # (B, C, C)
    y = torch.einsum("bij,bjhw->bihw", mixing, x - 0.5)
    low = y.amin(dim=(1, 2, 3), keepdim=True)
    high = y.amax(dim=(1, 2, 3), keepdim=True)
    return (y - low) / (high - low).clamp_min(1e-6)


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


def mirror(x: Tensor) -> Tensor:
    """Every image mirrored left to right. On 3DShapes-like scenes it turns an azimuth a into
    -a (the room's corner moves to the other side, the cube shows its other face) and keeps
    shape, scale and colours: for a facet meant to ignore which way the camera turned."""
    return x.flip(-1)


def _warp(x: Tensor, theta: Tensor) -> Tensor:
    """Each image resampled (bilinear) through its own affine map ``theta`` (B, 2, 3) of the
    output grid onto the input, in [-1, 1] coordinates; outside pixels take the nearest border
    pixel."""
    grid = F.affine_grid(theta.to(x.dtype), list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)


def affine(x: Tensor, max_degrees: float = 10.0, max_shift: float = 0.1) -> Tensor:
    """Each image rotated by its own uniform random angle of up to ``max_degrees`` either way and
    moved by up to ``max_shift`` of its side in each direction (DEC-DA's augmentation, Guo et
    al. 2018), bilinearly resampled; pixels from outside take the nearest border pixel, so a
    background colour continues into the corners. For digits and garments, whose class
    survives a small turn and offset."""
    b = x.shape[0]
    angle = torch.deg2rad((2 * torch.rand(b, device=x.device) - 1) * max_degrees)
    offset = (2 * torch.rand(b, 2, device=x.device) - 1) * (2 * max_shift)  # grid units: the side is 2
    cos, sin = torch.cos(angle), torch.sin(angle)
    theta = torch.stack([torch.stack([cos, -sin, offset[:, 0]], 1), torch.stack([sin, cos, offset[:, 1]], 1)], 1)
    return _warp(x, theta)


def resized_crop(x: Tensor, min_side: float = 0.75) -> Tensor:
    """Each image cropped to its own random square of ``min_side`` to 1 times its side, placed
    uniformly inside it, and resized back (bilinear): SimCLR's random resized crop, kept mild so
    that a centred object stays mostly in view. Changes the object's size and where everything
    sits, keeps shapes and colours. For a facet meant to ignore scale and position (on
    3DShapes-like scenes, with ``mirror``, also where the room's corner is)."""
    b = x.shape[0]
    side = min_side + (1 - min_side) * torch.rand(b, device=x.device)
    centre = (2 * torch.rand(b, 2, device=x.device) - 1) * (1 - side)[:, None]  # crop inside the image
    zero = torch.zeros_like(side)
    theta = torch.stack([torch.stack([side, zero, centre[:, 0]], 1), torch.stack([zero, side, centre[:, 1]], 1)], 1)
    return _warp(x, theta)


#: ``elbo.invariance_transform`` and ``model.augment`` names.
TRANSFORMS = {"channel_permutation": channel_permutation, "hue_rotation": hue_rotation,
              "channel_mixing": channel_mixing, "shift": shift, "mirror": mirror, "affine": affine,
              "resized_crop": resized_crop}


def check_transform(name: str, key: str, *, hint: str = "") -> None:
    """Fail with a :class:`ConfigError` on ``key`` unless every ``+``-separated part of ``name``
    is in :data:`TRANSFORMS`; ``hint`` is appended to the message (e.g. what else the key
    accepts)."""
    for part in name.split("+"):
        if part not in TRANSFORMS:
            raise ConfigError(f"unknown transform {part!r}; choose one of {sorted(TRANSFORMS)} or several "
                              f"joined by '+'{hint}", key=key)


def transform(name: str) -> Callable[[Tensor], Tensor]:
    """The transform a checked ``name`` stands for: one of :data:`TRANSFORMS`, or the
    composition of ``+``-joined names, applied left to right."""
    parts = [TRANSFORMS[part] for part in name.split("+")]
    return parts[0] if len(parts) == 1 else lambda x: functools.reduce(lambda y, f: f(y), parts, x)
