"""GPU speed of the paper's MNIST ladder: the training step in eager / bf16 / compiled modes, a
check that the step never synchronises with the host, and the wall time of the whole 402-epoch
protocol through ``mfcf train``.

    python benchmarks/speed/gpu.py --json benchmarks/results/gpu.json \\
        --protocol-root /path/to/mnist-idx-files --protocol-timeout 400
    python benchmarks/speed/gpu.py --smoke --json /tmp/gpu.json     # CPU too: checks that it runs

Steps: for every variant (``trainer.compile`` x ``trainer.precision``) a fresh paper
MNIST model (batch 512) is trained for ``--warmup`` untimed steps (torch.compile compiles
there; their wall time is reported as ``warmup_s``), then blocks of ``--block`` steps are timed
between device synchronisations, alternating with blocks of the bare network step (encoder,
one sample, decoder, Bernoulli reconstruction, backward, Adam) so both see the same machine;
medians of the per-step times are reported. The step is the trainer's (``_common.full_step``:
loss under the precision's autocast, backward, Adam, the on-device sums of the logged terms),
at epoch 250 of the progressive schedule with a new ``step`` every call, so the fade's
coefficients change every step as in training. Afterwards ``--sync-steps`` more steps run under
``torch.cuda.set_sync_debug_mode("error")``: any host-device synchronisation raises, and the
record says which.

Protocol (afterwards, with ``--protocol-root``): ``mfcf train configs/paper/mnist.yaml`` with the
given data folder (IDX files in the MNIST layout; the images change nothing about the speed)
and ``--protocol-overrides``, killed after ``--protocol-timeout`` seconds. Reported: the wall
time of the command, the seconds until the run directory was created (imports, data loading,
building; one-second resolution), the trainer's ``time/train_s`` (training incl. GMM initialisation and
checkpoints, without start-up and the final evaluation), the epochs finished, and when it was
cut short, seconds per epoch over the epochs it finished.
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch
from torch._dynamo.utils import counters

sys.path.insert(0, str(Path(__file__).parent))
from _common import PAPER_MNIST, PAPER_MNIST_OVERRIDES, bare_step, full_step, write_json  # noqa: E402

import mfcf  # noqa: E402
from mfcf.engine.machine import machine_info  # noqa: E402

#: variant name -> (trainer.compile, trainer.precision)
VARIANTS = {
    "eager-fp32": ("eager", "fp32"),
    "eager-bf16": ("eager", "bf16"),
    "compile-fp32": ("default", "fp32"),
    "compile-bf16": ("default", "bf16"),
    "reduce-overhead-fp32": ("reduce-overhead", "fp32"),
}
EPOCH = 250  # inside the progressive fade of facet 0: coefficients change every step


def build_paper_model(device: str, batch: int, compile_mode: str, precision: str):
    """The paper MNIST experiment on ``device`` with sklearn's digits at 28x28 as stand-in data."""
    return mfcf.build(mfcf.load_config(PAPER_MNIST, [
        *PAPER_MNIST_OVERRIDES, f"trainer.device={device}", f"data.batch_size={batch}",
        f"trainer.compile={compile_mode}", f"trainer.precision={precision}"]))


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def per_step_seconds(fn: Callable[[], None], steps: int, device: torch.device) -> float:
    sync(device)
    start = time.perf_counter()
    for _ in range(steps):
        fn()
    sync(device)
    return (time.perf_counter() - start) / steps


def sync_check(fn: Callable[[], None], steps: int, device: torch.device) -> dict[str, object]:
    """Run ``steps`` steps with CUDA's sync debug mode at 'error': the first synchronisation raises."""
    if device.type != "cuda":
        return {"checked": False, "why": "not a CUDA device"}
    sync(device)
    torch.cuda.set_sync_debug_mode("error")
    try:
        for _ in range(steps):
            fn()
        return {"checked": True, "steps": steps, "host_syncs": 0}
    except RuntimeError as exc:
        return {"checked": True, "steps": steps, "host_syncs": ">=1", "first": str(exc).splitlines()[0][:300]}
    finally:
        torch.cuda.set_sync_debug_mode(0)


def time_variant(name: str, args, device: torch.device) -> dict[str, object]:
    compile_mode, precision = VARIANTS[name]
    torch._dynamo.reset()  # no variant reuses (or fills up) another's compiled graphs
    graphs_before = counters["stats"]["unique_graphs"]
    torch.manual_seed(0)
    exp = build_paper_model(str(device), args.batch, compile_mode, precision)
    x = exp.train.images[:args.batch]
    assert x.device.type == device.type, "the training data must live on the training device"
    cfg = exp.trainer
    full = full_step(exp.model, x, EPOCH, 0, cfg.lr, compile=cfg.compile, precision=cfg.precision)
    bare = bare_step(exp.model, x)
    started = time.perf_counter()
    for _ in range(args.warmup):
        full()
        bare()
    sync(device)
    warmup_s = time.perf_counter() - started
    full_t, bare_t = [], []
    for _ in range(args.blocks):
        full_t.append(per_step_seconds(full, args.block, device))
        bare_t.append(per_step_seconds(bare, args.block, device))
    record = {
        "variant": name, "compile": compile_mode, "precision": precision, "warmup_steps": args.warmup,
        "warmup_s": round(warmup_s, 2), "blocks": args.blocks, "block_steps": args.block,
        "full_ms_median": 1e3 * statistics.median(full_t), "bare_ms_median": 1e3 * statistics.median(bare_t),
        "ratio_full_over_bare": statistics.median(full_t) / statistics.median(bare_t),
        "examples_per_s": args.batch / statistics.median(full_t),
        "sync_check": sync_check(full, args.sync_steps, device),
    }
    record["graphs_compiled"] = counters["stats"]["unique_graphs"] - graphs_before
    print(record, flush=True)
    return record


