"""Sanity checks of written figures, shared by the tests and usable after any report run::

    from mfcf.report.checks import png_problems
    assert not png_problems("runs/x/report-test/nmi_matrix.png")
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def png_problems(path: str | Path, *, min_size: tuple[int, int] = (300, 150),
                 max_size: tuple[int, int] = (1400, 4000)) -> list[str]:
    """What is wrong with the figure at ``path``; empty when it is a readable PNG whose width
    and height (pixels) lie within ``min_size``..``max_size`` (a screen shows it without
    zooming) and which is not blank (some contrast, not almost all white)."""
    path = Path(path)
    if not path.is_file():
        return [f"{path.name}: missing"]
    if path.read_bytes()[:8] != PNG_SIGNATURE:
        return [f"{path.name}: not a PNG file"]
    try:
        with Image.open(path) as im:
            im.verify()
        with Image.open(path) as im:
            size = im.size
            grey = np.asarray(im.convert("L"), dtype=float)
    except Exception as exc:  # noqa: BLE001 -- any decoder error means the file is broken
        return [f"{path.name}: unreadable ({exc})"]
    problems = []
    if not (min_size[0] <= size[0] <= max_size[0] and min_size[1] <= size[1] <= max_size[1]):
        problems.append(f"{path.name}: {size[0]}x{size[1]} px, outside {min_size}..{max_size}")
    if grey.std() <= 10:
        problems.append(f"{path.name}: looks blank (pixel std {grey.std():.1f})")
    if (grey < 200).mean() <= 0.02:
        problems.append(f"{path.name}: almost all white")
    return problems
