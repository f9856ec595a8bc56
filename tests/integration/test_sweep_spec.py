"""Sweep files, the trial plan, the checks made before Ray starts, and the summary over seeds
(fast: no Ray cluster here)."""

from __future__ import annotations

import math
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

sys.path.insert(0, str(Path(__file__).parent))
from sweep_support import cli_env, toy_experiment, write_sweep  # noqa: E402

from mfcf.engine.summary import RunRecord, summarise, varying_keys  # noqa: E402
from mfcf.errors import ConfigError  # noqa: E402
from mfcf.tune.spec import SweepError, load_sweep  # noqa: E402


@pytest.fixture
def sweep_file(tmp_path):
    def make(**fields):
        fields.setdefault("experiment", toy_experiment())
        fields.setdefault("storage", str(tmp_path / "sweeps"))
        return write_sweep(tmp_path / "sweep.yaml", **fields)
    return make


SHIPPED = sorted((Path(__file__).resolve().parents[2] / "configs" / "sweeps").glob("*.yaml"))


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.name)
def test_shipped_sweep_files_are_valid(path):
    sweep = load_sweep(path)  # every setting's experiment resolved
    assert sweep.trials() and not sweep.metric.startswith("test/")


def test_mfcf_and_its_cli_do_not_import_ray():
    code = ("import sys, mfcf, mfcf.cli, mfcf.engine.trainer, mfcf.engine.summary, mfcf.tune, mfcf.tune.spec, "
            "mfcf.tune.results; mfcf.cli.parser(); assert 'ray' not in sys.modules, 'ray was imported'")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert res.returncode == 0, res.stderr


def test_grid_times_random_draws_is_reproducible(sweep_file):
    path = sweep_file(seeds=[0, 1], num_samples=2, search_seed=7, search={
        "trainer.lr": [0.01, 0.003],
        "facets.0.n_clusters": {"choice": [3, 4, 5]},
        "trainer.grad_clip": {"uniform": [0.5, 2.0]},
        "model.noise": {"loguniform": [0.01, 1.0]},
    })
    sweep = load_sweep(path)
    assert len(sweep.settings) == 4 and len(sweep.trials()) == 8
    assert [s["trainer.lr"] for s in sweep.settings] == [0.01, 0.003, 0.01, 0.003]
    for s in sweep.settings:
        assert s["facets.0.n_clusters"] in (3, 4, 5)
        assert 0.5 <= s["trainer.grad_clip"] <= 2.0 and 0.01 <= s["model.noise"] <= 1.0
    # grid points of one draw share the draw; the draws differ
    assert sweep.settings[0]["trainer.grad_clip"] == sweep.settings[1]["trainer.grad_clip"]
    assert sweep.settings[0]["trainer.grad_clip"] != sweep.settings[2]["trainer.grad_clip"]
    assert load_sweep(path).settings == sweep.settings
    assert [t.name for t in sweep.trials()[:3]] == ["s000-seed0", "s000-seed1", "s001-seed0"]
    config = sweep.trial_config(sweep.settings[3], 1)
    assert config["trainer"]["seed"] == 1 and config["trainer"]["lr"] == 0.003
    assert config["facets"][0]["n_clusters"] == sweep.settings[3]["facets.0.n_clusters"]


def test_experiment_path_is_relative_to_the_sweep_file(tmp_path):
    (tmp_path / "exp").mkdir()
    (tmp_path / "exp" / "toy.yaml").write_text(yaml.safe_dump(toy_experiment()))
    (tmp_path / "sweeps").mkdir()
    path = write_sweep(tmp_path / "sweeps" / "s.yaml", experiment="../exp/toy.yaml", overrides=["trainer.epochs=2"],
                       storage="out", name="x")
    sweep = load_sweep(path)
    assert sweep.experiment["trainer"]["epochs"] == 2
    assert Path(sweep.storage).is_absolute() and sweep.directory == Path.cwd() / "out" / "x"


