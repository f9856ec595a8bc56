"""GMM initialisation and evaluation, each as a share of one MFCVAE training epoch.

For each model, in one process and interleaved round by round:

* one training epoch = median full-step time (``training_loss`` at a main-phase epoch +
  backward + the trainer's Adam + its on-device sums, first training batch) x steps per epoch;
* the GMM initialisation ``model.gmm_init(train.images)`` (encode the training split, fit a
  diagonal GaussianMixture per facet; scikit-learn limited to torch's thread count) -- as the
  config says (``model.gmm_examples``; the paper model: the whole split, faithful) and on a
  seeded subsample of ``SUBSAMPLE`` examples (``gmm_examples: 10000``, what the CPU configs use);
* one evaluation pass over the test split: ``mfcf.engine.evaluation.evaluate_experiment``, the
  path ``mfcf evaluate`` takes once the weights are loaded (batched eval-mode assignments, then
  the scores and the facet-factor matching); the assignment pass alone is reported too;
* the trainer's per-epoch validation pass (``Trainer._validation``) where the config has a
  validation split;
* the end-of-epoch checkpoint (model, Adam state, RNG states): ``checkpoint_write`` is the
  whole atomic write (serialise, write, fsync), ``checkpoint_wait`` the part the training loop
  waits for now that :class:`mfcf.engine.checkpoint.CheckpointWriter` writes in the
  background (the copy of the state to the CPU).

Models: the paper's MNIST model (configs/paper/mnist.yaml) at batch 512 on 60,000 random but
fixed 28x28 images (10,000 for the test split, random labels), and the four CPU MFCVAE configs
on their real data. Target (issue): GMM init and evaluation each < 5 % of one epoch.

    python benchmarks/speed/epoch_shares.py --json benchmarks/results/epoch_shares.json   # ~1 min
    python benchmarks/speed/epoch_shares.py --smoke --json /tmp/epoch_shares.json
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).parent))
from _common import (PAPER_MNIST, PAPER_MNIST_OVERRIDES, REPO, build, check_all_facets_active,  # noqa: E402
                     full_step, main_phase_epoch, relpath, stats, timed, trainable, write_json)

import mfcf  # noqa: E402
from mfcf.api import DataSplit  # noqa: E402
from mfcf.engine.checkpoint import CheckpointWriter, rng_state, save_checkpoint  # noqa: E402
from mfcf.engine.evaluation import assignments, evaluate_experiment  # noqa: E402
from mfcf.engine.machine import machine_info  # noqa: E402
from mfcf.engine.trainer import Trainer, make_optimizer  # noqa: E402

CPU_CONFIGS = [REPO / "configs" / f"{d}_mfcvae.yaml" for d in ("fashion_mnist", "mnist5k", "shapes", "colored_mnist")]
TARGET = 0.05
SUBSAMPLE = 10_000


def paper_random(n_train: int, n_test: int, batch: int):
    """The paper's MNIST model; train / test splits replaced by fixed random 28x28 images."""
    exp = mfcf.build(mfcf.load_config(PAPER_MNIST, [*PAPER_MNIST_OVERRIDES, f"data.batch_size={batch}",
                                                    f"data.eval_batch_size={batch}"]))
    g = torch.Generator().manual_seed(0)
    exp.train = DataSplit(torch.rand(n_train, 1, 28, 28, generator=g), {"label": torch.randint(10, (n_train,), generator=g)})
    exp.test = DataSplit(torch.rand(n_test, 1, 28, 28, generator=g), {"label": torch.randint(10, (n_test,), generator=g)})
    exp.val = None
    return exp, 300


def checkpoint_state(model, x: torch.Tensor, epoch: int, lr: float):
    """What the trainer checkpoints each epoch, for ``model`` with a populated Adam state."""
    optimizer = make_optimizer(trainable(model), lr)
    model.training_loss(x, epoch=epoch, step=0).loss.backward()
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    return lambda: {"epoch": epoch + 1, "model": model.state_dict(), "optimizer": optimizer.state_dict(),
                    "rng": rng_state()}


