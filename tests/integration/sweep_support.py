"""Helpers for the sweep tests: toy experiments, CLI runs with a short Ray temp dir, and
finding (and ending) only the Ray processes a test started, by their unique temp dir."""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Iterator

import yaml

TOY_DIR = Path(__file__).resolve().parents[1] / "toy_plugins"


def toy_experiment(**trainer: Any) -> dict[str, Any]:
    """The tests' tiny two-facet experiment (toy plugin via `plugins:`), with a validation split."""
    return {
        "plugins": ["mfcf_toy", "mfcf_toy_faulty"],
        "data": {"name": "toy_blobs", "batch_size": 32, "val_fraction": 0.2},
        "model": {"name": "toy_faulty"},
        "facets": [{"latent_dim": 2, "n_clusters": 3}, {"latent_dim": 2, "n_clusters": 2}],
        "trainer": {"epochs": 3, "lr": 0.01, "threads": 1, **trainer},
    }


def write_sweep(path: Path, **fields: Any) -> Path:
    path.write_text(yaml.safe_dump(fields, sort_keys=False))
    return path


@contextlib.contextmanager
def short_tmp() -> Iterator[Path]:
    """A short temp dir for Ray's sockets; on exit, kill any process still using it, remove it."""
    path = Path(tempfile.mkdtemp(prefix="rt_", dir="/tmp"))
    try:
        yield path
    finally:
        kill_processes(path)
        shutil.rmtree(path, ignore_errors=True)


def cli_env(ray_tmp: Path, **extra: str) -> dict[str, str]:
    env = dict(os.environ)
    for key in ("RAY_ADDRESS", "RAY_AUTH_MODE", "RAY_AUTH_TOKEN", "RAY_AUTH_TOKEN_PATH"):
        env.pop(key, None)
    paths = [str(TOY_DIR), *[p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p and p != str(TOY_DIR)]]
    env.update(PYTHONPATH=os.pathsep.join(paths), RAY_TMPDIR=str(ray_tmp), MFCF_RAY_OBJECT_STORE_MB="100")
    env.update(extra)
    return env


def mfcf(*args: str, env: dict[str, str], timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "mfcf.cli", *args], capture_output=True, text=True, env=env,
                          timeout=timeout)


def mfcf_script(*args: str, env: dict[str, str], cwd: Path, timeout: float = 300) -> subprocess.CompletedProcess:
    """The installed ``mfcf`` console script run from ``cwd``, as a user runs it (``python -m``
    would put ``cwd`` on the driver's own sys.path)."""
    script = Path(sys.executable).with_name("mfcf")
    return subprocess.run([str(script), *args], capture_output=True, text=True, env=env, cwd=cwd, timeout=timeout)


def mfcf_background(*args: str, env: dict[str, str], log: Path) -> subprocess.Popen:
    """The CLI in its own process group (so the test can SIGKILL it and everything it started)."""
    return subprocess.Popen([sys.executable, "-m", "mfcf.cli", *args], stdout=open(log, "w"),
                            stderr=subprocess.STDOUT, env=env, start_new_session=True)


def processes_using(path: Path) -> list[int]:
    """PIDs whose command line mentions ``path`` (Ray's processes name their temp/session dir)."""
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if str(path) in cmdline:
            pids.append(int(entry.name))
    return pids


def session_processes(sid: int) -> list[int]:
    """Live PIDs in session ``sid`` (a process started with ``start_new_session=True`` leads
    one; Ray's workers get their own process group but stay in the session)."""
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[3]) == sid and fields[0] != "Z" and int(entry.name) != os.getpid():
                pids.append(int(entry.name))
    return pids


def kill_session(sid: int) -> None:
    """SIGKILL every process of the session a test started (its driver and all Ray processes)."""
    for pid in session_processes(sid):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def kill_processes(path: Path) -> list[int]:
    """SIGKILL the processes using ``path`` (only ever a test's own unique temp dir)."""
    pids = processes_using(path)
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    return pids


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def ray_head(ray_tmp: Path) -> Iterator[dict[str, Any]]:
    """`ray start --head --block` on the loopback interface with token authentication (Ray's
    default) and a fresh token, run *without* the tests' PYTHONPATH so workers see the toy
    plugins only through the driver's runtime_env. Stopped by SIGTERM to that `ray start`
    process, which shuts down the node's own processes; leftovers using the temp dir are killed."""
    port, token = free_port(), secrets.token_hex(32)
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "RAY_ADDRESS", "RAY_AUTH_MODE")}
    env["RAY_AUTH_TOKEN"] = token
    log = ray_tmp / "head.log"
    head = subprocess.Popen(
        ["ray", "start", "--head", "--block", f"--port={port}", "--node-ip-address=127.0.0.1",
         f"--temp-dir={ray_tmp / 'head'}", "--num-cpus=2", "--num-gpus=0", "--include-dashboard=false",
         "--object-store-memory=100000000", "--disable-usage-stats"],
        stdout=open(log, "w"), stderr=subprocess.STDOUT, env=env, start_new_session=True)
    try:
        deadline = time.monotonic() + 120
        while not (ray_tmp / "head" / "ray_current_cluster").is_file():
            if head.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"ray start failed:\n{log.read_text()}")
            time.sleep(0.3)
        yield {"address": f"127.0.0.1:{port}", "token": token, "process": head}
    finally:
        head.send_signal(signal.SIGTERM)
        try:
            head.wait(timeout=60)
        except subprocess.TimeoutExpired:
            head.kill()
        deadline = time.monotonic() + 20
        while processes_using(ray_tmp / "head") and time.monotonic() < deadline:
            time.sleep(0.5)


def trial_dirs(sweep_dir: Path) -> dict[str, Path]:
    return {p.name: p for p in sorted(sweep_dir.iterdir()) if (p / "trial.json").is_file()}


def read_json(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text())
