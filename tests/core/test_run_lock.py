"""One writer per run directory, with real processes: a resume while the run trains, two resumes
at once and two fresh runs on one --run-dir are refused at once; a lock left by a SIGKILL is stale
and the next resume takes it."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from mfcf.engine.lock import LOCK_NAME, ensure_unlocked, run_lock
from mfcf.errors import RunDirError

pytestmark = pytest.mark.slow


@pytest.fixture
def long_config(toy_config, tmp_path) -> Path:
    """A toy run of ~0.3 s per epoch for 300 epochs: it trains until the test kills it."""
    toy_config["data"]["n_train"] = 3000
    toy_config["trainer"]["epochs"] = 300
    path = tmp_path / "long.yaml"
    path.write_text(yaml.safe_dump(toy_config))
    return path


def _start(*args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "mfcf.cli", *args, "--quiet"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def _wait_training(run: Path, proc: subprocess.Popen, epochs: int = 1) -> None:
    """Until ``proc`` holds ``run``'s lock and has finished ``epochs`` epochs."""
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.communicate()
        rows = (run / "metrics.csv").read_text().count("\n") - 1 if (run / "metrics.csv").is_file() else 0
        if (run / LOCK_NAME).is_file() and rows >= epochs:
            return
        time.sleep(0.2)
    raise AssertionError("the run did not start training within two minutes")


def _refused(proc: subprocess.Popen) -> str:
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 2, err
    assert err.startswith("RunDirError:") and "Traceback" not in err
    return err


def _kill(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGKILL)
    proc.communicate()


def test_resume_or_a_fresh_run_into_a_training_run_is_refused_at_once(long_config, tmp_path):
    run = tmp_path / "run"
    trainer = _start("train", str(long_config), "--no-eval", "--run-dir", str(run))
    try:
        _wait_training(run, trainer)
        err = _refused(_start("train", "--resume", str(run)))
        assert f"in use by process {trainer.pid}" in err and str(run) in err
        assert "not empty" in _refused(_start("train", str(long_config), "--run-dir", str(run)))
        rows = (run / "metrics.csv").read_text().count("\n")
        _wait_training(run, trainer, epochs=rows)  # the running run goes on undisturbed
    finally:
        _kill(trainer)


def test_a_lock_left_by_sigkill_is_stale_and_of_two_resumes_one_is_refused(long_config, tmp_path):
    run = tmp_path / "run"
    trainer = _start("train", str(long_config), "--no-eval", "--run-dir", str(run))
    _wait_training(run, trainer)
    _kill(trainer)
    assert (run / LOCK_NAME).is_file()  # left behind by the kill, held by nobody
    first, second = _start("train", "--resume", str(run)), _start("train", "--resume", str(run))
    try:
        loser = next(p for p in _poll_until_one_exits(first, second))
        winner = second if loser is first else first
        assert f"in use by process {winner.pid}" in _refused(loser)
        epochs_before = (run / "metrics.csv").read_text().count("\n")
        _wait_training(run, winner, epochs=epochs_before)  # the winner trains on from the checkpoint
        assert json.loads((run / "run.json").read_text())["status"] == "running"
    finally:
        _kill(first)
        _kill(second)


def _poll_until_one_exits(*procs: subprocess.Popen):
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        done = [p for p in procs if p.poll() is not None]
        if done:
            yield from done
            return
        time.sleep(0.1)
    raise AssertionError("neither resume exited within two minutes")


def test_of_two_fresh_runs_on_one_run_dir_one_is_refused(long_config, tmp_path):
    run = tmp_path / "run"
    first = _start("train", str(long_config), "--no-eval", "--run-dir", str(run))
    second = _start("train", str(long_config), "--no-eval", "--run-dir", str(run))
    try:
        loser = next(p for p in _poll_until_one_exits(first, second))
        winner = second if loser is first else first
        err = _refused(loser)
        assert f"in use by process {winner.pid}" in err or "exists and is not empty" in err, err
        _wait_training(run, winner, epochs=2)
    finally:
        _kill(first)
        _kill(second)


def test_the_lock_is_exclusive_and_released_on_exit(tmp_path):
    with run_lock(tmp_path):
        assert str(os.getpid()) in (tmp_path / LOCK_NAME).read_text()
        with pytest.raises(RunDirError, match="in use by process"):
            ensure_unlocked(tmp_path)
        with pytest.raises(RunDirError, match="in use by process"), run_lock(tmp_path):
            pass  # pragma: no cover
    assert not (tmp_path / LOCK_NAME).exists()
    ensure_unlocked(tmp_path)


def test_a_run_that_created_the_directory_but_lost_the_lock_leaves_the_winners_files(toy_config, tmp_path,
                                                                                     monkeypatch):
    """The race behind an old flake: run A creates --run-dir, run B finds it and takes the lock
    first; A is refused and must not delete the directory B is writing into."""
    import contextlib

    import mfcf
    from mfcf.engine import trainer

    run = tmp_path / "run"
    real = trainer._new_run_dir
    winner = contextlib.ExitStack()

    def lose_the_race(experiment, run_dir):
        created = real(experiment, run_dir)  # this run creates the directory ...
        winner.enter_context(run_lock(run))  # ... and another run locks it first and writes
        (run / "resolved.yaml").write_text("{}")  # its run.json is not written yet
        return created

    monkeypatch.setattr(trainer, "_new_run_dir", lose_the_race)
    with winner, pytest.raises(RunDirError, match="in use by process"):
        mfcf.train(toy_config, run_dir=run, quiet=True)
    assert (run / "resolved.yaml").read_text() == "{}"
