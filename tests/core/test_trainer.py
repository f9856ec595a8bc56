"""The trainer: run directory contents, resume bit-identity after SIGKILL, atomic checkpoints,
the non-finite stop, the non-gradient route, errors before training."""

from __future__ import annotations

import csv
import errno
import json
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

import mfcf
from mfcf.engine import checkpoint as ckpt_module
from mfcf.engine.checkpoint import load_checkpoint
from mfcf.errors import ConfigError, DataError, RunDirError, TrainingError


def _metrics(run: Path) -> list[dict[str, str]]:
    with open(run / "metrics.csv", newline="") as fh:
        return list(csv.DictReader(fh))


def test_run_directory_holds_everything(toy_config):
    run = mfcf.train(toy_config, quiet=True)
    names = {p.name for p in run.iterdir()}
    assert {"config.yaml", "resolved.yaml", "plugins.json", "run.json", "metrics.csv", "tb", "checkpoints",
            "model.pt"} <= names
    assert yaml.safe_load((run / "config.yaml").read_text())["model"] == {"name": "toy_softkmeans"}
    assert yaml.safe_load((run / "resolved.yaml").read_text())["model"]["noise"] == 0.1
    assert json.loads((run / "run.json").read_text())["status"] == "completed"
    assert any(p.name.startswith("events.out.tfevents") for p in (run / "tb").iterdir())
    rows = _metrics(run)
    assert [r["epoch"] for r in rows] == ["0", "1", "2"]
    assert {"train/loss", "train/recon", "train/dist/0", "val/loss", "examples_per_s"} <= set(rows[0])
    assert float(rows[-1]["train/loss"]) < float(rows[0]["train/loss"])
    state = load_checkpoint(run / "checkpoints" / "last.pt")
    assert (state["epoch"], state["step"], state["global_step"]) == (3, 0, 18)


def test_epoch_means_are_batch_size_weighted(toy_config):
    """Logged epoch value = Σ value·B / N (the last batch is smaller)."""
    toy_config["data"].update(batch_size=50, val_fraction=0.0)  # 240 = 4 * 50 + 40
    toy_config["trainer"]["epochs"] = 1
    exp = mfcf.build(mfcf.load_config(base=toy_config))
    torch.manual_seed(0)
    from mfcf.engine.trainer import _EpochSums
    from mfcf.api import LossOutput

    sums = _EpochSums(["loss"], torch.device("cpu"))
    for i, b in enumerate([50, 50, 50, 50, 40]):
        sums.add(LossOutput(torch.tensor(float(i))), b, i)
    assert sums.means()["loss"] == pytest.approx((0 + 50 + 100 + 150 + 160) / 240)
    assert exp.train.images.shape[0] == 240


def _cli(*args: str, **kw) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "mfcf.cli", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, **kw)


@pytest.mark.slow
def test_resume_after_sigkill_is_bit_identical(toy_config, tmp_path):
    toy_config["data"].update(n_train=3000, batch_size=32)
    toy_config["trainer"].update(epochs=8, checkpoint_every_steps=7, threads=1)
    config = tmp_path / "toy.yaml"
    config.write_text(yaml.safe_dump(toy_config))

    reference = _cli("train", str(config), "--quiet", "--no-eval", "--run-dir", str(tmp_path / "ref"))
    assert reference.wait(timeout=300) == 0, reference.stderr.read()

    run = tmp_path / "killed"
    kills = 0
    args = ["train", str(config), "--quiet", "--no-eval", "--run-dir", str(run)]
    rng = random.Random(7)
    for _ in range(3):  # kill it at a random moment, up to three times, then let it finish
        proc = _cli(*args)
        deadline = time.time() + 120
        seen = load_checkpoint(run / "checkpoints" / "last.pt")["global_step"] \
            if (run / "checkpoints" / "last.pt").exists() else -1
        while time.time() < deadline and proc.poll() is None:  # wait for a new checkpoint
            last = run / "checkpoints" / "last.pt"
            if last.exists() and load_checkpoint(last)["global_step"] > seen:
                break
            time.sleep(0.05)
        time.sleep(rng.uniform(0.0, 0.4))
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            kills += 1
        proc.wait()
        args = ["train", "--resume", str(run), "--quiet", "--no-eval"]
    final = _cli(*args)
    assert final.wait(timeout=300) == 0, final.stderr.read()
    assert kills >= 1, "training finished before it could be killed; make the test run longer"

    ref_state = load_checkpoint(tmp_path / "ref" / "model.pt")["model"]
    got_state = load_checkpoint(run / "model.pt")["model"]
    assert ref_state.keys() == got_state.keys()
    for key in ref_state:
        assert torch.equal(ref_state[key], got_state[key]), f"{key} differs after resume"
    # the per-epoch log is identical too (running sums were checkpointed mid-epoch)
    ref_rows, got_rows = _metrics(tmp_path / "ref"), _metrics(run)
    assert [r["train/loss"] for r in ref_rows] == [r["train/loss"] for r in got_rows]
    assert [r["val/loss"] for r in ref_rows] == [r["val/loss"] for r in got_rows]
    times = [float(r["time/train_s"]) for r in got_rows]  # training time accumulates across resumes
    assert times == sorted(times) and times[0] > 0


