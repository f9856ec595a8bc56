"""Background checkpoint writing: the saved state is a snapshot taken at ``save``, writes are
atomic and in order, errors surface, and the trainer's callbacks see each epoch's checkpoint."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest
import torch

import mfcf
from mfcf.engine import checkpoint as ckpt_module
from mfcf.engine.checkpoint import CheckpointWriter, cpu_copy, load_checkpoint


def _model_and_optimizer():
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.BatchNorm1d(3))
    optimizer = torch.optim.Adam(model.parameters(), lr=0.1)
    model(torch.randn(8, 4)).square().mean().backward()
    optimizer.step()
    return model, optimizer


def test_the_written_state_is_the_state_at_save_time(tmp_path, monkeypatch):
    model, optimizer = _model_and_optimizer()
    expected = {k: v.clone() for k, v in model.state_dict().items()}
    expected_moment = optimizer.state[model[0].weight]["exp_avg"].clone()
    release = threading.Event()
    real_save = ckpt_module.save_checkpoint

    def held_save(path, state):  # the write starts only after training has moved on
        release.wait(timeout=30)
        real_save(path, state)

    monkeypatch.setattr(ckpt_module, "save_checkpoint", held_save)
    with CheckpointWriter() as writer:
        writer.save(tmp_path / "last.pt", {"model": model.state_dict(), "optimizer": optimizer.state_dict()})
        model(torch.randn(8, 4)).square().mean().backward()  # the next step changes everything in place
        optimizer.step()
        assert not torch.equal(model[0].weight, expected["0.weight"])
        release.set()
    state = load_checkpoint(tmp_path / "last.pt")
    for key, value in expected.items():
        assert torch.equal(state["model"][key], value), key
    assert torch.equal(state["optimizer"]["state"][0]["exp_avg"], expected_moment)
    assert [p.name for p in tmp_path.iterdir()] == ["last.pt"]  # no temp file left behind


def test_cpu_copy_keeps_a_state_dicts_metadata_and_copies_containers():
    model, optimizer = _model_and_optimizer()
    state = model.state_dict()
    copied = cpu_copy(state)
    assert type(copied) is type(state) and copied._metadata == state._metadata
    assert all(copied[k] is not state[k] and torch.equal(copied[k], state[k]) for k in state)
    groups = optimizer.state_dict()
    copied = cpu_copy(groups)
    groups["param_groups"][0]["lr"] = 5.0
    assert copied["param_groups"][0]["lr"] == 0.1
    # the copy loads like the original
    other = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.BatchNorm1d(3))
    other.load_state_dict(cpu_copy(model.state_dict()))


def test_writes_happen_in_order_and_the_last_one_wins(tmp_path):
    with CheckpointWriter() as writer:
        for epoch in range(5):
            writer.save(tmp_path / "last.pt", {"epoch": epoch, "w": torch.full((1000,), float(epoch))})
    state = load_checkpoint(tmp_path / "last.pt")
    assert state["epoch"] == 4 and torch.equal(state["w"], torch.full((1000,), 4.0))


def test_a_failed_write_surfaces_and_keeps_the_old_file(tmp_path, monkeypatch):
    path = tmp_path / "last.pt"
    ckpt_module.save_checkpoint(path, {"epoch": 1})

    def disk_full(obj, fh, *a, **k):
        fh.write(b"partial garbage")
        raise OSError("disk full")

    monkeypatch.setattr(ckpt_module.torch, "save", disk_full)
    writer = CheckpointWriter()
    writer.save(path, {"epoch": 2})  # returns at once; the error comes with the next wait
    with pytest.raises(OSError, match="disk full"):
        writer.wait()
    with pytest.raises(OSError, match="disk full"):
        with writer:
            writer.save(path, {"epoch": 3})
    # another exception leaving the block wins over the write's error
    with pytest.raises(KeyError):
        with CheckpointWriter() as writer:
            writer.save(path, {"epoch": 4})
            raise KeyError("training failed")
    monkeypatch.undo()
    assert load_checkpoint(path)["epoch"] == 1
    assert [p.name for p in tmp_path.iterdir()] == ["last.pt"]


def test_epoch_callbacks_see_that_epochs_checkpoint_on_disk(toy_config):
    seen = []

    def on_epoch_end(row, run):
        seen.append((row["epoch"], load_checkpoint(run.checkpoint)["epoch"]))

    mfcf.train(toy_config, quiet=True, on_epoch_end=on_epoch_end)
    assert seen == [(0, 1), (1, 2), (2, 3)]


def test_a_failed_background_write_fails_the_run_and_keeps_the_last_good_checkpoint(toy_config, monkeypatch):
    real_save = torch.save
    calls = []

    def fails_from_the_second(obj, fh, *a, **k):
        calls.append(obj.get("epoch"))
        if len(calls) >= 2:
            raise OSError("disk full")
        real_save(obj, fh, *a, **k)

    monkeypatch.setattr(ckpt_module.torch, "save", fails_from_the_second)
    with pytest.raises(OSError, match="disk full"):
        mfcf.train(toy_config, quiet=True)
    run = next(Path(toy_config["trainer"]["runs_dir"]).iterdir())
    assert json.loads((run / "run.json").read_text())["status"] == "failed"
    monkeypatch.undo()
    assert load_checkpoint(run / "checkpoints" / "last.pt")["epoch"] == 1
    assert [p.name for p in (run / "checkpoints").iterdir()] == ["last.pt"]
    assert not (run / "model.pt").exists()
