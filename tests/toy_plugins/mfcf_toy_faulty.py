"""A test-only plugin module for fault-tolerance tests (loaded through `plugins:`, not installed).

`toy_faulty` is `toy_softkmeans` (same numbers, same RNG use) plus options that crash an epoch
once, record which process ran which epoch, and slow epochs down.
"""

from __future__ import annotations

import dataclasses
import os
import time
from pathlib import Path

from mfcf_toy import ToyModelConfig, ToySoftKMeans

import mfcf


@dataclasses.dataclass
class FaultyConfig(ToyModelConfig):
    fail_at_epoch: int = -1  # raise at the start of this epoch ...
    fail_marker: str = ""  # ... only while this file does not exist (it is written before raising)
    sleep_per_epoch: float = 0.0  # seconds to sleep at the start of every epoch


class ToyFaultySoftKMeans(ToySoftKMeans):
    """Fails once on purpose. After the failure every epoch start appends ``<pid> <epoch>`` to
    the marker file, so a test can see where the retry started and in which process."""

    name = "toy_faulty"
    Config = FaultyConfig

    def on_epoch_start(self, epoch, train):
        cfg = self.config
        if cfg.sleep_per_epoch:
            time.sleep(cfg.sleep_per_epoch)
        if cfg.fail_at_epoch < 0 or not cfg.fail_marker:
            return
        marker = Path(cfg.fail_marker)
        if marker.exists():
            with open(marker, "a") as fh:
                fh.write(f"{os.getpid()} {epoch}\n")
        elif epoch == cfg.fail_at_epoch:
            marker.write_text(f"failed {os.getpid()} {epoch}\n")
            raise RuntimeError(f"deliberate failure at the start of epoch {epoch} (first attempt)")


@mfcf.hookimpl
def mfcf_register_models():
    return [ToyFaultySoftKMeans]
