"""Every shipped config resolves (names, sections, facet counts, epochs); those whose data this
machine has also build; the README's main config trains end to end on a small slice."""

from __future__ import annotations

from pathlib import Path

import pytest

import mfcf
from mfcf.engine.build import resolve
from mfcf.errors import DataError

ROOT = Path(__file__).resolve().parents[2] / "configs"
CONFIGS = sorted(ROOT.rglob("*.yaml"))
EXPERIMENTS = [p for p in CONFIGS if "sweeps" not in p.parts]


@pytest.mark.parametrize("path", EXPERIMENTS, ids=lambda p: str(p.relative_to(p.parents[1])))
def test_config_resolves(path):
    resolved = resolve(mfcf.load_config(path))
    assert resolved.facets, "every experiment has at least one facet"


@pytest.mark.parametrize("path", [p for p in EXPERIMENTS if "paper" in p.parts], ids=lambda p: p.name)
def test_paper_configs_need_user_files(path):
    """The paper protocols read files this machine cannot have: they fail before training,
    saying where the files go."""
    with pytest.raises(DataError, match="root"):
        mfcf.build(mfcf.load_config(path))


@pytest.mark.slow
def test_main_config_trains_and_finds_facets(tmp_path):
    overrides = ["data.n_train=400", "data.n_test=200", "data.cache=false", "trainer.epochs=2",
                 "schedule.epochs_per_step=[1, 1]", "schedule.fade_in_batches=2", "model.gmm_init_epoch=[1, 0]",
                 "trainer.threads=2",
                 f"trainer.runs_dir={tmp_path}"]
    run = mfcf.train(mfcf.load_config(ROOT / "shapes_mfcvae.yaml", overrides), quiet=True)
    result = mfcf.evaluate(run)
    assert [f["factor"] for f in result["matching"]] and len(result["facets"]) == 2
    assert set(result["facets"][0]["factors"]) == {"shape", "floor_hue"}
