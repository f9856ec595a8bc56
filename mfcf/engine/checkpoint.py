"""Atomic, safe checkpoints: temp file + fsync + rename, loaded with ``weights_only=True``;
:class:`CheckpointWriter` writes them on a background thread."""

from __future__ import annotations

import contextlib
import copy
import io
import os
import random
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..errors import RunDirError


#: Version of the checkpoint layout this mfcf writes and reads.
CHECKPOINT_FORMAT = 1


def atomic_write_bytes(path: Path, write) -> None:
    """Write ``path`` through ``write(file)`` so readers see the old or the new file, never half.

    A failed write (disk full, file-size limit, a folder that is gone or is a file) leaves the
    old file as it was and raises :class:`RunDirError` naming ``path``.
    """
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "wb") as fh:
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
        dir_fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
    except OSError as exc:
        reason = exc.strerror or str(exc)
        raise RunDirError(f"cannot write '{path}' ({reason}); free disk space, raise the file-size limit or "
                          f"make '{path.parent}' a writable folder") from exc
    finally:
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, lambda fh: fh.write(text.encode()))


def save_checkpoint(path: Path, state: dict[str, Any]) -> None:
    """``torch.save`` ``state`` to ``path`` atomically.

    Serialised in memory first, so a failed write is the file system's own error (no space,
    file too large), which torch's writer would hide behind an internal message."""
    buffer = io.BytesIO()
    torch.save(state, buffer)
    atomic_write_bytes(path, lambda fh: fh.write(buffer.getbuffer()))


def cpu_copy(obj: Any) -> Any:
    """``obj`` with every tensor in its dicts, lists and tuples copied to the CPU; containers are
    copied too (a dict keeps its type and attributes, e.g. a state dict's ``_metadata``), so
    later in-place updates of the originals (an optimiser step) do not reach the copy."""
    if isinstance(obj, torch.Tensor):
        return obj.detach().to("cpu", copy=True)
    if isinstance(obj, dict):
        out = copy.copy(obj)
        for key, value in out.items():
            out[key] = cpu_copy(value)
        return out
    if isinstance(obj, list) or type(obj) is tuple:
        return type(obj)(cpu_copy(value) for value in obj)
    return obj


class CheckpointWriter:
    """Writes checkpoints (:func:`save_checkpoint`) on one background thread.

    :meth:`save` copies the state to the CPU -- the only part the caller waits for -- and
    hands the copy to the thread, so serialisation, write and fsync overlap the next epoch
    (the paper's MNIST model with its Adam state is 37 MB: ~65 ms per save on a 2-core CPU,
    about a tenth of an epoch on a GPU). At most one write is in flight and writes happen in
    order, each atomic as before. :meth:`wait` blocks until everything saved is on disk and
    re-raises a failed write's error. As a context manager, leaving the block waits for the
    last write; its error is raised unless another exception is already leaving the block.

    Example::

        with CheckpointWriter() as writer:
            for epoch in range(epochs):
                ...
                writer.save(run.checkpoint, {"model": model.state_dict(), "epoch": epoch + 1})
    """

    def __init__(self) -> None:
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="mfcf-checkpoint")
        self._pending: Future | None = None

    def save(self, path: Path, state: dict[str, Any]) -> None:
        snapshot = cpu_copy(state)
        self.wait()
        self._pending = self._thread.submit(save_checkpoint, path, snapshot)

    def wait(self) -> None:
        pending, self._pending = self._pending, None
        if pending is not None:
            pending.result()

    def __enter__(self) -> CheckpointWriter:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        try:
            if exc_type is None:
                self.wait()
            else:
                with contextlib.suppress(Exception):
                    self.wait()
        finally:
            self._thread.shutdown(wait=True)


#: Keys of the final weights (``model.pt``) and of a resumable checkpoint (``checkpoints/last.pt``).
WEIGHTS_KEYS = ("format", "model")
TRAINING_KEYS = (*WEIGHTS_KEYS, "epoch", "step", "global_step", "optimizer", "rng", "sums")


def load_checkpoint(path: Path, required: tuple[str, ...] = ()) -> dict[str, Any]:
    """Load a checkpoint with ``weights_only=True`` (tensors and plain containers only), checked to
    be a dict of this mfcf's format holding the ``required`` keys and a dict under ``model``."""
    path = Path(path)
    if not path.is_file():
        raise RunDirError(f"checkpoint '{path}' does not exist")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise RunDirError(f"checkpoint '{path}' cannot be read ({str(exc).splitlines()[0]}); it is damaged or "
                          "not an mfcf checkpoint") from exc
    fix = "\n  Restore it from a backup or start a new run."
    if not isinstance(state, dict):
        raise RunDirError(f"checkpoint '{path}' holds a {type(state).__name__}, not an mfcf checkpoint{fix}")
    if "format" in required and state.get("format") != CHECKPOINT_FORMAT:
        raise RunDirError(f"checkpoint '{path}' has format {state.get('format')!r}; this mfcf reads format "
                          f"{CHECKPOINT_FORMAT}. Use the mfcf version that wrote it.{fix}")
    missing = [k for k in required if k not in state]
    if missing:
        raise RunDirError(f"checkpoint '{path}' lacks {', '.join(missing)}: it is not a complete mfcf "
                          f"checkpoint{fix}")
    if "model" in required and not isinstance(state["model"], dict):
        raise RunDirError(f"checkpoint '{path}' has no state dict under 'model'{fix}")
    return state


def rng_state() -> dict[str, Any]:
    """Every random state a training step may draw from, in a ``weights_only``-loadable form."""
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    state = {
        "torch": torch.get_rng_state(),
        "numpy": {"keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos),
                  "has_gauss": int(has_gauss), "cached": float(cached)},
        "python": random.getstate(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    np_state = state["numpy"]
    np.random.set_state(("MT19937", np_state["keys"].numpy().astype(np.uint32), np_state["pos"],
                         np_state["has_gauss"], np_state["cached"]))
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