def test_crash_while_writing_a_checkpoint_leaves_the_old_one_intact(toy_config, monkeypatch):
    run = mfcf.train(toy_config, quiet=True)
    last = run / "checkpoints" / "last.pt"
    before = last.read_bytes()

    def failing_fsync(fd):  # the temp file is written, then the disk fills up
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(ckpt_module.os, "fsync", failing_fsync)
    with pytest.raises(RunDirError, match="cannot write '.*last.pt' \\(No space left on device\\)"):
        ckpt_module.save_checkpoint(last, {"x": 1})
    assert last.read_bytes() == before
    assert load_checkpoint(last)["epoch"] == 3
    assert [p.name for p in last.parent.iterdir()] == ["last.pt"]  # no temp file left behind


def test_non_finite_loss_stops_and_keeps_the_last_good_checkpoint(toy_config):
    toy_config["model"].update(nan_at_epoch=1, nan_at_step=2)
    toy_config["trainer"]["log_every_steps"] = 100
    with pytest.raises(TrainingError) as err:
        mfcf.train(toy_config, quiet=True)
    text = str(err.value)
    assert "non-finite at epoch 1, step 2" in text
    run = next((Path(toy_config["trainer"]["runs_dir"])).iterdir())
    assert str(run / "checkpoints" / "last.pt") in text and "(epoch 1, step 0) is intact" in text
    state = load_checkpoint(run / "checkpoints" / "last.pt")
    assert state["epoch"] == 1 and all(torch.isfinite(v).all() for v in state["model"].values())
    assert json.loads((run / "run.json").read_text())["status"] == "failed"
    assert not (run / "model.pt").exists()


def test_model_with_its_own_fit(toy_config):
    toy_config["model"] = {"name": "toy_kmeans"}
    toy_config["facets"] = [{"latent_dim": 1, "n_clusters": 6}]
    run = mfcf.train(toy_config, quiet=True)
    result = mfcf.evaluate(run)
    scores = result["facets"][0]["factors"]
    # 6 clusters over the 3 x 2 joint factor grid: every cluster is pure
    assert scores["top"]["many_to_one_acc"] == 1.0 and scores["bottom"]["many_to_one_acc"] == 1.0
    assert (run / "eval-test.json").is_file()


def test_missing_data_fails_before_the_run_directory_exists(toy_config):
    toy_config["data"]["missing_file"] = "blobs.npz"
    with pytest.raises(DataError, match="blobs.npz"):
        mfcf.train(toy_config, quiet=True)
    assert not Path(toy_config["trainer"]["runs_dir"]).exists()


def test_cuda_device_without_cuda(toy_config):
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA; the error path is for machines without it")
    toy_config["trainer"]["device"] = "cuda"
    with pytest.raises(ConfigError, match="CUDA is not available") as err:
        mfcf.train(toy_config, quiet=True)
    assert err.value.key == "trainer.device"


def test_device_auto_and_threads(toy_config):
    toy_config["trainer"].update(threads=2, epochs=1)
    exp = mfcf.build(mfcf.load_config(base=toy_config))
    assert exp.device.type == ("cuda" if torch.cuda.is_available() else "cpu")
    assert torch.get_num_threads() == 2
    assert exp.train.images.device.type == exp.device.type


