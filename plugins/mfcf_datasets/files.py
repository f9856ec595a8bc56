"""Finding data files on disk, and the error that says where to get them.

Nothing here downloads: a dataset whose files are absent fails in its constructor with a
:class:`mfcf.errors.DataError` naming every folder searched, where the files come from and
where to put them.

Search order for a dataset with ``data.root`` set: ``root`` itself, then each conventional
sub-folder of it (``root/MNIST/raw`` for torchvision's layout, ...). Without ``root``:
``$MFCF_DATA_DIR`` (if set) and ``./data``, with the same sub-folders. Some datasets add
system folders at the end (Fashion-MNIST: the Debian package ``dataset-fashion-mnist``).
"""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
from collections.abc import Sequence
from pathlib import Path

from mfcf.errors import DataError


def base_dirs(root: str | None) -> list[Path]:
    """``[root]`` when given, else ``$MFCF_DATA_DIR`` (if set) and ``./data``."""
    if root is not None:
        return [Path(root).expanduser()]
    env = os.environ.get("MFCF_DATA_DIR")
    return ([Path(env).expanduser()] if env else []) + [Path("data")]


def search_dirs(root: str | None, layouts: Sequence[str], extra: Sequence[Path] = ()) -> list[Path]:
    """Every folder to look in, in order: each base dir joined with each layout, then ``extra``."""
    dirs = [base / layout if layout else base for base in base_dirs(root) for layout in layouts]
    return list(dict.fromkeys([*dirs, *extra]))


def find_file(dirs: Sequence[Path], names: Sequence[str]) -> Path | None:
    """The first existing ``dir/name`` over ``dirs`` (outer) and ``names`` (inner), or None."""
    for folder in dirs:
        for name in names:
            if (folder / name).is_file():
                return folder / name
    return None


def missing_files_error(dataset: str, wanted: Sequence[str], dirs: Sequence[Path], how_to_get: str) -> DataError:
    """The error for files that are not in any searched folder."""
    looked = "\n".join(f"    {d.resolve() if not d.is_absolute() else d}" for d in dirs)
    return DataError(
        f"{dataset}: cannot find {', '.join(repr(w) for w in wanted)}\n"
        f"  looked in:\n{looked}\n"
        f"  get them: {how_to_get}\n"
        "  put them in one of those folders, or set `data.root` (config key: data.root) to the folder\n"
        "  that holds them. Nothing is downloaded at run time."
    )


@functools.lru_cache(maxsize=None)
def debian_package_dirs(package: str, fallback: str) -> tuple[Path, ...]:
    """Folders holding the IDX files of an installed Debian package (``dpkg -L``), else ``(fallback,)``."""
    if shutil.which("dpkg") is None:
        return (Path(fallback),)
    try:
        listed = subprocess.run(["dpkg", "-L", package], capture_output=True, text=True, timeout=10, check=False)
    except (OSError, subprocess.SubprocessError):
        return (Path(fallback),)
    files = [Path(line) for line in listed.stdout.splitlines() if "-ubyte" in line]
    dirs = tuple(dict.fromkeys(p.parent for p in files))
    return dirs or (Path(fallback),)
