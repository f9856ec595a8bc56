"""An on-disk cache of generated arrays, keyed by a hash of everything that determines them."""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import zipfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np


def default_cache_dir(configured: str | None) -> Path:
    """``configured``, else ``$MFCF_CACHE_DIR``, else ``~/.cache/mfcf``."""
    return Path(configured or os.environ.get("MFCF_CACHE_DIR") or "~/.cache/mfcf").expanduser()


def cache_key(params: Mapping[str, Any]) -> str:
    """A short stable hash of JSON-serialisable parameters."""
    text = json.dumps(params, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:20]


def cached_arrays(path: Path, make: Callable[[], dict[str, np.ndarray]],
                  valid: Callable[[dict[str, np.ndarray]], bool]) -> dict[str, np.ndarray]:
    """The arrays stored at ``path`` if readable and ``valid``, else ``make()`` stored there.

    Written atomically (a temporary file in the same folder, then ``os.replace``) so parallel
    workers never read half a file; an unreadable or invalid file is regenerated.
    """
    try:
        with np.load(path) as stored:
            arrays = {k: stored[k] for k in stored.files}
        if valid(arrays):
            return arrays
    except (OSError, ValueError, EOFError, KeyError, zipfile.BadZipFile):
        pass
    arrays = make()
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
    return arrays
