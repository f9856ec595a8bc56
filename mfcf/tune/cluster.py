"""Connecting to Ray: a private local instance, or an existing cluster; resource checks.

Workers of a cluster started with ``ray start`` inherit the environment of ``ray start``, not
the driver's, so everything plugin discovery reads (``MFCF_*`` switches, ``PYTHONPATH`` and the
directories the config's ``plugins:`` modules were imported from) travels in the job's
``runtime_env``. Installed plugin packages are found through their entry points in every
worker that has them installed.

Ray puts the driver's working directory at the front of every worker's ``sys.path``. A folder
there named ``mfcf`` (a clone, a stray ``mfcf/`` directory) would then be imported instead of
the installed package, so the driver joins Ray from an empty directory: a sweep needs nothing
from its working directory, as every path it uses is absolute.
"""

from __future__ import annotations

import contextlib
import importlib.util
import logging
import os
import socket
import sysconfig
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import ray

from ..errors import ConfigError, MfcfError


class ClusterError(MfcfError):
    """Ray could not be started or joined, or it lacks what the trials ask for."""


#: Size of the object store of a private local instance; the sweep passes only configs and
#: metrics through it (data and checkpoints go through the filesystem). Override with
#: MFCF_RAY_OBJECT_STORE_MB.
DEFAULT_OBJECT_STORE_MB = 512
#: Seconds to wait for a TCP answer from an explicit ``--address``; Ray itself retries for minutes.
PROBE_TIMEOUT_S = 10
QUIET_ENV = {
    "RAY_AIR_NEW_OUTPUT": "0",  # Tune's classic reporter, silenced by verbose=0
    # Tune warns each time a per-epoch checkpoint forces an experiment-state snapshot; for short
    # epochs that is every few seconds, and the snapshot is what makes --resume exact.
    "TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S": "0",
    "TUNE_PRINT_ALL_TRIAL_ERRORS": "0",  # a crashed trial gets one line; its traceback is in error.txt
}


def worker_env(plugin_modules: Sequence[str]) -> dict[str, str]:
    """Environment variables every trial needs to find the driver's plugins."""
    env = {k: v for k, v in os.environ.items() if k.startswith("MFCF_")}
    # absolute: workers do not share the driver's working directory
    paths = [os.path.abspath(p) for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
    env_modules = [m.strip() for m in os.environ.get("MFCF_PLUGINS", "").split(",") if m.strip()]
    for module in [*env_modules, *plugin_modules]:
        root = _import_root(module)
        if root and root not in paths:
            paths.append(root)
    if paths:
        env["PYTHONPATH"] = os.pathsep.join(paths)
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    return env


def _import_root(module: str) -> str | None:
    """The sys.path entry ``module`` is imported from, unless it is an installed location."""
    try:
        spec = importlib.util.find_spec(module)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.origin or not os.path.isfile(spec.origin):
        return None
    root = Path(spec.origin).parent
    for _ in range(module.count(".") + (1 if Path(spec.origin).name == "__init__.py" else 0)):
        root = root.parent
    installed = {sysconfig.get_paths()[k] for k in ("stdlib", "platstdlib", "purelib", "platlib")}
    return None if str(root) in installed else str(root)


@contextlib.contextmanager
def connect(address: str | None, *, plugin_modules: Sequence[str] = (), num_cpus: int | None = None,
            num_gpus: int | None = None) -> Iterator[str]:
    """Start a private Ray instance (``address`` None) or join one; yield a description of it.

    ``address`` is ``auto``, ``HOST:PORT`` or ``ray://...``; without it ``RAY_ADDRESS`` is used
    when set. A private instance is sized to this machine unless ``num_cpus``/``num_gpus`` say
    otherwise; it has no dashboard and is shut down on exit.
    """
    for key, value in QUIET_ENV.items():
        os.environ.setdefault(key, value)
    address = address or os.environ.get("RAY_ADDRESS") or None
    if address and (num_cpus is not None or num_gpus is not None):
        raise ConfigError("--num-cpus/--num-gpus size a private local Ray instance; an existing cluster has its own "
                          "resources (drop them, or drop --address/RAY_ADDRESS)", key="--num-cpus")
    runtime_env = {"env_vars": worker_env(plugin_modules)}
    kwargs: dict[str, Any] = dict(runtime_env=runtime_env, log_to_driver=False, logging_level=logging.WARNING,
                                  configure_logging=True)
    if address:
        kwargs["address"] = address
        where = f"the Ray cluster at {address}"
    else:
        mb = int(os.environ.get("MFCF_RAY_OBJECT_STORE_MB", DEFAULT_OBJECT_STORE_MB))
        kwargs.update(address="local", include_dashboard=False, num_cpus=num_cpus, num_gpus=num_gpus,
                      object_store_memory=mb * 2**20)
        where = "a private local Ray instance"
        # its token authentication (Ray's default) needs nothing from the user: no notice
        logging.getLogger("ray._private.authentication.authentication_token_setup").setLevel(logging.ERROR)
    if ray.is_initialized():
        raise ClusterError("Ray is already initialised in this process; call ray.shutdown() first")
    if address:
        _check_listening(address)
    # the empty directory outlives the private instance, whose processes keep it as their cwd
    with tempfile.TemporaryDirectory(prefix="mfcf-ray-") as empty:
        _init_from(empty, address, kwargs)
        try:
            yield f"{where} ({_describe(ray.cluster_resources())})"
        finally:
            ray.shutdown()


def _init_from(directory: str, address: str | None, kwargs: dict[str, Any]) -> None:
    """``ray.init(**kwargs)`` run from ``directory`` (see the module docstring)."""
    previous = os.getcwd()
    os.chdir(directory)
    try:
        ray.init(**kwargs)
    except Exception as exc:  # Ray raises ConnectionError, RuntimeError, its own AuthenticationError...
        raise ClusterError(_connect_message(address, exc)) from None
    finally:
        os.chdir(previous)


def _check_listening(address: str) -> None:
    """Fail at once when nothing answers at the cluster's address, where ``ray.init`` would retry
    for many minutes. ``auto`` stands for the address the last ``ray start`` here recorded."""
    target = address
    if address == "auto":
        from ray._private.utils import read_ray_address

        target = read_ray_address() or ""  # none recorded: ray.init says so at once
    host, _, port = target.removeprefix("ray://").rpartition(":")
    if not host or not port.isdigit():
        return  # not HOST:PORT: ray.init rejects it at once
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=PROBE_TIMEOUT_S).close()
    except OSError as exc:
        reason = f"no answer within {PROBE_TIMEOUT_S} s" if isinstance(exc, TimeoutError) else exc.strerror or exc
        raise ClusterError(_connect_message(address, ConnectionError(f"nothing answers at {host}:{port} ({reason})"))
                           ) from None


