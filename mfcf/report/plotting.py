"""Matplotlib helpers shared by the report's figures (Agg backend, no display needed).

Image grids are drawn as one mosaic array with a single ``imshow`` (fast, crisp, one axis to
label) rather than one subplot per image.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # the report never needs a display; must precede pyplot
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
from matplotlib.patches import Rectangle  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402

#: Resolution of every PNG; figure sizes are in inches, so width 12 in -> 1200 px.
DPI = 100
#: Widest figure, in inches (fits a laptop screen at 100 % zoom).
MAX_WIDTH = 13.0
plt.rcParams.update({"font.size": 10, "axes.titlesize": 11, "figure.titlesize": 12})


def is_image_shape(shape: Sequence[int]) -> bool:
    """True for (C, H, W) with 1 or 3 channels: data the report can show as pictures."""
    return len(shape) == 3 and shape[0] in (1, 3)


def to_display(images: torch.Tensor | np.ndarray, value_range: tuple[float, float] = (0.0, 1.0)) -> np.ndarray:
    """(N, C, H, W) data -> (N, H, W, 3) floats in [0, 1] (grey images repeated to RGB)."""
    x = images.detach().float().cpu().numpy() if isinstance(images, torch.Tensor) else np.asarray(images, float)
    lo, hi = value_range
    x = np.clip((x - lo) / (hi - lo), 0.0, 1.0).transpose(0, 2, 3, 1)
    return np.repeat(x, 3, axis=-1) if x.shape[-1] == 1 else x


#: Grey of the gaps between tiles: visible against white and against black images.
GAP = 0.6


def mosaic(rows: Sequence[np.ndarray], n_cols: int, pad: int = 1, fill: float = GAP) -> np.ndarray:
    """One (H', W', 3) picture of ``rows`` (each (n_i, H, W, 3), n_i <= n_cols), ``pad`` pixels
    of ``fill`` between tiles; short rows are left blank (white) on the right."""
    h, w = next(r.shape[1:3] for r in rows if len(r)) if any(len(r) for r in rows) else (1, 1)
    out = np.full((len(rows) * (h + pad) + pad, n_cols * (w + pad) + pad, 3), fill, dtype=float)
    for i, row in enumerate(rows):
        out[pad + i * (h + pad):(i + 1) * (h + pad), pad + len(row) * (w + pad):] = 1.0
        for j, img in enumerate(row[:n_cols]):
            y, x = pad + i * (h + pad), pad + j * (w + pad)
            out[y:y + h, x:x + w] = img
    return out


def show_mosaic(ax: plt.Axes, picture: np.ndarray, n_rows: int, n_cols: int, *, row_labels: Sequence[str] = (),
                col_labels: Sequence[str] = (), pad: int = 1, separators: Sequence[int] = ()) -> None:
    """Draw a :func:`mosaic` on ``ax`` with tick labels centred on its rows and columns, and a
    horizontal line above every row index in ``separators``."""
    ax.imshow(picture, interpolation="nearest")
    h = (picture.shape[0] - pad) / max(n_rows, 1)
    w = (picture.shape[1] - pad) / max(n_cols, 1)
    for i in separators:
        ax.axhline(i * h + (pad - 1) / 2, color="black", linewidth=1.5)
    ax.set_yticks([pad / 2 + h * (i + 0.5) for i in range(len(row_labels))], list(row_labels))
    ax.set_xticks([pad / 2 + w * (j + 0.5) for j in range(len(col_labels))], list(col_labels))
    ax.tick_params(length=0)
    for side in ax.spines.values():
        side.set_visible(False)


def tile_inches(n_rows: int, n_cols: int, *, tile: float = 0.6, extra_w: float = 2.6, extra_h: float = 1.2,
                max_tile: float = 1.0) -> tuple[float, float]:
    """A figure size for an ``n_rows`` x ``n_cols`` image grid plus room for labels and title,
    never wider than :data:`MAX_WIDTH`."""
    tile = min(max_tile, max(0.25, min(tile, (MAX_WIDTH - extra_w) / max(n_cols, 1))))
    return min(MAX_WIDTH, extra_w + tile * n_cols), extra_h + tile * n_rows


def annotated_heatmap(ax: plt.Axes, values: np.ndarray, *, row_labels: Sequence[str], col_labels: Sequence[str],
                      fmt: str = "{:.2f}", vmin: float | None = None, vmax: float | None = None,
                      cmap: str = "viridis", colorbar_label: str = "", boxes: Sequence[tuple[int, int]] = (),
                      annotate: bool = True) -> None:
    """Heat map of ``values`` (rows x cols) with each value written in its cell (text colour
    chosen for contrast), a labelled colour bar, and red boxes around the cells in ``boxes``."""
    values = np.asarray(values, dtype=float)
    im = ax.imshow(values, cmap=cmap, vmin=vmin, vmax=vmax, aspect="auto")
    bar = ax.figure.colorbar(im, ax=ax, fraction=0.046, pad=0.03)
    bar.set_label(colorbar_label)
    if values.size and np.all(values == np.round(values)):  # counts: no fractional ticks
        bar.ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xticks(range(values.shape[1]), list(col_labels))
    ax.set_yticks(range(values.shape[0]), list(row_labels))
    if annotate and values.size:
        for (r, c), v in np.ndenumerate(values):
            red, green, blue, _ = im.cmap(im.norm(v))  # dark text on light cells, light text on dark
            dark = 0.299 * red + 0.587 * green + 0.114 * blue > 0.55
            ax.text(c, r, fmt.format(v), ha="center", va="center", fontsize=9 if values.shape[1] <= 12 else 7,
                    color="black" if dark else "white")
    for r, c in boxes:
        ax.add_patch(Rectangle((c - 0.5, r - 0.5), 1, 1, fill=False, edgecolor="red", linewidth=2.2, clip_on=False))


def save(fig: plt.Figure, path: Path) -> Path:
    """Write ``fig`` as a PNG at :data:`DPI` and close it."""
    fig.savefig(path, dpi=DPI, bbox_inches="tight", facecolor="white")
    plt.close(fig)
    return path
