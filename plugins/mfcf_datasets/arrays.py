"""Checking loaded arrays and turning them into the tensors a :class:`DataSplit` holds."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch.nn import functional as F

from mfcf.errors import DataError


def check_array(array: np.ndarray, *, what: str, shape: Sequence[int | None], dtype: str | None = None) -> None:
    """Raise :class:`DataError` unless ``array`` has ``shape`` (None: any size) and ``dtype``."""
    ok = array.ndim == len(shape) and all(s is None or s == a for s, a in zip(shape, array.shape))
    if not ok:
        want = "(" + ", ".join("N" if s is None else str(s) for s in shape) + ")"
        raise DataError(f"{what} has shape {tuple(array.shape)}, expected {want}; the file is corrupt or not the right one")
    if dtype is not None and array.dtype != np.dtype(dtype):
        raise DataError(f"{what} has dtype {array.dtype}, expected {dtype}; the file is corrupt or not the right one")


def check_labels(labels: np.ndarray, *, what: str, n: int, n_classes: int, first: int = 0) -> np.ndarray:
    """``labels - first`` as int64 after checking there are ``n`` numbers, all whole and in
    ``[first, first + n_classes)``."""
    if labels.shape != (n,):
        raise DataError(f"{what} holds {labels.shape[0] if labels.ndim else 0} labels for {n} images "
                        f"(shape {tuple(labels.shape)}); the file is truncated or does not match its images")
    if labels.dtype.kind not in "iuf":
        raise DataError(f"{what} holds {labels.dtype} values, not numbers; the file is corrupt or not the right one")
    as_int = np.rint(labels).astype(np.int64)
    bad = (as_int != labels) | (as_int < first) | (as_int >= first + n_classes)
    if bad.any():
        raise DataError(f"{what} holds labels outside {first}..{first + n_classes - 1} "
                        f"(for example {labels[bad][:5].tolist()}); the file is corrupt")
    return as_int - first


def to_unit_float(images: np.ndarray | torch.Tensor, scale: float = 255.0) -> torch.Tensor:
    """A float32 copy of ``images`` (uint8 or any numeric) divided by ``scale``."""
    if isinstance(images, np.ndarray):
        return torch.from_numpy(images.astype(np.float32)).div_(scale)
    return images.to(torch.float32, copy=True).div_(scale)


def resize_uint8(images: torch.Tensor, size: int, *, chunk: int = 4096) -> torch.Tensor:
    """Bilinearly resize uint8 images (N, C, H, W) to ``size`` x ``size``, rounding back to uint8.

    Half-pixel centres without antialiasing, like OpenCV's ``INTER_LINEAR`` that the official
    3DShapes preprocessing used (a 2x reduction averages each 2x2 block); results can differ
    from OpenCV's fixed-point arithmetic by one grey level.
    """
    if images.shape[-1] == size and images.shape[-2] == size:
        return images
    out = torch.empty((*images.shape[:2], size, size), dtype=torch.uint8)
    for start in range(0, len(images), chunk):
        block = images[start:start + chunk].float()
        resized = F.interpolate(block, size=(size, size), mode="bilinear", align_corners=False, antialias=False)
        out[start:start + chunk] = resized.round_().clamp_(0, 255).to(torch.uint8)
    return out
