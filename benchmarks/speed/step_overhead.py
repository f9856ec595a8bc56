"""MFCVAE training-step overhead against the bare network, measured in one process.

A *bare* step runs the same encoder and decoder (one reparameterised sample per facet, the
likelihood's reconstruction term: Bernoulli here), backward and the trainer's Adam; a *full*
step is mfcf's real training step (`model.training_loss` with the schedule, the priors and the
ELBO estimator, backward, Adam) plus the trainer's on-device bookkeeping of the logged terms. Steps alternate A B A B ... so
both see the same machine load; the ratio of medians is reported.

    python benchmarks/speed/step_overhead.py                      # paper MNIST fc ladder, batch 512
    python benchmarks/speed/step_overhead.py --elbo mfcvae_analytic --steps 30 --json out.json
    python benchmarks/speed/step_overhead.py --compile default    # with trainer.compile: default
    python benchmarks/speed/step_overhead.py --smoke --threads 1 --json /tmp/out.json   # CI, seconds

``--compile MODE`` times the full step as the trainer runs it with ``trainer.compile: MODE``
(``model.compile_training``: on a CPU the ELBO's densities are compiled, the networks stay
eager); the compilation happens in the warm-up steps.

Target (issue 5): full / bare <= 1.05 on a 2-core CPU for the fc ladder at batch 512, J = 2.
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
from _common import (PAPER_MNIST, PAPER_MNIST_OVERRIDES, bare_step, build, full_step,  # noqa: E402
                     interleaved, ratio_stats, write_json)

from mfcf.engine.machine import machine_info  # noqa: E402


def build_model(elbo: str, batch: int):
    """The paper's MNIST model, built without the MNIST files (the images do not matter here)."""
    return build(PAPER_MNIST, [*PAPER_MNIST_OVERRIDES, f"elbo.name={elbo}", f"data.batch_size={batch}"])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--elbo", default="mfcvae_mc")
    p.add_argument("--batch", type=int, default=512)
    p.add_argument("--steps", type=int, default=40)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--compile", default="eager", help="trainer.compile mode of the full step (default: eager)")
    p.add_argument("--json", type=Path)
    p.add_argument("--smoke", action="store_true", help="batch 32, three steps (CI: checks that it runs)")
    args = p.parse_args()
    if args.smoke:
        args.batch, args.steps = 32, 3
    torch.set_num_threads(args.threads)

    exp = build_model(args.elbo, args.batch)
    model = exp.model
    x = torch.rand(args.batch, *exp.train.images.shape[1:])
    # epoch 300: inside the fade-in, every facet active
    times = interleaved({"full": full_step(model, x, epoch=300, step=0, compile=args.compile), "bare": bare_step(model, x)},
                        rounds=args.steps, warmup=1 if args.smoke else 5)
    full, bare = times["full"], times["bare"]
    result = {
        "benchmark": "step_overhead", "smoke": args.smoke, "elbo": args.elbo, "batch": args.batch, "threads": args.threads,
        "compile": args.compile, "steps": args.steps, "full_ms_median": 1e3 * statistics.median(full),
        "bare_ms_median": 1e3 * statistics.median(bare),
        **ratio_stats(full, bare),
        "examples_per_s_full": args.batch / statistics.median(full),
        "machine": machine_info(),
    }
    write_json(args.json, result)


if __name__ == "__main__":
    main()
