"""A vectorised renderer of 3DShapes-like scenes with exactly known factors.

Scene, in image coordinates ``u`` (right) and ``v`` (down), both in [-1, 1]:

* the **wall** fills everything above the floor in one flat colour, HSV(wall_hue, 1, 1);
* the **floor** is the region below the two floor/wall edges of a room corner seen from
  inside, ``v > HORIZON + SLOPE |u - corner|``, flat HSV(floor_hue, 1, 1). The camera's
  orientation moves the corner sideways, so orientation is visible for every shape;
* the **object** stands upright, centred on the floor, its silhouette set by shape (cube,
  cylinder, sphere, capsule) and its size proportional to scale. As in 3DShapes, the
  orientation is an azimuth: the camera turns about the vertical axis, so the cylinder, sphere
  and (upright) capsule look the same from every orientation, while the cube, seen in
  orthographic projection, widens to ``half * (cos + |sin|)`` and shows a second face. Its
  colour is HSV(object_hue, 1, V): the shading only changes the value V (Lambertian light from
  the upper left, fixed to the camera), never the hue; with ``shading=False`` V = 1.

Every image is a pure function of its six factor values. The batch is rendered by numpy
float32 broadcasting over coordinate grids, in chunks that fit the CPU cache; numpy rather
than torch because torch's intra-op threads made 60,000 images take 14 s instead of 3 s on a
busy 2-core machine. Output is uint8, as 3DShapes; flat colours are exactly
``round(255 * HSV(hue, 1, 1))``.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import torch
from matplotlib.colors import hsv_to_rgb

HORIZON = 0.0  # v of the room's corner on the floor/wall edge
SLOPE = 0.3  # how fast the floor edges fall away from the corner
CORNER_SHIFT = 0.6  # corner's u at orientation -30 / +30 degrees is +0.6 / -0.6
OBJECT_BASE = 0.85  # v of the object's bottom (before rotation)
OBJECT_SIZE = 0.35  # half-height of the object at scale 1
AMBIENT = 0.45  # darkest shading value
LIGHT = np.array([-0.35, -0.45, 0.82], dtype=np.float32) / np.float32(math.sqrt(0.35**2 + 0.45**2 + 0.82**2))

#: (x, y, radius, cos, sin of the azimuth >= 0) -> (inside, normal x, normal y), all (n, S, S).
Silhouette = Callable[..., tuple[np.ndarray, np.ndarray, np.ndarray]]


def _cube(x, y, r, cos, sin):
    # Orthographic view of a cube turned by the azimuth about the vertical axis: the front face
    # (normal (sin, 0, cos)) spans [half (sin - cos), half (cos + sin)], the left face (normal
    # (-cos, 0, sin)) the rest; at azimuth 0 only the front face is seen, a square.
    half = 0.8 * r
    edge = half * (sin - cos)
    inside = (np.abs(x) <= half * (cos + sin)) & (np.abs(y) <= half)
    nx = np.where(x < edge, -cos, sin) * np.ones_like(x)
    return inside, nx, np.zeros_like(x)


def _cylinder(x, y, r, cos, sin):
    a, b = 0.7 * r, 0.25 * r  # radius, half-height of the end ellipses
    body_half = r - b
    body = (np.abs(x) <= a) & (np.abs(y) <= body_half)
    top = (x / a) ** 2 + ((y + body_half) / b) ** 2 <= 1
    bottom = (x / a) ** 2 + ((y - body_half) / b) ** 2 <= 1
    on_top = top & (y < -body_half)
    nx = np.where(on_top, np.float32(0), np.clip(x / a, -1, 1))
    ny = np.where(on_top, np.float32(-0.8), np.float32(0))
    return body | top | bottom, nx, ny


def _sphere(x, y, r, cos, sin):
    return x**2 + y**2 <= r**2, x / r, y / r


def _capsule(x, y, r, cos, sin):
    a = 0.55 * r
    half = r - a
    dy = y - np.clip(y, -half, half)  # offset from the capsule's axis segment
    return x**2 + dy**2 <= a**2, x / a, dy / a


#: shape index (3DShapes order: cube, cylinder, sphere, capsule) -> silhouette and normals.
SILHOUETTES: tuple[Silhouette, ...] = (_cube, _cylinder, _sphere, _capsule)


def hue_to_rgb(hue: np.ndarray) -> np.ndarray:
    """Fully saturated, full-value RGB of each hue in [0, 1), float64 (N, 3)."""
    hue = np.asarray(hue, dtype=np.float64) % 1.0
    return hsv_to_rgb(np.stack([hue, np.ones_like(hue), np.ones_like(hue)], axis=-1))


def render_scenes(floor_hue: np.ndarray, wall_hue: np.ndarray, object_hue: np.ndarray, scale: np.ndarray,
                  shape: np.ndarray, orientation: np.ndarray, *, image_size: int, shading: bool = True,
                  chunk: int = 256) -> torch.Tensor:
    """Render one scene per row of the factor arrays: uint8 tensor (N, 3, S, S).

    ``*_hue`` in [0, 1); ``scale`` a size multiplier (3DShapes: 0.75-1.25); ``shape`` an index
    into :data:`SILHOUETTES`; ``orientation`` the azimuth in degrees (3DShapes: -30 to 30); a
    negative azimuth renders the mirror image of the positive one (up to the shading). Flat colours
    are rounded from float64 so they equal ``round(255 * HSV(hue, 1, 1))`` exactly.
    """
    n = len(shape)
    out = np.empty((n, 3, image_size, image_size), dtype=np.uint8)
    colours = [hue_to_rgb(h) for h in (floor_hue, wall_hue, object_hue)]
    factors = [np.asarray(scale, dtype=np.float32), np.asarray(shape, dtype=np.int64),
               np.asarray(orientation, dtype=np.float32)]
    for start in range(0, n, chunk):
        part = slice(start, start + chunk)
        out[part] = _render_chunk(*(c[part] for c in colours), *(f[part] for f in factors), image_size, shading)
    return torch.from_numpy(out)


def _render_chunk(floor_rgb, wall_rgb, object_rgb, scale, shape, degrees, size, shading):
    n = len(shape)
    coords = ((np.arange(size) + 0.5) * (2.0 / size) - 1.0).astype(np.float32)  # pixel centres
    u, v = coords.reshape(1, 1, size), coords.reshape(1, size, 1)
    col = lambda t: t.reshape(n, 1, 1)  # noqa: E731 - per-image scalar broadcast over the grid

    corner = col(np.float32(-CORNER_SHIFT / 30.0) * degrees)
    floor = v > HORIZON + np.float32(SLOPE) * np.abs(u - corner)  # (n, S, S)

    radius = col(np.float32(OBJECT_SIZE) * scale)
    theta = np.deg2rad(np.abs(degrees)).astype(np.float32)
    cos, sin = col(np.cos(theta)), col(np.sin(theta))
    mirror = col(np.where(degrees < 0, np.float32(-1), np.float32(1)))  # -theta: mirror image of +theta
    x = np.broadcast_to(mirror * u, (n, 1, size))
    y = np.broadcast_to(v - (np.float32(OBJECT_BASE) - radius), (n, size, 1))
    x, y = np.broadcast_arrays(x, y)
    inside = np.zeros((n, size, size), dtype=bool)
    nx, ny = np.zeros((n, size, size), np.float32), np.zeros((n, size, size), np.float32)
    for code, silhouette in enumerate(SILHOUETTES):
        rows = shape == code
        if rows.any():
            inside[rows], nx[rows], ny[rows] = silhouette(x[rows], y[rows], radius[rows], cos[rows], sin[rows])

    flat = lambda c: np.rint(255.0 * c).astype(np.uint8).reshape(n, 3, 1, 1)  # noqa: E731
    image = np.where(floor[:, None], flat(floor_rgb), flat(wall_rgb))
    if shading:
        img_nx, img_ny = mirror * nx, ny  # normals back to the image frame
        nz = np.sqrt(np.clip(1.0 - img_nx**2 - img_ny**2, 0.0, None))
        lit = np.clip(img_nx * LIGHT[0] + img_ny * LIGHT[1] + nz * LIGHT[2], 0.0, 1.0)
        value = (AMBIENT + (1.0 - AMBIENT) * lit)[:, None]
        shaded = np.rint(object_rgb.astype(np.float32).reshape(n, 3, 1, 1) * (255.0 * value)).astype(np.uint8)
        return np.where(inside[:, None], shaded, image)
    return np.where(inside[:, None], flat(object_rgb), image)