def measure(name: str, exp, epoch: int, rounds: int, steps: int, threads: int) -> dict:
    model = exp.model
    model.train()
    check_all_facets_active(model, epoch)
    batch = exp.resolved.data.batch_size
    steps_per_epoch = math.ceil(len(exp.train) / batch)
    step = full_step(model, exp.train.images[:batch], epoch, 0, exp.trainer.lr)
    trainer = Trainer(exp, None, quiet=True)  # only its validation pass is used
    for _ in range(3):
        step()
    times: dict[str, list[float]] = {k: [] for k in ("step", "gmm_init", "gmm_init_subsample", "evaluate", "assign",
                                                     "validation", "checkpoint_write", "checkpoint_wait")}
    state = checkpoint_state(model, exp.train.images[:batch], epoch, exp.trainer.lr)
    with tempfile.TemporaryDirectory(prefix="mfcf-epoch-shares-") as folder, CheckpointWriter() as writer:
        path = Path(folder) / "last.pt"
        for _ in range(rounds):
            times["checkpoint_write"].append(timed(lambda: save_checkpoint(path, state())))
            times["checkpoint_wait"].append(timed(lambda: writer.save(path, state())))
            writer.wait()
            times["step"] += [timed(step) for _ in range(steps)]
            times["gmm_init"].append(timed(lambda: model.gmm_init(exp.train.images)))
            configured, model.config.gmm_examples = model.config.gmm_examples, SUBSAMPLE
            times["gmm_init_subsample"].append(timed(lambda: model.gmm_init(exp.train.images)))
            model.config.gmm_examples = configured
            times["evaluate"].append(timed(lambda: evaluate_experiment(exp, "test")))
            times["assign"].append(timed(lambda: assignments(model, exp.test.images, exp.resolved.data.eval_batch_size)))
            if exp.val is not None:
                times["validation"].append(timed(lambda: trainer._validation(epoch)))
            model.train()
    step_s = statistics.median(times["step"])
    epoch_s = step_s * steps_per_epoch
    med = {k: statistics.median(v) for k, v in times.items() if v}
    shares = {k: v / epoch_s for k, v in med.items() if k != "step"}
    record = {
        "name": name, "train_examples": len(exp.train), "test_examples": len(exp.test),
        "val_examples": len(exp.val) if exp.val is not None else 0, "batch": batch,
        "eval_batch": exp.resolved.data.eval_batch_size, "steps_per_epoch": steps_per_epoch, "epoch": epoch,
        "training_epochs": exp.trainer.epochs,
        "step": stats(times["step"]), "epoch_s_estimate": epoch_s,
        "seconds_median": {k: v for k, v in med.items() if k != "step"},
        "seconds_all": {k: v for k, v in times.items() if v and k != "step"},
        "share_of_epoch": shares,
        "target": TARGET,
        "target_met": {"gmm_init": shares["gmm_init"] < TARGET, "gmm_init_subsample": shares["gmm_init_subsample"] < TARGET,
                       "evaluate": shares["evaluate"] < TARGET},
        "subsample": SUBSAMPLE,
        "gmm_init_share_of_run": med["gmm_init"] / (epoch_s * exp.trainer.epochs),
    }
    print(f"{name}: epoch {epoch_s:.1f} s, gmm_init {shares['gmm_init']:.1%} "
          f"(on {SUBSAMPLE} examples {shares['gmm_init_subsample']:.1%}), evaluate {shares['evaluate']:.1%}, "
          f"checkpoint {shares['checkpoint_write']:.1%} (waited for: {shares['checkpoint_wait']:.1%})", file=sys.stderr)
    return record


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--steps", type=int, default=10, help="timed training steps per round")
    p.add_argument("--threads", type=int, default=1,
                   help="torch threads (1: on a shared 2-core machine 2 threads busy-wait, see README)")
    p.add_argument("--smoke", action="store_true", help="small random data and mnist5k, one round (CI)")
    p.add_argument("--json", type=Path)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    np.random.seed(0)
    started = time.perf_counter()
    machine_start = machine_info()
    if args.smoke:
        rounds, steps = 1, 2
        models = [("paper_mnist_random", lambda: paper_random(1024, 256, 512)),
                  ("configs/mnist5k_mfcvae.yaml", lambda: (lambda e: (e, main_phase_epoch(e)))(
                      build(CPU_CONFIGS[1], ["data.batch_size=512", "model.gmm_chunk_size=512"])))]
    else:
        rounds, steps = args.rounds, args.steps
        models = [("paper_mnist_random", lambda: paper_random(60_000, 10_000, 512))]
        models += [(relpath(c), lambda c=c: (lambda e: (e, main_phase_epoch(e)))(build(c, []))) for c in CPU_CONFIGS]
    records = []
    for name, make in models:
        exp, epoch = make()
        records.append(measure(name, exp, epoch, rounds, steps, args.threads))
    result = {"benchmark": "epoch_shares", "smoke": args.smoke, "threads": args.threads, "rounds": rounds,
              "steps_per_round": steps, "models": records, "seconds_total": time.perf_counter() - started,
              "machine_start": machine_start, "machine": machine_info()}
    write_json(args.json, result)


if __name__ == "__main__":
    main()
