"""Finding data files on disk, and the error that says where to get them.

Nothing here downloads: a dataset whose files are absent fails in its constructor with a
:class:`mfcf.errors.DataError` naming every folder searched, where the files come from and
where to put them.

Search order for a dataset with ``data.root`` set: ``root`` itself, then each conventional
sub-folder of it (``root/MNIST/raw`` for torchvision's layout, ...); ``root`` must be an
existing folder. Without ``root``: ``$MFCF_DATA_DIR`` (if set, it must be an existing folder)
and ``./data``, with the same sub-folders, then the system folders some datasets add
(Fashion-MNIST: the Debian package ``dataset-fashion-mnist``).

All files of a dataset come from one folder: the first folder in that order that holds any of
them. A folder holding only some of them is an error; files are never combined from several
folders.
"""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
from collections.abc import Sequence
from pathlib import Path

from mfcf.errors import ConfigError, DataError


def _not_a_folder(path: Path) -> str | None:
    """Why ``path`` cannot be searched for data files, or None if it is a folder."""
    if path.is_dir():
        return None
    return f"{path.absolute()} is a file, not a folder" if path.exists() else f"{path.absolute()} does not exist"


def base_dirs(root: str | None) -> list[Path]:
    """``[root]`` when given, else ``$MFCF_DATA_DIR`` (if set) and ``./data``.

    ``~`` is expanded. A ``root`` that is not a folder is a :class:`ConfigError` on key ``root``,
    a ``$MFCF_DATA_DIR`` that is not a folder a :class:`DataError`.
    """
    if root is not None:
        folder = Path(root).expanduser()
        problem = _not_a_folder(folder)
        if problem:
            raise ConfigError(f"{problem}; set it to the folder that holds the dataset's files, or to null "
                              "to search $MFCF_DATA_DIR and ./data", key="root")
        return [folder]
    env = os.environ.get("MFCF_DATA_DIR")
    problem = env and _not_a_folder(Path(env).expanduser())
    if problem:
        raise DataError(f"MFCF_DATA_DIR is set to {env!r}, but {problem}; set it to the folder that holds "
                        "your datasets, or unset it")
    return ([Path(env).expanduser()] if env else []) + [Path("data")]


def search_dirs(root: str | None, layouts: Sequence[str], extra: Sequence[Path] = ()) -> list[Path]:
    """Every folder to look in, in order: each base dir joined with each layout, then ``extra``
    (system folders, searched only when no ``root`` is given)."""
    dirs = [base / layout if layout else base for base in base_dirs(root) for layout in layouts]
    return list(dict.fromkeys([*dirs, *(extra if root is None else ())]))


def _shown(dirs: Sequence[Path]) -> str:
    return "\n".join(f"    {d.resolve() if not d.is_absolute() else d}" for d in dirs)


def find_files(dataset: str, names: Sequence[str], dirs: Sequence[Path], how_to_get: str, *,
               suffixes: Sequence[str] = ("",)) -> list[Path]:
    """One path per name (the name plus the first of ``suffixes`` that exists), all from the
    first folder of ``dirs`` that holds any of them.

    A :class:`DataError` when no folder holds any, or when that folder lacks some of them.
    """
    wanted = [name + "".join(f"[{suffix}]" for suffix in suffixes if suffix) for name in names]
    for i, folder in enumerate(dirs):
        found = [next((folder / (name + s) for s in suffixes if (folder / (name + s)).is_file()), None)
                 for name in names]
        if not any(found):
            continue
        missing = [repr(w) for w, path in zip(wanted, found) if path is None]
        if missing:
            raise DataError(
                f"{dataset}: {folder.absolute()} holds only some of the dataset's files; "
                f"missing: {', '.join(missing)}\n"
                "  All files come from the first folder that holds any of them, never from several folders.\n"
                f"  looked in, in order:\n{_shown(dirs[:i + 1])}\n"
                f"  get them: {how_to_get}\n"
                "  put the missing files next to the others, or set `data.root` (config key: data.root) to a\n"
                "  folder that holds all of them."
            )
        return found
    raise missing_files_error(dataset, wanted, dirs, how_to_get)


def missing_files_error(dataset: str, wanted: Sequence[str], dirs: Sequence[Path], how_to_get: str) -> DataError:
    """The error for files that are not in any searched folder."""
    return DataError(
        f"{dataset}: cannot find {', '.join(repr(w) for w in wanted)}\n"
        f"  looked in:\n{_shown(dirs)}\n"
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
