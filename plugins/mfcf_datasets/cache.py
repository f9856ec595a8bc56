"""An on-disk cache of generated arrays, keyed by a hash of everything that determines them."""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import warnings
import zipfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from mfcf.errors import DataError


def default_cache_dir(configured: str | None) -> Path:
    """``configured``, else ``$MFCF_CACHE_DIR``, else ``~/.cache/mfcf``."""
    return Path(configured or os.environ.get("MFCF_CACHE_DIR") or "~/.cache/mfcf").expanduser()


def cache_dir_chosen(configured: str | None) -> bool:
    """Whether the user chose the cache folder (``data.cache_dir`` or ``$MFCF_CACHE_DIR``)."""
    return bool(configured or os.environ.get("MFCF_CACHE_DIR"))


def cache_key(params: Mapping[str, Any]) -> str:
    """A short stable hash of JSON-serialisable parameters."""
    text = json.dumps(params, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:20]


def cached_arrays(path: Path, make: Callable[[], dict[str, np.ndarray]],
                  valid: Callable[[dict[str, np.ndarray]], bool], *, optional: bool = False) -> dict[str, np.ndarray]:
    """The arrays stored at ``path`` if readable and ``valid``, else ``make()`` stored there.

    Written atomically (a temporary file in the same folder, then ``os.replace``) so parallel
    workers never read half a file; an unreadable or invalid file is regenerated. A cache
    folder that cannot be written is a :class:`DataError` naming it, unless the cache is
    ``optional`` (the default folder under a HOME that may not be writable): then a warning,
    and the arrays are used without being stored.
    """
    try:
        with np.load(path) as stored:
            arrays = {k: stored[k] for k in stored.files}
        if valid(arrays):
            return arrays
    except (OSError, ValueError, EOFError, KeyError, zipfile.BadZipFile):
        pass
    arrays = make()
    try:
        _save_atomically(path, arrays)
    except OSError as exc:
        if optional:
            warnings.warn(f"cannot write the cache file {path} ({exc.strerror or exc}); going on without a cache. "
                          "Set data.cache_dir or $MFCF_CACHE_DIR to a writable folder to keep the arrays.",
                          stacklevel=2)
            return arrays
        raise DataError(f"cannot write the cache file {path}: {exc.strerror or exc}; set data.cache_dir (or "
                        "$MFCF_CACHE_DIR) to a writable folder, or data.cache to false") from None
    return arrays


def _save_atomically(path: Path, arrays: dict[str, np.ndarray]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            np.savez(fh, **arrays)
        os.chmod(tmp, 0o644)  # mkstemp creates 0600; a cache is for every user of the folder
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
