"""One writer per run directory: an exclusive lock file holding the owner's PID.

The lock is an ``fcntl.flock`` on ``RUN_DIR/run.lock``: taken atomically by the kernel, released
by it when the owner exits in any way (SIGKILL included), so a lock left behind by a killed run
is stale by construction and the next taker simply gets it. The file holds the owner's PID and
command line, for the message a second writer gets, and is removed on a clean release.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import sys
import time
from collections.abc import Iterator
from pathlib import Path

from ..errors import RunDirError

LOCK_NAME = "run.lock"


def _owner(path: Path) -> str:
    """The holder's line from the lock file; the holder writes it just after taking the flock, so an
    empty file is re-read for up to a second before falling back to a nameless owner."""
    for _ in range(20):
        try:
            text = path.read_text().strip()
        except OSError:
            text = ""
        if text:
            return text
        time.sleep(0.05)
    return "another process"


def _in_use(path: Path) -> RunDirError:
    return RunDirError(
        f"run directory '{path.parent}' is in use by {_owner(path)} (lock file '{path}'); two writers "
        "may not share a run directory.\n  Wait for that process to finish (or stop it), then try again; "
        "use another --run-dir for a second run.")


def ensure_unlocked(run_dir: Path) -> None:
    """Raise :class:`RunDirError` at once if a live process holds ``run_dir``'s lock (creates nothing)."""
    path = Path(run_dir) / LOCK_NAME
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:  # no lock file: nobody holds it
        return
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        raise _in_use(path) from None
    finally:
        os.close(fd)


@contextlib.contextmanager
def run_lock(run_dir: Path) -> Iterator[None]:
    """Hold ``run_dir``'s lock for the ``with`` block; :class:`RunDirError` if a live process has it."""
    path = Path(run_dir) / LOCK_NAME
    while True:
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            raise RunDirError(f"cannot create the lock file '{path}': {exc.strerror}; the run directory must be "
                              "writable") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise _in_use(path) from None
        try:  # the previous owner may have removed the file between our open and our flock
            same = os.fstat(fd).st_ino == os.stat(path).st_ino
        except FileNotFoundError:
            same = False
        if same:
            break
        os.close(fd)
    try:
        os.ftruncate(fd, 0)
        os.write(fd, f"process {os.getpid()} ({' '.join(sys.argv[:3])})\n".encode())
        yield
    finally:
        with contextlib.suppress(OSError):
            path.unlink()
        os.close(fd)  # closing releases the flock
