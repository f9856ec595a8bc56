"""How the full MFCVAE training step scales: examples/s against batch size, facets and image size.

Full step = ``model.training_loss`` + backward + the trainer's Adam (``make_optimizer``) + the
trainer's on-device sums, on fixed random input, as in step_overhead.py. On each axis every
point has its own model and optimiser, and the points are timed round-robin (interleaved) in one
process; medians are reported.

* batch  -- the paper's MNIST fc ladder (configs/paper/mnist.yaml, J = 2, built on 28x28 digits
  as step_overhead.py does) at batch 128, 256, 512, 1024, 2048; epoch 300 (last facet fading in);
* facets -- the same fc ladder with J = 1..4 facets (latent 5, K = 25 each) at batch 512:
  encoder backbone [500] * (J-1) + [2000], decoder rungs [500] * (J-1) + [2000], decoder
  backbone [500] * J (J = 2 is exactly the paper's network); progressive schedule of 201 epochs
  per facet, timed 99 epochs into the last step (as epoch 300 for J = 2);
* image  -- 1x28x28 on the paper's fc ladder, 3x32x32 and 3x64x64 on the paper's SVHN conv
  ladder (configs/paper/svhn.yaml, on procedural shapes of that size) at channel width 0.5,
  all at batch 64; epoch 200 (99 epochs into SVHN's last step).

    python benchmarks/speed/scaling.py          # ~30 s on a 2-core CPU; writes results/scaling.json + figures
    python benchmarks/speed/scaling.py --smoke --json /tmp/scaling.json --figures /tmp/figs
"""

from __future__ import annotations

import argparse
import copy
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
from _common import (PAPER_MNIST, PAPER_MNIST_OVERRIDES, REPO, check_all_facets_active, full_step, relpath,  # noqa: E402
                     interleaved, stats, write_json)

import mfcf  # noqa: E402
from mfcf.engine.machine import machine_info  # noqa: E402

SVHN = REPO / "configs" / "paper" / "svhn.yaml"
RESULTS = REPO / "benchmarks" / "results"


def n_params(model) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def facets_config(J: int, batch: int, widths: tuple[int, int] = (500, 2000)) -> dict:
    """The paper's MNIST fc ladder with J facets (J = 2 reproduces configs/paper/mnist.yaml)."""
    narrow, wide = widths
    cfg = mfcf.load_config(PAPER_MNIST, [*PAPER_MNIST_OVERRIDES, f"data.batch_size={batch}"])
    cfg = copy.deepcopy(cfg)
    cfg["facets"] = [copy.deepcopy(cfg["facets"][0]) for _ in range(J)]
    cfg["encoder"].update(backbone_dims=[narrow] * (J - 1) + [wide], backbone_layers=[1] * J)
    cfg["decoder"].update(backbone_dims=[narrow] * J, backbone_layers=[1] * J,
                          rung_dims=[narrow] * (J - 1) + [wide], rung_layers=[1] * J)
    cfg["schedule"]["epochs_per_step"] = [201] * J
    cfg["trainer"]["epochs"] = 201 * J
    return cfg


def run_axis(points: list[dict], rounds: int, warmup: int) -> list[dict]:
    """``points``: dicts with ``label``, ``x`` (value on the axis), ``cfg`` (mapping), ``batch``,
    ``input_shape``, ``epoch``. Builds every model, then times them interleaved."""
    fns, built = {}, {}
    for point in points:
        exp = mfcf.build(point["cfg"])
        model = exp.model
        model.train()
        alphas = check_all_facets_active(model, point["epoch"])
        x = torch.rand(point["batch"], *point["input_shape"], generator=torch.Generator().manual_seed(0))
        fns[point["label"]] = full_step(model, x, point["epoch"], 0)
        built[point["label"]] = {"parameters": n_params(model), "alpha_dec": alphas}
    times = interleaved(fns, rounds, warmup)
    out = []
    for point in points:
        s = stats(times[point["label"]])
        out.append({k: v for k, v in point.items() if k != "cfg"} | built[point["label"]] |
                   {"step": s, "examples_per_s": point["batch"] / (s["ms_median"] / 1e3),
                    "examples_per_s_p25": point["batch"] / (s["ms_p75"] / 1e3),
                    "examples_per_s_p75": point["batch"] / (s["ms_p25"] / 1e3)})
        print(f"{point['label']}: {out[-1]['examples_per_s']:.0f} ex/s ({s['ms_median']:.1f} ms)", file=sys.stderr)
    return out


def batch_axis(batches: list[int]) -> list[dict]:
    cfg = mfcf.load_config(PAPER_MNIST, PAPER_MNIST_OVERRIDES)
    return [{"label": f"batch {b}", "x": b, "cfg": cfg, "batch": b, "input_shape": [1, 28, 28], "epoch": 300}
            for b in batches]


def facets_axis(facets: list[int], batch: int, widths: tuple[int, int]) -> list[dict]:
    return [{"label": f"J={J}", "x": J, "cfg": facets_config(J, batch, widths), "batch": batch,
             "input_shape": [1, 28, 28], "epoch": 201 * (J - 1) + 99} for J in facets]


