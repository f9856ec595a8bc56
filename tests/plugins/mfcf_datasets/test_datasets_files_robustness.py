"""Damaged data folders and files through a real `mfcf train`: exit 2, one message naming the
folder, file or key and the fix, no traceback and no run directory left behind."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest
import scipy.io
import yaml

from mfcf.cli import main
from mfcf.errors import DataError
from mfcf_datasets.mnist import FashionMNISTDataset, MNISTDataset

FASHION_DIR = Path("/usr/share/datasets/fashion-mnist")


@pytest.fixture
def train(tmp_path, toy_config, capsys):
    """``train(data_section)``: ``mfcf train`` in-process on the toy model; returns stderr after
    checking the exit status is 2, there is no traceback and no run directory was created."""

    def _train(data):
        toy_config["data"] = {"batch_size": 32, "val_fraction": 0.2, **data}
        path = tmp_path / "config.yaml"
        path.write_text(yaml.safe_dump(toy_config))
        code = main(["train", str(path), "--quiet", "--no-eval"])
        err = capsys.readouterr().err
        assert code == 2, err
        assert "Traceback" not in err
        assert not Path(toy_config["trainer"]["runs_dir"]).exists()
        return err

    return _train


@pytest.mark.parametrize("dataset", ["mnist", "svhn"])
def test_a_folder_with_some_of_the_files_names_it_and_the_missing_ones(tmp_path, writers, train, dataset):
    folder = tmp_path / "partial"
    if dataset == "mnist":
        writers.mnist(folder)
        missing = "t10k-labels-idx1-ubyte"
    else:
        writers.svhn(folder)
        missing = "test_32x32.mat"
    (folder / missing).unlink()
    err = train({"name": dataset, "root": str(folder)})
    assert f"DataError: {dataset}: {folder} holds only some of the dataset's files" in err
    assert f"missing: '{missing}" in err


def test_files_are_never_combined_from_several_folders(tmp_path, writers, train, monkeypatch):
    # $MFCF_DATA_DIR holds one of the four files, ./data all four: the first folder decides
    env_dir = tmp_path / "env"
    writers.idx(env_dir / "t10k-labels-idx1-ubyte", np.zeros(3, np.uint8))
    writers.mnist(tmp_path / "data")
    monkeypatch.setenv("MFCF_DATA_DIR", str(env_dir))
    err = train({"name": "mnist"})
    assert f"{env_dir} holds only some of the dataset's files" in err
    assert "'train-images-idx3-ubyte[.gz]'" in err and "'t10k-labels-idx1-ubyte[.gz]'" not in err


@pytest.mark.skipif(not FASHION_DIR.is_dir(), reason="needs the Debian package dataset-fashion-mnist")
def test_a_partial_data_folder_is_not_completed_from_the_debian_package(tmp_path, writers, toy_config):
    """A real `mfcf` process: ./data holds 3 of Fashion-MNIST's 4 files, the Debian folder all 4."""
    folder = tmp_path / "data" / "FashionMNIST" / "raw"
    writers.mnist(folder)
    (folder / "train-labels-idx1-ubyte").unlink()
    toy_config["data"] = {"name": "fashion_mnist"}
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(toy_config))
    res = subprocess.run([sys.executable, "-m", "mfcf.cli", "train", "config.yaml", "--quiet"],
                         capture_output=True, text=True, cwd=tmp_path)
    assert res.returncode == 2 and "Traceback" not in res.stderr
    assert f"DataError: fashion_mnist: {folder} holds only some" in res.stderr
    assert "'train-labels-idx1-ubyte[.gz]'" in res.stderr
    assert not (tmp_path / "runs").exists()


@pytest.mark.skipif(not FASHION_DIR.is_dir(), reason="needs the Debian package dataset-fashion-mnist")
def test_mnist_files_directly_in_data_are_not_read_as_fashion_mnist(tmp_path, writers, build):
    writers.mnist(tmp_path / "data")  # ./data (tests run in tmp_path), where the paper configs put MNIST
    assert build(MNISTDataset).files["train"][0].parent == Path("data")
    assert build(FashionMNISTDataset).files["train"][0].parent == FASHION_DIR


@pytest.mark.parametrize("kind", ["missing", "file"])
def test_a_root_that_is_not_a_folder_names_data_root(tmp_path, train, kind):
    root = tmp_path / "fashion"
    if kind == "file":
        root.write_text("not a folder")
    # fashion_mnist used to fall back to the Debian package's folder here
    err = train({"name": "fashion_mnist", "root": str(root)})
    problem = "does not exist" if kind == "missing" else "is a file, not a folder"
    assert f"ConfigError: {root} {problem}" in err and "(config key: data.root)" in err


def test_a_root_inside_colored_names_its_own_key(tmp_path, train):
    err = train({"name": "colored", "base": "mnist", "base_options": {"root": str(tmp_path / "nowhere")}})
    assert "does not exist" in err and "(config key: data.base_options.root)" in err


