"""Training throughput of every CPU-sized config: examples/s of a full training step.

For each gradient config (the four CPU MFCVAE configs and the gradient baselines of
configs/baselines/{shapes,fashion_mnist,mnist5k,colored_mnist}/) the model is built with
``mfcf.load_config`` + ``mfcf.build``, the epoch-start hooks run as the trainer would run them
(``on_epoch_start(0)`` -- GMM / data initialisation -- and ``on_epoch_start(E)``: k-means / GMM
initialisation of the autoencoder baselines), and then, on the first training batch,
``model.training_loss(x, epoch=E, step=0)`` + backward + the trainer's Adam
(``make_optimizer``) is timed. E is a main-phase epoch: the last one (every MFCVAE facet
active, every pre-training over; for ae_kmeans / dec / idec / vade the pre-training step is
timed too, interleaved). For MFCVAE configs (J = 2 and J = 1) a *bare*
step (encoder, one rsample per facet, decoder, the likelihood's reconstruction term, backward,
the same optimiser factory; as in step_overhead.py) is timed interleaved with the full step
and the ratio full / bare reported; with ``--compare-compile MODE`` also, for the J = 2
configs, the full step of a second copy of the model trained with ``trainer.compile: MODE``
(compiled in the warm-up rounds), so each config shows whether compiling pays on this CPU.
kmeans and gmm_pca have no step: their ``fit`` on the training split is timed instead.
Finally, the peak resident memory of a short real ``mfcf train CONFIG --quiet --no-eval`` (one
epoch per progressive step) per MFCVAE config.

    python benchmarks/speed/throughput.py --json benchmarks/results/throughput.json   # ~6 min, 2-core CPU
    python benchmarks/speed/throughput.py --smoke --json /tmp/throughput.json          # seconds
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
from _common import (REPO, bare_step, build, check_all_facets_active, full_step, interleaved,  # noqa: E402
                     main_phase_epoch, ratio_stats, relpath, schedule_epochs, stats, write_json)

import mfcf  # noqa: E402
from mfcf.engine.machine import machine_info  # noqa: E402

DATASETS = ("shapes", "fashion_mnist", "mnist5k", "colored_mnist")
MFCVAE_CONFIGS = [REPO / "configs" / f"{d}_mfcvae.yaml" for d in DATASETS]
GRADIENT_BASELINES = ("ae_kmeans", "dec", "idec", "vade", "mfcvae_j1")
FIT_BASELINES = ("kmeans", "gmm_pca")

#: --smoke: the procedural shapes configs on a few hundred rendered scenes, tiny batches.
SMOKE_DATA = ["data.sampling=random", "data.n_train=160", "data.n_test=64", "data.batch_size=32"]


def with_threads(fn, threads: int, restore: int):
    def run() -> None:
        torch.set_num_threads(threads)
        try:
            fn()
        finally:
            torch.set_num_threads(restore)
    return run


def built_for_step(path: Path, overrides: list[str]):
    """The experiment, its main-phase epoch and the seconds its epoch-start hooks took, run as
    the trainer runs them before that epoch."""
    exp = build(path, overrides)
    exp.model.train()
    epoch = main_phase_epoch(exp)
    start = time.perf_counter()
    exp.model.on_epoch_start(0, exp.train)  # as the trainer: GMM / data-dependent init of MFCVAE
    if epoch > 0:
        exp.model.on_epoch_start(epoch, exp.train)  # k-means / GMM init of the autoencoder baselines
    return exp, epoch, time.perf_counter() - start


def gradient_config(path: Path, overrides: list[str], rounds: int, warmup: int, compare_threads: int = 0,
                    compare_compile: str | None = None) -> dict:
    exp, epoch, hooks_s = built_for_step(path, overrides)
    model = exp.model
    lr = exp.trainer.lr
    batch = exp.resolved.data.batch_size
    x = exp.train.images[:batch]
    is_mfcvae = exp.resolved.config["model"]["name"] == "mfcvae"
    fns = {"full": full_step(model, x, epoch, 0, lr)}
    if is_mfcvae:
        alphas = check_all_facets_active(model, epoch)
        fns["bare"] = bare_step(model, x, lr)
        if compare_threads and compare_threads != torch.get_num_threads():
            fns["full_other_threads"] = with_threads(fns["full"], compare_threads, torch.get_num_threads())
        if compare_compile:
            twin = built_for_step(path, overrides)[0].model  # its own weights and Adam: compiling changes the model
            fns["full_compiled"] = full_step(twin, x, epoch, 0, lr, compile=compare_compile)
    else:
        fns["pretrain"] = full_step(model, x, 0, 0, lr)
    times = interleaved(fns, rounds, warmup)
    record = {
        "config": relpath(path), "model": exp.resolved.config["model"]["name"], "facets": len(exp.resolved.facets),
        "batch": len(x), "train_examples": len(exp.train), "input_shape": list(x.shape[1:]),
        "parameters": sum(p.numel() for p in model.parameters() if p.requires_grad),
        "epoch": epoch, "epoch_start_hooks_s": hooks_s,
        "full_step": stats(times["full"]),
        "examples_per_s": len(x) / (stats(times["full"])["ms_median"] / 1e3),
    }
    if is_mfcvae:
        record["alpha_dec"] = alphas
        record["bare_step"] = stats(times["bare"])
        record["full_over_bare"] = ratio_stats(times["full"], times["bare"])
        if "full_other_threads" in times:
            record["full_step_other_threads"] = {"threads": compare_threads, **stats(times["full_other_threads"]),
                                                 **ratio_stats(times["full_other_threads"], times["full"])}
        if "full_compiled" in times:
            record["full_step_compiled"] = {"compile": compare_compile, **stats(times["full_compiled"]),
                                            "over_eager": ratio_stats(times["full_compiled"], times["full"]),
                                            "over_bare": ratio_stats(times["full_compiled"], times["bare"])}
    else:
        record["pretrain_step"] = stats(times["pretrain"])
        record["pretrain_examples_per_s"] = len(x) / (stats(times["pretrain"])["ms_median"] / 1e3)
        if record["model"] == "ae_kmeans":
            record["note"] = ("after pre-training ae_kmeans has nothing left to train (its loss is a constant "
                              "leaf): the main-phase step is an empty step; its real work is the pre-training step")
    print(f"{record['config']}: {record['examples_per_s']:.0f} ex/s", file=sys.stderr)
    return record


def fit_config(path: Path, overrides: list[str]) -> dict:
    exp = build(path, overrides)
    start = time.perf_counter()
    exp.model.fit(exp.train, seed=exp.trainer.seed)
    seconds = time.perf_counter() - start
    print(f"{relpath(path)}: fit {seconds:.1f} s", file=sys.stderr)
    return {"config": relpath(path), "model": exp.resolved.config["model"]["name"], "train_examples": len(exp.train),
            "input_shape": list(exp.train.images.shape[1:]), "fit_s": seconds,
            "examples_per_s": len(exp.train) / seconds}


def mfcf_command() -> list[str]:
    script = Path(sys.executable).parent / "mfcf"
    if script.is_file():
        return [str(script)]
    found = shutil.which("mfcf")
    return [found] if found else [sys.executable, "-c", "import sys; from mfcf.cli import main; sys.exit(main())"]


#: Runs argv[1:] as a child and prints its peak resident set (this wrapper is a fresh process, so
#: RUSAGE_CHILDREN covers exactly that one run).
_RSS_WRAPPER = ("import json, resource, subprocess, sys, time; t = time.perf_counter(); "
                "r = subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True); "
                "print(json.dumps({'rc': r.returncode, 'wall_s': time.perf_counter() - t, 'stderr': r.stderr[-2000:], "
                "'maxrss_kb': resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss}))")


def peak_memory(path: Path, overrides: list[str], threads: int) -> dict:
    cfg = mfcf.load_config(path, overrides)
    steps = schedule_epochs(cfg)
    # one epoch per progressive step, the GMM initialisation at the start (it must fall inside the run)
    short = ([f"trainer.epochs={len(steps)}", f"schedule.epochs_per_step={[1] * len(steps)}"] if steps
             else ["trainer.epochs=1"]) + ["model.gmm_init_epoch=0"]
    with tempfile.TemporaryDirectory() as runs:
        args = [*overrides, *short, f"trainer.runs_dir={runs}", f"trainer.threads={threads}", "trainer.device=cpu"]
        command = [*mfcf_command(), "train", str(path), "--quiet", "--no-eval", *args]
        out = subprocess.run([sys.executable, "-c", _RSS_WRAPPER, *command], capture_output=True, text=True, check=True)
    result = json.loads(out.stdout)
    if result["rc"] != 0:
        raise RuntimeError(f"mfcf train failed ({result['rc']}): {result['stderr']}")
    shown = ["mfcf", "train", relpath(path), "--quiet", "--no-eval",
             *[a for a in args if not a.startswith("trainer.runs_dir=")]]
    print(f"{relpath(path)}: peak RSS {result['maxrss_kb'] / 2**20:.2f} GiB", file=sys.stderr)
    return {"config": relpath(path), "command": " ".join(shown), "epochs": len(steps) if steps else 1,
            "peak_rss_kb": result["maxrss_kb"], "peak_rss_gib": result["maxrss_kb"] / 2**20, "wall_s": result["wall_s"]}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rounds", type=int, default=20, help="timed steps per phase (interleaved)")
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--threads", type=int, default=1,
                   help="torch threads (1: on a shared 2-core machine 2 threads busy-wait, see README)")
    p.add_argument("--compare-threads", type=int, default=2,
                   help="also time the full step of the J=2 MFCVAE configs with this many threads, "
                        "interleaved (0: off)")
    p.add_argument("--compare-compile", metavar="MODE",
                   help="also time the full step of the J=2 MFCVAE configs with trainer.compile: MODE, interleaved")
    p.add_argument("--no-memory", action="store_true", help="skip the peak-memory subprocesses")
    p.add_argument("--smoke", action="store_true", help="tiny data and two rounds on the shapes configs (CI)")
    p.add_argument("--json", type=Path)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    started = time.perf_counter()

    datasets = ("shapes",) if args.smoke else DATASETS
    extra = SMOKE_DATA if args.smoke else []
    rounds, warmup = (2, 1) if args.smoke else (args.rounds, args.warmup)
    mfcvae = [REPO / "configs" / f"{d}_mfcvae.yaml" for d in datasets]
    baselines = {d: {m: REPO / "configs" / "baselines" / d / f"{m}.yaml"
                     for m in (("dec", "mfcvae_j1") if args.smoke else GRADIENT_BASELINES)} for d in datasets}
    fits = {d: {m: REPO / "configs" / "baselines" / d / f"{m}.yaml"
                for m in (("kmeans",) if args.smoke else FIT_BASELINES)} for d in datasets}
    smoke_mfcvae = ["data.n_train=160", "data.n_test=64", "data.batch_size=32"] if args.smoke else []

    machine_before = machine_info()
    compare = 0 if args.smoke else args.compare_threads
    steps = [gradient_config(path, smoke_mfcvae, rounds, warmup, compare, args.compare_compile) for path in mfcvae]
    for d in datasets:
        steps += [gradient_config(path, extra, rounds, warmup) for path in baselines[d].values()]
    fitted = [fit_config(path, extra) for d in datasets for path in fits[d].values()]
    memory = []
    if not args.no_memory:
        memory_configs = mfcvae if args.smoke else mfcvae + [baselines[d]["mfcvae_j1"] for d in datasets]
        memory = [peak_memory(path, smoke_mfcvae if args.smoke else [], args.threads) for path in memory_configs]
    result = {
        "benchmark": "throughput", "smoke": args.smoke, "threads": args.threads, "rounds": rounds, "warmup": warmup,
        "compare_compile": args.compare_compile,
        "note": ("examples_per_s = batch / median full-step time on the first training batch; full step = "
                 "training_loss at a main-phase epoch + backward + the trainer's fused Adam (+ the trainer's "
                 "on-device sums); every phase of a config is timed interleaved in one process"),
        "steps": steps, "fits": fitted, "memory": memory,
        "seconds_total": time.perf_counter() - started,
        "machine_start": machine_before, "machine": machine_info(),
    }
    write_json(args.json, result)


if __name__ == "__main__":
    main()
