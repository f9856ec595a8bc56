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


@pytest.mark.parametrize("config,colour", [("3dshapes_1.yaml", "floor_hue"), ("3dshapes_2.yaml", "wall_hue")])
def test_paper_3dshapes_configs_run_on_the_procedural_set_with_one_override(config, colour, tmp_path):
    """``data.name=shapes_procedural`` keeps the paper's factor selection, grid and 80/20 split:
    3,840 / 960 scenes with the paper's label factors, built and checked on this machine."""
    cfg = mfcf.load_config(ROOT / "paper" / config, ["data.name=shapes_procedural", f"data.cache_dir={tmp_path}"])
    experiment = mfcf.build(cfg)
    assert (len(experiment.train), len(experiment.test)) == (3840, 960)
    assert list(experiment.train.factors) == ["shape", colour]
    sizes = {name: len(y.unique()) for name, y in experiment.train.factors.items()}
    assert sizes == {"shape": 4, colour: 10}


def test_shapes3d_has_no_random_sampling():
    from mfcf.errors import ConfigError
    from mfcf_datasets.shapes3d import Shapes3DConfig

    with pytest.raises(ConfigError) as info:
        Shapes3DConfig(sampling="random")
    assert info.value.key == "sampling" and "every factor combination once" in str(info.value)