def test_overrides_go_to_the_sweep_or_to_every_trial(sweep_file):
    sweep = load_sweep(sweep_file(search={"trainer.lr": [0.1]}),
                       ["seeds=[3, 4]", "resources.cpu=2", "search.model.noise=[0.2, 0.3]", "trainer.epochs=1"])
    assert sweep.seeds == [3, 4] and sweep.resources.cpu == 2
    assert sweep.settings == [{"trainer.lr": 0.1, "model.noise": 0.2}, {"trainer.lr": 0.1, "model.noise": 0.3}]
    assert sweep.experiment["trainer"]["epochs"] == 1


@pytest.mark.parametrize("fields, expected", [
    ({"seedz": [1]}, "unknown config key 'seedz'\n  did you mean: seeds"),
    ({"seeds": "0"}, "must be a non-empty list of integers, got '0' (config key: seeds)"),
    ({"seeds": [0, 0]}, "holds a seed twice"),
    ({"resources": {"cpu": -1}}, "must be greater than 0, got -1.0 (config key: resources.cpu)"),
    ({"resources": {"gpus": 1}}, "unknown config key 'resources.gpus'\n  did you mean: gpu"),
    ({"resources": {"gpu": 1.5}}, "a fraction of one GPU or whole GPUs"),
    ({"max_concurrent": 1.5}, "must be an integer, got 1.5 (config key: max_concurrent)"),
    ({"mode": "minimum"}, "must be min or max"),
    ({"scheduler": {"ashaa": {}}}, "did you mean: asha"),
    ({"scheduler": {"asha": {"grace": 1}}}, "unknown config key 'scheduler.asha.grace'"),
    ({"search": {"trainer.lr": {"unifrm": [1, 2]}}}, "unknown search space 'unifrm'; did you mean: uniform"),
    ({"search": {"trainer.lr": {"loguniform": [0, 1]}}}, "loguniform needs low > 0"),
    ({"search": {"trainer.lr": {"uniform": [2, 1]}}}, "needs [low, high] with low < high"),
    ({"search": {"trainer.lr": 0.1}}, "to fix a value for every trial, put it under `overrides:`"),
    ({"search": {"trainer.seed": [1, 2]}}, "seeds are not searched"),
    ({"num_samples": 3, "search": {"trainer.lr": [0.1]}}, "no search key is random"),
    ({"metric": "test/facet0/top/nmi"}, "would select on test labels"),
    ({"metric": "loss"}, "must start with val/ or train/"),
    ({"storage": "s3://bucket/sweeps"}, "is a URI"),
    ({"experiment": {"data": {"name": "toy_blobs"}, "model": {"name": "toy_faulty"}, "trainr": {}}},
     "unknown config key 'trainr'"),
])
def test_bad_sweep_files_fail_with_the_key_and_the_fix(sweep_file, fields, expected):
    with pytest.raises(SweepError) as err:
        load_sweep(sweep_file(**fields))
    assert expected in str(err.value)
    assert "sweep.yaml" in str(err.value)


@pytest.mark.parametrize("override, expected", [
    ("search.trainer.lrr=[0.1]", "unknown config key 'trainer.lrr'\n  did you mean: lr"),
    ("search.facets.5.n_clusters=[2]", "facets"),
    ("search.trainer.lr=[0.1,-1]", "setting s001 (trainer.lr=-1) is not a valid experiment"),
    ("search.model.name=[toy_faulty,toy_softkmean]", "did you mean: toy_softkmeans"),
    ("metric=val/loss", None),  # valid
    ("data.val_fraction=0", "needs a validation split"),
    ("metric=val/facet2/top/nmi", "names facet 'facet2' but the experiment has facets 0..1"),
    ("metric=val/facet0/top/acc", "evaluation metrics are hungarian_acc"),
    ("trainer.eval_every_epochs=5", "more than the 3 epochs a trial trains, so it is never logged"),
])
def test_every_setting_is_resolved_before_launch(sweep_file, override, expected):
    path = sweep_file(metric="val/loss")
    if expected is None:
        load_sweep(path, [override])
        return
    with pytest.raises(ConfigError) as err:
        load_sweep(path, [override])
    assert expected in str(err.value)


