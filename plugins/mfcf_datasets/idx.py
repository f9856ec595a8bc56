"""Reading IDX files (the MNIST container format), plain or gzip-compressed.

torchvision's reader neither opens ``.gz`` files nor reports truncation as anything but an
``AssertionError``; this one checks the header against the payload and raises
:class:`mfcf.errors.DataError` naming the file. Compression is recognised by the file's first
bytes, not its name, so a decompressed file still called ``.gz`` (or the reverse) reads fine.
"""

from __future__ import annotations

import gzip
import math
import zlib
from pathlib import Path

import numpy as np

from mfcf.errors import DataError

#: IDX type byte -> big-endian numpy dtype.
_DTYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def read_idx(path: Path) -> np.ndarray:
    """The array stored in the IDX file at ``path`` (gzip-compressed ones decompressed on the fly)."""
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise DataError(f"{path} cannot be read: {exc.strerror or exc}") from None
    if raw[:2] == b"\x1f\x8b":  # the gzip magic number
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError, zlib.error) as exc:
            raise DataError(f"{path} is not a complete gzip file ({exc}); the download was probably cut short") from None
    if len(raw) < 4 or raw[:2] != b"\0\0" or raw[2] not in _DTYPES or raw[3] == 0:
        raise DataError(f"{path} is not an IDX file (its first bytes are {raw[:4]!r}, expected 00 00 <type> <ndim>)")
    ndim, header = raw[3], 4 + 4 * raw[3]
    if len(raw) < header:
        raise DataError(f"{path} is truncated: it ends inside its {header}-byte header")
    dims = tuple(int(d) for d in np.frombuffer(raw, ">u4", ndim, 4))
    dtype = np.dtype(_DTYPES[raw[2]])
    expected = math.prod(dims) * dtype.itemsize
    if len(raw) - header != expected:
        raise DataError(
            f"{path} is truncated or corrupt: its header promises an array of shape {dims} "
            f"({expected} bytes) but it holds {len(raw) - header} bytes after the header"
        )
    return np.frombuffer(raw, dtype, offset=header).reshape(dims)