def test_resume_errors_and_completed_runs(toy_config, tmp_path, capsys):
    with pytest.raises(RunDirError, match="does not exist"):
        mfcf.resume(tmp_path / "nowhere")
    (tmp_path / "empty").mkdir()
    with pytest.raises(RunDirError, match="not an mfcf run directory"):
        mfcf.resume(tmp_path / "empty")
    run = mfcf.train(toy_config, quiet=True)
    before = (run / "model.pt").read_bytes()
    capsys.readouterr()
    assert mfcf.resume(run) == run
    assert "already complete" in capsys.readouterr().out
    assert (run / "model.pt").read_bytes() == before


def test_run_dir_must_be_new(toy_config, tmp_path):
    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "file").write_text("x")
    with pytest.raises(RunDirError, match="exists and is not empty"):
        mfcf.train(toy_config, run_dir=tmp_path / "taken", quiet=True)


def test_training_time_and_validation_scores_are_logged_per_epoch(toy_config):
    toy_config["trainer"].update(epochs=4, score_every_epochs=2)
    rows = _metrics(mfcf.train(toy_config, quiet=True))
    times = [float(r["time/train_s"]) for r in rows]
    assert all(t > 0 for t in times) and times == sorted(times) and len(set(times)) == 4
    acc = "val/facet0/top/hungarian_acc"
    assert [r[acc] != "" for r in rows] == [False, True, False, True]  # epochs 2 and 4 only
    assert all(0.0 <= float(r[acc]) <= 1.0 for r in rows if r[acc])
    # scoring does not touch the training RNG stream: the losses equal those of a run without it
    toy_config["trainer"].update(score_every_epochs=0, run_name="unscored")
    plain = _metrics(mfcf.train(toy_config, quiet=True))
    assert [r["train/loss"] for r in plain] == [r["train/loss"] for r in rows]
    assert not any(k.startswith("val/facet") for k in plain[0])



@pytest.mark.slow
def test_compiled_bf16_training_of_the_mfcvae(toy_config):
    """trainer.compile and trainer.precision reach the model: the MFCVAE's loss is compiled a
    few times, not once per step of a 12-step fade, and trains under bf16 autocast to finite
    metrics."""
    from torch._dynamo.utils import counters

    torch._dynamo.reset()
    before = counters["stats"]["unique_graphs"]
    toy_config.update({
        "model": {"name": "mfcvae", "gmm_seed": 0},
        "facets": [{"latent_dim": 2, "n_clusters": 3, "prior": {"name": "mog"}},
                   {"latent_dim": 1, "n_clusters": 2, "prior": {"name": "mog"}}],
        "encoder": {"name": "ladder_fc", "backbone_dims": [16, 8]},
        "decoder": {"name": "ladder_fc", "backbone_dims": [16, 16], "rung_dims": [16, 16]},
        "likelihood": {"name": "gaussian", "sigma": 0.3, "mean_activation": "sigmoid"},
        "elbo": {"name": "mfcvae_mc"},
        "schedule": {"name": "progressive", "epochs_per_step": [1, 2], "fade_in_batches": 12}})
    toy_config["data"]["batch_size"] = 30  # 192 training examples: 6 batches of 30 and one of 12
    toy_config["trainer"].update(compile="default", precision="bf16")
    run = mfcf.train(toy_config, quiet=True)
    rows = _metrics(run)
    assert len(rows) == 3 and all(np.isfinite(float(r["train/loss"])) for r in rows)
    assert json.loads((run / "run.json").read_text())["status"] == "completed"
    # the batch size, the smaller last batch, validation (no gradients): not one per step of the fade
    assert counters["stats"]["unique_graphs"] - before == 3
    torch._dynamo.reset()


def test_compile_without_a_compiler_fails_before_the_run_directory_exists(toy_config, monkeypatch):
    from mfcf.engine import build as build_module

    monkeypatch.setattr(build_module, "_has_cpp_compiler", lambda: False)
    toy_config["trainer"].update(compile="default", device="cpu")
    with pytest.raises(ConfigError, match="needs a C\\+\\+ compiler") as err:
        mfcf.train(toy_config, quiet=True)
    assert err.value.key == "trainer.compile" and "trainer.compile: eager" in str(err.value)
    assert not Path(toy_config["trainer"]["runs_dir"]).exists()