def test_metric_must_be_logged_by_the_model(sweep_file):
    exp = toy_experiment()
    exp["model"] = {"name": "toy_kmeans"}
    exp["facets"] = exp["facets"][:1]
    with pytest.raises(SweepError, match="has no training loop, so it logs no 'train/loss'"):
        load_sweep(sweep_file(experiment=exp))
    load_sweep(sweep_file(experiment=exp, metric="val/facet0/top/nmi", mode="max"))
    with pytest.raises(SweepError, match="ASHA stops trials on a per-epoch metric"):
        load_sweep(sweep_file(metric="val/facet0/top/nmi", mode="max", scheduler={"asha": {}}))


def test_devices_must_match_the_reserved_resources(sweep_file):
    with pytest.raises(SweepError, match=r"trials reserve no GPU \(resources.gpu: 0\) but trainer.device is 'cuda'"):
        load_sweep(sweep_file(experiment=toy_experiment(device="cuda")))
    with pytest.raises(SweepError, match="trials reserve a GPU but trainer.device is 'cpu'"):
        load_sweep(sweep_file(experiment=toy_experiment(device="cpu"), resources={"gpu": 0.25}))


def test_typo_fails_in_the_cli_before_ray_is_imported(sweep_file, tmp_path):
    path = sweep_file(search={"trainer.lr": [0.1]})
    code = (f"import sys; from mfcf.cli import main; rc = main(['sweep', {str(path)!r}, 'search.trainer.lrr=[1]']); "
            "assert 'ray' not in sys.modules; sys.exit(rc)")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=cli_env(tmp_path))
    assert res.returncode == 2, res.stderr
    assert "SweepError: setting s000" in res.stderr and "did you mean: lr" in res.stderr
    assert "Traceback" not in res.stderr
    assert not (tmp_path / "sweeps").exists()


def test_dry_run_lists_every_trial(sweep_file, tmp_path):
    path = sweep_file(seeds=[0, 1], search={"trainer.lr": [0.1, 0.2]}, name="dry")
    res = subprocess.run([sys.executable, "-m", "mfcf.cli", "sweep", str(path), "--dry-run"], capture_output=True,
                         text=True, env=cli_env(tmp_path))
    assert res.returncode == 0, res.stderr
    assert "sweep dry: 4 trials, all valid" in res.stdout
    assert "s001-seed1  trainer.lr=0.2" in res.stdout
    assert not (tmp_path / "sweeps").exists()


def test_resources_are_checked_against_the_nodes():
    pytest.importorskip("ray")
    from mfcf.tune.cluster import ClusterError, check_resources

    cpu_node = [{"Alive": True, "Resources": {"CPU": 8.0}}, {"Alive": False, "Resources": {"CPU": 64, "GPU": 8}}]
    with pytest.raises(ClusterError, match="asks for 0.25 GPU .* has no GPU; Ray would wait forever"):
        check_resources(1, 0.25, cpu_node)
    with pytest.raises(ClusterError, match="asks for 16 CPUs .* largest node has 8"):
        check_resources(16, 0, cpu_node)
    gpu_nodes = [{"Alive": True, "Resources": {"CPU": 8.0, "GPU": 1.0}}, {"Alive": True, "Resources": {"CPU": 4.0}}]
    check_resources(8, 0.25, gpu_nodes)
    with pytest.raises(ClusterError, match="asks for 2 GPUs but the largest node has 1"):
        check_resources(1, 2, gpu_nodes)