@pytest.mark.parametrize("kind", ["missing", "file"])
def test_mfcf_data_dir_that_is_not_a_folder_is_named(tmp_path, train, monkeypatch, kind):
    target = tmp_path / "datasets"
    if kind == "file":
        target.write_text("")
    monkeypatch.setenv("MFCF_DATA_DIR", str(target))
    err = train({"name": "mnist"})
    assert f"DataError: MFCF_DATA_DIR is set to '{target}'" in err and "or unset it" in err


def test_a_root_with_a_tilde_is_expanded(tmp_path, writers, build, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    writers.mnist(tmp_path / "digits")
    assert build(MNISTDataset, root="~/digits").files["test"][0] == tmp_path / "digits" / "t10k-images-idx3-ubyte"


def _idx_bad_magic(root: Path, writers) -> Path:
    writers.mnist(root)
    (root / "train-images-idx3-ubyte").write_bytes(b"<html>404 not found</html>")
    return root / "train-images-idx3-ubyte"


def _idx_shorter_than_its_header_says(root: Path, writers) -> Path:
    writers.mnist(root)
    path = root / "t10k-images-idx3-ubyte"
    path.write_bytes(path.read_bytes()[:-28])
    return path


def _mat_that_is_not_a_mat_file(root: Path, writers) -> Path:
    writers.svhn(root)
    (root / "train_32x32.mat").write_text("MATLAB? no")
    return root / "train_32x32.mat"


def _mat_with_text_labels(root: Path, writers) -> Path:
    writers.svhn(root)
    scipy.io.savemat(root / "train_32x32.mat", {"X": np.zeros((32, 32, 3, 2), np.uint8), "y": np.array(["1", "2"])})
    return root / "train_32x32.mat"


def _h5_that_is_not_hdf5(root: Path, writers) -> Path:
    root.mkdir()
    (root / "3dshapes.h5").write_bytes(b"\0" * 1000)
    return root / "3dshapes.h5"


def _h5_whose_images_are_a_group(root: Path, writers) -> Path:
    root.mkdir()
    with h5py.File(root / "3dshapes.h5", "w") as h5:
        h5.create_group("images")
        h5["labels"] = np.zeros((2, 6))
    return root / "3dshapes.h5"


@pytest.mark.parametrize("dataset, damage, says", [
    ("mnist", _idx_bad_magic, "is not an IDX file"),
    ("mnist", _idx_shorter_than_its_header_says, "is truncated or corrupt"),
    ("svhn", _mat_that_is_not_a_mat_file, "cannot be read as a MATLAB file"),
    ("svhn", _mat_with_text_labels, "variable y holds <U1 values, not numbers"),
    ("shapes3d", _h5_that_is_not_hdf5, "cannot be opened as HDF5"),
    ("shapes3d", _h5_whose_images_are_a_group, "has no dataset 'images' ('images' is a Group)"),
])
def test_a_damaged_file_is_a_data_error_naming_it(tmp_path, writers, train, dataset, damage, says):
    path = damage(tmp_path / "files", writers)
    err = train({"name": dataset, "root": str(tmp_path / "files")})
    assert f"DataError: {path}" in err and says in err


def test_idx_compression_is_recognised_by_content_not_name(tmp_path, writers, build):
    written = writers.mnist(tmp_path, gz=True)
    plain = tmp_path / "t10k-images-idx3-ubyte"
    (tmp_path / "t10k-images-idx3-ubyte.gz").rename(plain)  # compressed, named as if it were not
    labels = tmp_path / "t10k-labels-idx1-ubyte.gz"
    writers.idx(tmp_path / "decompressed", written["test_labels"]).rename(labels)  # the reverse
    data = build(MNISTDataset, root=str(tmp_path)).load("test")
    assert data.factors["label"].tolist() == written["test_labels"].tolist()
    assert np.array_equal(np.rint(data.images[:, 0].numpy() * 255), written["test_images"])


def test_a_file_gone_before_loading_is_a_data_error(tmp_path, writers, build):
    writers.mnist(tmp_path)
    ds = build(MNISTDataset, root=str(tmp_path))
    (tmp_path / "t10k-images-idx3-ubyte").unlink()
    with pytest.raises(DataError, match=r"t10k-images-idx3-ubyte cannot be read: No such file"):
        ds.load("test")


def test_a_cache_dir_that_cannot_be_written_is_named(tmp_path, train):
    blocker = tmp_path / "cache-file"
    blocker.write_text("")
    err = train({"name": "shapes_procedural", "n_train": 20, "n_test": 10, "cache_dir": str(blocker)})
    assert f"DataError: cannot write the cache file {blocker}/shapes_procedural/" in err
    assert "data.cache to false" in err
