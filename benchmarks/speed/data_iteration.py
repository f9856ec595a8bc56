"""The data-iteration share of an MFCVAE training epoch, measured in one process.

Iterates one epoch of 60,000 28x28 images (a resident float32 tensor, a seeded permutation,
batches of 512 taken by index_select: mfcf's DeviceBatches) and compares it with the training
time of one epoch of the paper's MNIST model (median step time x steps per epoch).

    python benchmarks/speed/data_iteration.py [--json benchmarks/results/data_iteration.json]
    python benchmarks/speed/data_iteration.py --smoke --threads 1 --json /tmp/out.json   # CI, seconds

Target (issue 4): under 2 % of an epoch of MFCVAE training on a 2-core CPU.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
from _common import full_step, timed, write_json  # noqa: E402
from step_overhead import build_model  # noqa: E402

from mfcf.engine.batches import DeviceBatches  # noqa: E402
from mfcf.engine.machine import machine_info  # noqa: E402


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--epochs", type=int, default=5, help="data epochs to time")
    p.add_argument("--steps", type=int, default=15, help="training steps to time")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--json", type=Path)
    p.add_argument("--smoke", action="store_true", help="4,096 images, one data epoch, two steps (CI)")
    args = p.parse_args()
    n_images = 60_000
    if args.smoke:
        n_images, args.epochs, args.steps = 4096, 1, 2
    torch.set_num_threads(args.threads)

    images = torch.rand(n_images, 1, 28, 28)
    batches = DeviceBatches(images, 512, shuffle=True, seed=0)
    data_times = []
    for epoch in range(args.epochs):
        start = time.perf_counter()
        for x in batches.epoch(epoch):
            pass
        data_times.append(time.perf_counter() - start)

    exp = build_model("mfcvae_mc", 512)
    step = full_step(exp.model, images[:512], epoch=300, step=0)
    for _ in range(1 if args.smoke else 3):  # warm-up
        step()
    step_times = [timed(step) for _ in range(args.steps)]
    epoch_train = statistics.median(step_times) * len(batches)
    result = {
        "benchmark": "data_iteration", "smoke": args.smoke, "images": n_images, "batch": 512, "threads": args.threads,
        "data_epoch_s_median": statistics.median(data_times), "train_epoch_s_estimate": epoch_train,
        "data_share_of_epoch": statistics.median(data_times) / epoch_train,
        "machine": machine_info(),
    }
    write_json(args.json, result)


if __name__ == "__main__":
    main()
