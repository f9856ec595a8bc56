"""Helpers shared by the speed benchmarks: interleaved timing, the full and bare training steps,
the main-phase epoch of a config, and JSON output.

Every benchmark times the things it compares round-robin in one process (A B C A B C ...), so
they all see the same machine load, and reports medians.
"""

from __future__ import annotations

import itertools
import json
import math
import statistics
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import torch

import mfcf
from mfcf.engine.trainer import _EpochSums, make_optimizer, precision_autocast

REPO = Path(__file__).resolve().parents[2]
PAPER_MNIST = REPO / "configs" / "paper" / "mnist.yaml"
#: The overrides step_overhead.py uses to build the paper's MNIST model without the MNIST files:
#: the 1,797 sklearn digits resized to 28x28 give the same 1x28x28 model (the images do not matter).
PAPER_MNIST_OVERRIDES = ["data.name=digits", "data.image_size=28", "trainer.device=cpu"]


def timed(fn: Callable[[], Any]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def interleaved(fns: Mapping[str, Callable[[], Any]], rounds: int, warmup: int = 3) -> dict[str, list[float]]:
    """Run every function once per round, in turn, ``warmup`` untimed rounds first; seconds per call."""
    for _ in range(warmup):
        for fn in fns.values():
            fn()
    times: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(rounds):
        for name, fn in fns.items():
            times[name].append(timed(fn))
    return times


def stats(seconds: list[float]) -> dict[str, float]:
    """Median and quartiles in milliseconds."""
    q = statistics.quantiles(seconds, n=4, method="inclusive") if len(seconds) > 1 else [seconds[0]] * 3
    return {"ms_median": 1e3 * statistics.median(seconds), "ms_p25": 1e3 * q[0], "ms_p75": 1e3 * q[2],
            "n": len(seconds)}


def ratio_stats(a: list[float], b: list[float]) -> dict[str, float]:
    """``a`` / ``b``: ratio of medians and median of the pairwise (same-round) ratios."""
    return {"ratio_of_medians": statistics.median(a) / statistics.median(b),
            "median_pairwise_ratio": statistics.median([x / y for x, y in zip(a, b)])}


def trainable(module: torch.nn.Module) -> list[torch.nn.Parameter]:
    return [p for p in module.parameters() if p.requires_grad]


def full_step(model, x: torch.Tensor, epoch: int, step: int, lr: float = 1e-4, *, compile: str = "eager",
              precision: str = "fp32") -> Callable[[], None]:
    """mfcf's training step as the trainer runs it: loss (under ``trainer.precision``'s
    autocast), backward, the trainer's Adam, and the on-device bookkeeping of the logged terms;
    with ``compile`` other than ``eager`` the model is compiled first, as the trainer does for
    ``trainer.compile``. Call i runs at (epoch, step + i % 50), so a schedule's coefficients
    change from call to call as in training (within a fade)."""
    opt = make_optimizer(trainable(model), lr=lr)
    if compile != "eager":
        model.compile_training(compile)
    sums = None
    calls = itertools.count()

    def run() -> None:
        nonlocal sums
        with precision_autocast(x.device.type, precision):
            out = model.training_loss(x, epoch=epoch, step=step + next(calls) % 50)
        opt.zero_grad(set_to_none=True)
        out.loss.backward()
        opt.step()
        sums = sums or _EpochSums.for_output(out, x.device)
        sums.add(out, len(x), 0)

    return run


def bare_step(model, x: torch.Tensor, lr: float = 1e-4) -> Callable[[], None]:
    """The bare network step of step_overhead.py: the same encoder and decoder, one rsample per
    facet, the likelihood's reconstruction term, backward, the same optimiser factory."""
    opt = make_optimizer(trainable(model.encoder) + trainable(model.decoder), lr=lr)

    def run() -> None:
        zs = [q.rsample() for q in model.encoder(x)]
        loss = -model.likelihood.log_prob(x, model.decoder(zs)).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    return run


def schedule_epochs(cfg: Mapping[str, Any]) -> list[int] | None:
    """``epochs_per_step`` of a progressive schedule, else None."""
    schedule = cfg.get("schedule") or {}
    if schedule.get("name") != "progressive":
        return None
    return list(schedule.get("epochs_per_step") or [201, 201])


def main_phase_epoch(exp) -> int:
    """An epoch in the main phase of a built experiment's model.

    The last epoch: there every facet of an MFCVAE is active (in the shipped CPU configs the
    fade-in of the last facet is over by then) and every pre-training phase (MFCVAE's
    ``pretrain_epochs``, the autoencoder baselines') has ended.
    """
    return exp.trainer.epochs - 1


def check_all_facets_active(model, epoch: int, step: int = 0) -> list[float]:
    """The decoder alphas at (epoch, step); raises if a facet is switched off there."""
    coeffs = model.schedule(epoch, step)
    if min(coeffs.alpha_dec) <= 0:
        raise RuntimeError(f"epoch {epoch}: not every facet is active (alpha_dec {coeffs.alpha_dec})")
    return list(coeffs.alpha_dec)


def build(path: Path | str, overrides: list[str]):
    return mfcf.build(mfcf.load_config(path, ["trainer.device=cpu", *overrides]))


def finite_positive(value: Any) -> bool:
    return isinstance(value, (int, float)) and math.isfinite(value) and value > 0


def write_json(path: Path | None, result: dict[str, Any]) -> None:
    text = json.dumps(result, indent=2)
    print(text)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text + "\n")


def relpath(path: Path | str) -> str:
    path = Path(path).resolve()
    try:
        return str(path.relative_to(REPO))
    except ValueError:
        return str(path)
