"""MFCVAE training-step overhead against the bare network, measured in one process.

A *bare* step runs the same encoder and decoder (one reparameterised sample per facet, a
Bernoulli reconstruction loss), backward and Adam; a *full* step is mfcf's real training step
(`model.training_loss` with the schedule, the priors and the ELBO estimator, backward, Adam)
plus the trainer's on-device bookkeeping of the logged terms. Steps alternate A B A B ... so
both see the same machine load; the ratio of medians is reported.

    python benchmarks/speed/step_overhead.py                      # paper MNIST fc ladder, batch 512
    python benchmarks/speed/step_overhead.py --elbo mfcvae_analytic --steps 30 --json out.json
    python benchmarks/speed/step_overhead.py --smoke --threads 1 --json /tmp/out.json   # CI, seconds

Target (issue 5): full / bare <= 1.05 on a 2-core CPU for the fc ladder at batch 512, J = 2.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import torch

import mfcf
from mfcf.engine.machine import machine_info
from mfcf.engine.trainer import _EpochSums, make_optimizer

CONFIG = Path(__file__).resolve().parents[2] / "configs" / "paper" / "mnist.yaml"


def build_model(elbo: str, batch: int):
    """The paper's MNIST model on Fashion-MNIST-shaped random data (the images do not matter here)."""
    cfg = mfcf.load_config(CONFIG, [f"elbo.name={elbo}", "data.name=digits", "data.image_size=28",
                                    f"data.batch_size={batch}", "trainer.device=cpu"])
    return mfcf.build(cfg)


def timed(fn, sync=lambda: None) -> float:
    start = time.perf_counter()
    fn()
    sync()
    return time.perf_counter() - start


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--elbo", default="mfcvae_mc")
    p.add_argument("--batch", type=int, default=512)
    p.add_argument("--steps", type=int, default=40)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--json", type=Path)
    p.add_argument("--smoke", action="store_true", help="batch 32, three steps (CI: checks that it runs)")
    args = p.parse_args()
    if args.smoke:
        args.batch, args.steps = 32, 3
    torch.set_num_threads(args.threads)

    exp = build_model(args.elbo, args.batch)
    model = exp.model
    x = torch.rand(args.batch, *exp.train.images.shape[1:])
    full_opt = make_optimizer([p for p in model.parameters() if p.requires_grad], lr=1e-4)
    bare_params = list(model.encoder.parameters()) + list(model.decoder.parameters())
    bare_opt = make_optimizer(bare_params, lr=1e-4)
    sums = None

    def full_step():
        nonlocal sums
        out = model.training_loss(x, epoch=300, step=0)  # inside the fade-in: every facet active
        full_opt.zero_grad(set_to_none=True)
        out.loss.backward()
        full_opt.step()
        sums = sums or _EpochSums.for_output(out, torch.device("cpu"))
        sums.add(out, len(x), 0)

    def bare_step():
        zs = [q.rsample() for q in model.encoder(x)]
        logits = model.decoder(zs)
        loss = torch.nn.functional.binary_cross_entropy_with_logits(logits, x, reduction="sum") / len(x)
        bare_opt.zero_grad(set_to_none=True)
        loss.backward()
        bare_opt.step()

    for _ in range(1 if args.smoke else 5):  # warm-up
        full_step()
        bare_step()
    full, bare = [], []
    for _ in range(args.steps):
        full.append(timed(full_step))
        bare.append(timed(bare_step))
    ratios = [f / b for f, b in zip(full, bare)]
    result = {
        "benchmark": "step_overhead", "smoke": args.smoke, "elbo": args.elbo, "batch": args.batch, "threads": args.threads,
        "steps": args.steps, "full_ms_median": 1e3 * statistics.median(full),
        "bare_ms_median": 1e3 * statistics.median(bare),
        "ratio_of_medians": statistics.median(full) / statistics.median(bare),
        "median_pairwise_ratio": statistics.median(ratios),
        "examples_per_s_full": args.batch / statistics.median(full),
        "machine": machine_info(),
    }
    print(json.dumps(result, indent=2))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