def run_protocol(args, timeout: float) -> dict[str, object]:
    run_dir = Path(args.protocol_run_dir)
    cmd = [sys.executable, "-m", "mfcf.cli", "train", str(PAPER_MNIST), f"data.root={args.protocol_root}",
           *args.protocol_overrides, "--run-dir", str(run_dir), "--quiet"]
    started, started_at = time.perf_counter(), dt.datetime.now()
    try:
        proc = subprocess.run(cmd, timeout=timeout, capture_output=True, text=True)
        finished, tail = proc.returncode == 0, (proc.stdout + proc.stderr)[-3000:]
    except subprocess.TimeoutExpired as exc:
        finished, tail = False, f"killed after {timeout:.0f} s: {str(exc.stderr or '')[-1000:]}"
    wall = time.perf_counter() - started
    rows = list(csv.DictReader((run_dir / "metrics.csv").open())) if (run_dir / "metrics.csv").is_file() else []
    record: dict[str, object] = {"command": " ".join(cmd), "timeout_s": round(timeout), "finished": finished,
                                 "wall_s": round(wall, 1),
                                 "epochs_done": len(rows), "output_tail": tail}
    run_json = run_dir / "run.json"
    if run_json.is_file():  # imports, data loading and building happen before the run directory exists
        created = dt.datetime.fromisoformat(json.loads(run_json.read_text())["created"])
        record["until_run_dir_s"] = round((created - started_at).total_seconds(), 1)
    if rows:
        train_s = float(rows[-1]["time/train_s"])
        record["train_s"] = train_s
        record["s_per_epoch"] = train_s / len(rows)
        record["last_row"] = {k: rows[-1][k] for k in rows[-1] if k.startswith(("train/loss", "examples", "epoch"))}
    summary = run_dir / "eval-test.json"
    if summary.is_file():
        record["evaluation"] = summary.read_text()[:4000]
    print({k: v for k, v in record.items() if k != "output_tail"}, flush=True)
    return record


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--variants", default="eager-fp32,eager-bf16,compile-fp32,compile-bf16")
    p.add_argument("--batch", type=int, default=512)
    p.add_argument("--warmup", type=int, default=30)
    p.add_argument("--blocks", type=int, default=10)
    p.add_argument("--block", type=int, default=20, help="steps per timed block")
    p.add_argument("--sync-steps", type=int, default=20)
    p.add_argument("--protocol-root", help="IDX folder for the 402-epoch protocol; omitted: no protocol run")
    p.add_argument("--protocol-overrides", nargs="*", default=[])
    p.add_argument("--protocol-timeout", type=float, default=400)
    p.add_argument("--variants-until", type=float, default=None,
                   help="seconds from the start after which no further variant is begun")
    p.add_argument("--deadline", type=float, default=None,
                   help="seconds from the start by which the protocol run is stopped")
    p.add_argument("--protocol-run-dir", default="/tmp/mfcf-gpu-protocol")
    p.add_argument("--json", type=Path)
    p.add_argument("--smoke", action="store_true", help="batch 32, 2 warm-up steps, 2 blocks of 2 (any device)")
    args = p.parse_args()
    if args.smoke:
        args.batch, args.warmup, args.blocks, args.block, args.sync_steps = 32, 2, 2, 2, 2
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    result: dict[str, object] = {"benchmark": "gpu", "smoke": args.smoke, "device": str(device),
                                 "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
                                 "torch": torch.__version__, "machine": machine_info(), "batch": args.batch,
                                 "steps": [], "protocol": None}
    names = args.variants.split(",")
    unknown = [n for n in names if n not in VARIANTS]
    if unknown:
        raise SystemExit(f"unknown variant(s) {unknown}; choose from {', '.join(VARIANTS)}")
    started = time.perf_counter()
    for name in names:
        elapsed = time.perf_counter() - started
        if args.variants_until is not None and elapsed > args.variants_until:
            result["steps"].append({"variant": name, "skipped": f"not begun: {elapsed:.0f} s had passed"})
            continue
        result["steps"].append(time_variant(name, args, device))
        write_json(args.json, result)
    if args.protocol_root:
        left = args.protocol_timeout
        if args.deadline is not None:
            left = min(left, args.deadline - (time.perf_counter() - started))
        result["protocol"] = run_protocol(args, max(left, 1.0))
    write_json(args.json, result)


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    main()