def _connect_message(address: str | None, exc: Exception) -> str:
    text = f"{type(exc).__name__}: {exc}"
    if not address:
        return f"could not start a local Ray instance: {text}"
    lines = [f"could not join the Ray cluster at '{address}': {text.splitlines()[0]}"]
    cause = exc.__cause__ or exc
    if "auth" in f"{type(cause).__name__} {cause}".lower() or "token" in str(cause).lower():
        lines.append(
            "  The cluster uses token authentication (Ray's default). On the head node run `ray get-auth-token`,\n"
            "  then in this shell: export RAY_AUTH_MODE=token RAY_AUTH_TOKEN=<that token>\n"
            "  (or RAY_AUTH_TOKEN_PATH=<file holding it>). With --address auto on the head node itself the\n"
            "  token in ~/.ray/auth_token is found automatically. A cluster started with RAY_AUTH_MODE=disabled\n"
            "  needs RAY_AUTH_MODE=disabled here too.")
    else:
        lines.append("  Start one with `ray start --head` (see docs/sweeps.md), check the address and port, or leave out\n"
                     "  --address and RAY_ADDRESS to run on a private local instance.")
    return "\n".join(lines)


def _describe(resources: Mapping[str, float]) -> str:
    parts = [f"{resources.get('CPU', 0):g} CPUs"]
    if resources.get("GPU"):
        parts.append(f"{resources['GPU']:g} GPUs")
    return ", ".join(parts)


def check_resources(cpu: float, gpu: float, nodes: Sequence[Mapping[str, Any]]) -> None:
    """Fail now, not never: Ray would wait forever for a trial no node can host.

    ``nodes`` are ``ray.nodes()`` entries (``Alive``, ``Resources``).
    """
    alive = [n.get("Resources", {}) for n in nodes if n.get("Alive", True)]
    total_gpu = sum(r.get("GPU", 0) for r in alive)
    if gpu > 0 and total_gpu == 0:
        raise ClusterError(
            f"each trial asks for {gpu:g} GPU (resources.gpu) but this Ray cluster has no GPU; Ray would wait "
            "forever.\n  Run on a cluster with GPUs (`ray start` on a GPU machine registers them), or set "
            "resources.gpu=0")
    max_gpu = max((r.get("GPU", 0) for r in alive), default=0)
    if gpu > max_gpu:
        raise ClusterError(f"each trial asks for {gpu:g} GPUs but the largest node has {max_gpu:g}; lower "
                           "resources.gpu (fractions such as 0.5 share one GPU)")
    max_cpu = max((r.get("CPU", 0) for r in alive), default=0)
    if cpu > max_cpu:
        raise ClusterError(f"each trial asks for {cpu:g} CPUs (resources.cpu) but the largest node has {max_cpu:g}; "
                           "Ray would wait forever. Lower resources.cpu")


def current_nodes() -> list[dict[str, Any]]:
    return ray.nodes()