def image_axis(batch: int, width: float, sizes: list[int], n_images: int) -> list[dict]:
    fc = mfcf.load_config(PAPER_MNIST, PAPER_MNIST_OVERRIDES)
    points = [{"label": "1x28x28 fc", "x": 28 * 28, "cfg": fc, "batch": batch, "input_shape": [1, 28, 28],
               "epoch": 300, "ladder": "ladder_fc (paper MNIST)"}]
    for size in sizes:
        cfg = mfcf.load_config(SVHN, ["data.name=shapes_procedural", f"data.image_size={size}",
                                      f"data.n_train={n_images}", f"data.n_test={n_images}", f"data.batch_size={batch}",
                                      "trainer.device=cpu", f"encoder.width={width}", f"decoder.width={width}"])
        points.append({"label": f"3x{size}x{size} conv", "x": 3 * size * size, "cfg": cfg, "batch": batch,
                       "input_shape": [3, size, size], "epoch": 200,
                       "ladder": f"ladder_conv (paper SVHN) width {width}"})
    return points


def plot(axis: str, rows: list[dict], path: Path, machine: dict, threads: int) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    titles = {"batch": "batch size (paper MNIST fc ladder, J = 2)",
              "facets": "number of facets J (MNIST fc ladder, batch %d)" % rows[0]["batch"],
              "image": "input (batch %d; conv: paper SVHN ladder, width %s)" % (
                  rows[0]["batch"], rows[-1].get("ladder", "").rsplit(" ", 1)[-1])}
    xs = list(range(len(rows))) if axis == "image" else [r["x"] for r in rows]
    labels = [r["label"].replace(" ", "\n", 1) if axis == "image" else str(r["x"]) for r in rows]
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4.2))
    eps = [r["examples_per_s"] for r in rows]
    left.errorbar(xs, eps, yerr=[[max(0, e - r["examples_per_s_p25"]) for e, r in zip(eps, rows)],
                                 [max(0, r["examples_per_s_p75"] - e) for e, r in zip(eps, rows)]],
                  marker="o", capsize=3)
    left.set_ylabel("training examples / s (median)")
    ms = [r["step"]["ms_median"] for r in rows]
    right.errorbar(xs, ms, yerr=[[max(0, m - r["step"]["ms_p25"]) for m, r in zip(ms, rows)],
                                 [max(0, r["step"]["ms_p75"] - m) for m, r in zip(ms, rows)]],
                   marker="o", color="tab:orange", capsize=3)
    right.set_ylabel("ms per full training step (median)")
    for ax in (left, right):
        if axis == "batch":
            ax.set_xscale("log", base=2)
        ax.set_xticks(xs)
        ax.set_xticklabels(labels)
        ax.set_xlabel(titles[axis])
        if not (axis == "batch" and ax is right):
            ax.set_ylim(bottom=0, top=1.15 * max(r["examples_per_s_p75"] for r in rows) if ax is left else None)
        ax.grid(alpha=0.3)
        for x, y in zip(xs, [r["examples_per_s"] for r in rows] if ax is left else ms):
            ax.annotate(f"{y:.0f}", (x, y), textcoords="offset points", xytext=(0, 7), ha="center", fontsize=8)
    if axis == "batch":
        from matplotlib.ticker import NullFormatter, ScalarFormatter
        right.set_yscale("log")
        right.yaxis.set_major_formatter(ScalarFormatter())
        right.yaxis.set_minor_formatter(NullFormatter())
        low, high = min(r["step"]["ms_p25"] for r in rows), max(r["step"]["ms_p75"] for r in rows)
        ticks = [t for m in (1, 10, 100, 1000, 10000) for t in (m, 2 * m, 5 * m) if low / 2 <= t <= high * 2]
        right.set_yticks(ticks)
        right.set_ylabel("ms per full training step (median, log scale)")
    for ax in (left, right):
        ax.margins(x=0.1)
    fig.suptitle(f"MFCVAE full training step, {machine['cpu'][:40]}, {threads} torch thread(s), "
                 f"load avg {machine.get('load_average_1m', '?')}; bars: quartiles", fontsize=9)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rounds", type=int, default=10)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--threads", type=int, default=1,
                   help="torch threads (1: on a shared 2-core machine 2 threads busy-wait, see README)")
    p.add_argument("--smoke", action="store_true", help="tiny batches, two rounds (CI)")
    p.add_argument("--json", type=Path, default=RESULTS / "scaling.json")
    p.add_argument("--figures", type=Path, default=RESULTS / "figures")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    started = time.perf_counter()
    if args.smoke:
        rounds, warmup = 2, 1
        axes = {"batch": batch_axis([4, 8]), "facets": facets_axis([1, 2, 3, 4], 4, (32, 64)),
                "image": image_axis(2, 0.125, [32], 8)}
    else:
        rounds, warmup = args.rounds, args.warmup
        axes = {"batch": batch_axis([128, 256, 512, 1024, 2048]), "facets": facets_axis([1, 2, 3, 4], 512, (500, 2000)),
                "image": image_axis(64, 0.5, [32, 64], 64)}
    machine_start = machine_info()
    results = {}
    figures = {}
    for name, points in axes.items():
        results[name] = run_axis(points, rounds, warmup)
        path = args.figures / f"scaling_{name}.png"
        plot(name, results[name], path, machine_info(), args.threads)
        figures[name] = relpath(path)
    result = {"benchmark": "scaling", "smoke": args.smoke, "threads": args.threads, "rounds": rounds,
              "warmup": warmup, "axes": results, "figures": figures, "seconds_total": time.perf_counter() - started,
              "machine_start": machine_start, "machine": machine_info()}
    write_json(args.json, result)


if __name__ == "__main__":
    main()