def test_worker_env_carries_plugin_switches_and_module_roots(monkeypatch):
    pytest.importorskip("ray")
    from mfcf.tune.cluster import worker_env

    monkeypatch.setenv("MFCF_BLOCK_PLUGINS", "nothing")
    monkeypatch.delenv("PYTHONPATH", raising=False)
    env = worker_env(["mfcf_toy", "json"])  # json is in the standard library: not added
    assert env["MFCF_BLOCK_PLUGINS"] == "nothing"
    assert env["PYTHONPATH"].split(":") == [str(Path(__file__).resolve().parents[1] / "toy_plugins")]


def _record(label, seed, status="completed", **scores):
    return RunRecord(f"/runs/{label}-{seed}", {"trainer.lr": {"a": 0.1, "b": 0.01}[label]}, seed, status, scores,
                     label=label)


def test_summary_means_stds_and_the_best_setting(tmp_path):
    records = [
        _record("a", 0, **{"val/loss": 1.0, "test/facet0/top/nmi": 0.5, "val/facet0/top/nmi": 0.4}),
        _record("a", 1, **{"val/loss": 3.0, "test/facet0/top/nmi": 0.7, "val/facet0/top/nmi": 0.6}),
        _record("b", 0, **{"val/loss": 1.5, "test/facet0/top/nmi": 0.9, "val/facet0/top/nmi": 0.2}),
        _record("b", 1, **{"val/loss": 1.7, "test/facet0/top/nmi": 0.95, "val/facet0/top/nmi": 0.3}),
        _record("b", 2, status="failed", **{"val/loss": 0.1}),
    ]
    summary = summarise(records, metric="val/loss", mode="min", planned={"a": 2, "b": 3})
    a, b = summary.settings
    assert a.stats["val/loss"].mean == 2.0 and a.stats["val/loss"].std == pytest.approx(math.sqrt(2))
    assert b.stats["val/loss"].mean == pytest.approx(1.6) and b.stats["val/loss"].n == 2  # the failed run is out
    # b has the lower mean but one of its planned runs failed: a complete setting is preferred
    assert summary.best is a
    assert summarise(records[:4], metric="val/loss").best.label == "b"
    assert summarise(records[:4], metric="val/facet0/top/nmi", mode="max").best.label == "a"
    with pytest.raises(ConfigError, match="would select on test labels"):
        summarise(records, metric="test/facet0/top/nmi", mode="max")
    md = summary.markdown()
    assert "Best setting: a (trainer.lr=0.1), chosen by val/loss (min) = 2 ± 1.4 over 2 seeds" in md
    assert "| a (best) | 0.1 | 2/2 | 2 ± 1.4 |" in md
    assert "| b | 0 | top | - | - | - | 0.925 ± 0.035 | - |" in md  # test split, NMI column
    assert "| b | 2 | failed | /runs/b-2 |" in md
    md_path, csv_path = summary.write(tmp_path)
    rows = list(__import__("csv").DictReader(open(csv_path)))
    row = next(r for r in rows if r["setting"] == "b" and r["score"] == "test/facet0/top/nmi")
    assert (row["split"], row["facet"], row["factor"], row["metric"]) == ("test", "0", "top", "nmi")
    assert float(row["mean"]) == pytest.approx(0.925) and row["n"] == "2" and row["runs_planned"] == "3"
    assert md_path.read_text() == md


def test_single_seed_has_no_std_and_varying_keys_ignore_seeds():
    summary = summarise([_record("a", 0, **{"train/loss": 2.0})], metric="train/loss")
    assert summary.settings[0].stats["train/loss"].std is None
    assert "2 (n=1)" in summary.markdown()
    configs = [{"trainer": {"seed": s, "lr": lr}, "facets": [{"n_clusters": k}]}
               for s, lr, k in [(0, 0.1, 3), (1, 0.1, 3), (0, 0.2, 3)]]
    assert varying_keys(configs) == ["trainer.lr"]
