"""The procedural 3DShapes-like renderer and the `shapes_procedural` dataset.

Expected colours are computed here with the standard library's ``colorsys``, independently of
the renderer's own HSV conversion.
"""

from __future__ import annotations

import colorsys
import time

import numpy as np
import pytest
import torch

from mfcf.errors import ConfigError
from mfcf_datasets import shapes_procedural
from mfcf_datasets.factors import FACTOR_NAMES, factor_values
from mfcf_datasets.render import AMBIENT, render_scenes
from mfcf_datasets.shapes_procedural import ShapesProceduralDataset


def rgb255(hue: float) -> np.ndarray:
    return np.rint(255 * np.array(colorsys.hsv_to_rgb(hue, 1.0, 1.0))).astype(np.uint8)


def scene(floor=0.2, wall=0.5, obj=0.8, scale=1.0, shape=2, orientation=0.0, size=32, shading=False) -> np.ndarray:
    """One rendered scene as uint8 (S, S, 3)."""
    image = render_scenes(np.array([floor]), np.array([wall]), np.array([obj]), np.array([scale]),
                          np.array([shape]), np.array([orientation]), image_size=size, shading=shading)
    return image[0].permute(1, 2, 0).numpy()


def is_colour(image: np.ndarray, hue: float) -> np.ndarray:
    return (image == rgb255(hue)).all(axis=-1)


@pytest.mark.parametrize("size", [32, 64])
@pytest.mark.parametrize("shape", range(4))
def test_flat_regions_have_exactly_the_requested_hues(size, shape):
    image = scene(shape=shape, size=size, orientation=12.0)
    floor, wall, obj = is_colour(image, 0.2), is_colour(image, 0.5), is_colour(image, 0.8)
    assert (floor | wall | obj).all() and not (floor & wall).any()  # three colours, nothing else
    assert floor[-1].all() and wall[0].all()  # bottom row is floor, top row is wall
    assert obj.sum() > size * size / 40
    for col in range(size):  # in every column, wall above and floor below (object in between)
        rows_wall, rows_floor = np.flatnonzero(wall[:, col]), np.flatnonzero(floor[:, col])
        assert rows_wall.max() < rows_floor.min()


@pytest.mark.parametrize("shape", range(4))
def test_shading_changes_only_the_objects_value_never_its_hue(shape):
    image = scene(floor=0.0, wall=0.3, obj=0.7, shape=shape, size=64, shading=True)
    background = is_colour(image, 0.0) | is_colour(image, 0.3)
    pixels = image[~background] / 255.0
    hsv = np.array([colorsys.rgb_to_hsv(*p) for p in pixels])
    assert len(hsv) > 100
    assert np.abs(hsv[:, 0] - 0.7).max() < 0.01 and hsv[:, 1].min() > 0.98
    assert AMBIENT - 0.01 <= hsv[:, 2].min() and hsv[:, 2].max() <= 1.0
    if shape != 0:  # the cube's front face is flat; round shapes show a gradient
        assert hsv[:, 2].max() - hsv[:, 2].min() > 0.2


def test_shapes_have_distinct_silhouettes():
    masks = [is_colour(scene(shape=s, size=64), 0.8) for s in range(4)]
    for a in range(4):
        for b in range(a + 1, 4):
            assert (masks[a] ^ masks[b]).sum() > 40, (a, b)
    rows, cols = np.nonzero(masks[0])
    box = masks[0][rows.min():rows.max() + 1, cols.min():cols.max() + 1]
    assert box.all() and box.shape[0] == box.shape[1]  # an unrotated cube is a filled square
    for tall in (1, 3):  # cylinder and capsule are taller than wide
        rows, cols = np.nonzero(masks[tall])
        assert rows.max() - rows.min() > cols.max() - cols.min()
    assert np.array_equal(masks[2], masks[2][:, ::-1])  # the sphere is mirror-symmetric


@pytest.mark.parametrize("shape", range(4))
def test_object_grows_with_scale(shape):
    areas = [is_colour(scene(shape=shape, scale=s, size=64), 0.8).sum() for s in factor_values("scale", 8)]
    assert all(a <= b for a, b in zip(areas, areas[1:])) and areas[-1] > 2.2 * areas[0]  # ideal (1.25 / 0.75)^2 = 2.8


def test_orientation_is_an_azimuth_round_shapes_keep_their_silhouette_the_cube_widens_upright():
    mask = lambda shape, degrees: is_colour(scene(shape=shape, orientation=degrees, size=64), 0.8)  # noqa: E731
    for shape in (1, 2, 3):  # cylinder, sphere and upright capsule are symmetric about the vertical axis
        assert all(np.array_equal(mask(shape, 0.0), mask(shape, d)) for d in (-30.0, -12.86, 4.29, 30.0))
    widths = []
    for degrees in (0.0, 12.86, 30.0):
        rows, cols = np.nonzero(mask(0, degrees))
        box = mask(0, degrees)[rows.min():rows.max() + 1, cols.min():cols.max() + 1]
        assert box.all()  # never tilted: an upright rectangle
        widths.append(box.shape[1])
        assert box.shape[0] == widths[0]  # the height stays the side of the square
    assert widths[0] < widths[1] < widths[2] and widths[2] / widths[0] == pytest.approx(np.cos(0.52) + np.sin(0.52),
                                                                                            abs=0.06)
    shaded = scene(shape=0, orientation=30.0, size=64, shading=True)
    values = {tuple(p) for p in shaded[~(is_colour(shaded, 0.2) | is_colour(shaded, 0.5))]}
    assert len(values) == 2  # two flat faces, each evenly lit


def test_orientation_mirrors_the_scene_and_moves_the_room_corner():
    for degrees in (-30.0, -8.57, 30.0):
        for shape in range(4):
            left, right = scene(orientation=degrees, shape=shape), scene(orientation=-degrees, shape=shape)
            assert np.array_equal(left, right[:, ::-1])
            assert not np.array_equal(left, right)
    # the corner (the floor's highest point) lies right of centre at -30 degrees, left at +30
    highest = lambda img: np.argmin(np.argmax(is_colour(img, 0.2), axis=0))  # noqa: E731
    assert highest(scene(orientation=-30.0, size=64)) > 40 and highest(scene(orientation=30.0, size=64)) < 24


def test_dataset_labels_match_the_pixels(build):
    ds = build(ShapesProceduralDataset, n_train=64, n_test=16, floor_hue=[1, 4, 8], orientation=[0, 14], cache=False)
    assert dict(ds.info.factors) == {"floor_hue": 3, "wall_hue": 10, "object_hue": 10, "scale": 8, "shape": 4,
                                     "orientation": 2}
    data = ds.load("train")
    images = (data.images * 255).round().to(torch.uint8).permute(0, 2, 3, 1).numpy()
    allowed = {"floor_hue": [1, 4, 8], "orientation": [0, 14]}
    for i in range(len(data)):
        label = {n: int(data.factors[n][i]) for n in FACTOR_NAMES}
        index = {n: allowed[n][label[n]] if n in allowed else label[n] for n in FACTOR_NAMES}
        assert np.array_equal(images[i, -1, 0], rgb255(index["floor_hue"] / 10))
        assert np.array_equal(images[i, 0, 0], rgb255(index["wall_hue"] / 10))
        single = scene(*(factor_values(n, s)[index[n]] for n, s in zip(FACTOR_NAMES, (10, 10, 10, 8, 4, 15))),
                       shading=True)
        assert np.array_equal(images[i], single)


def test_fixed_factors_are_not_labels_and_labels_can_be_ordered(build):
    ds = build(ShapesProceduralDataset, wall_hue=[5], object_hue=[6], labels=["shape", "floor_hue"], cache=False,
               n_train=10, n_test=10)
    assert list(ds.info.factors) == ["shape", "floor_hue"]
    assert list(ds.load("test").factors) == ["shape", "floor_hue"]
    images = ds.load("test").images
    assert torch.all(images[:, :, 0, 0] == torch.from_numpy(rgb255(0.5)).float() / 255)  # wall held at 5


def test_grid_sampling_is_the_papers_configuration_1(build):
    ds = build(ShapesProceduralDataset, sampling="grid", wall_hue=[5], object_hue=[6], cache=False)
    train, test = ds.factor_indices("train"), ds.factor_indices("test")
    assert (len(train["shape"]), len(test["shape"])) == (3840, 960)
    combos = {tuple(int(v[i]) for v in part.values()) for part in (train, test) for i in range(len(part["shape"]))}
    assert len(combos) == 4800
    assert set(train["wall_hue"]) == {5} and set(test["object_hue"]) == {6}
    assert list(ds.info.factors) == ["floor_hue", "scale", "shape", "orientation"]


def test_random_sampling_is_uniform_seeded_and_leaves_global_rng_alone(build):
    state = np.random.get_state()[1].copy()
    a = build(ShapesProceduralDataset, seed=1, n_train=40_000, cache=False).factor_indices("train")
    assert np.array_equal(np.random.get_state()[1], state)
    for name, size in zip(FACTOR_NAMES, (10, 10, 10, 8, 4, 15)):
        counts = np.bincount(a[name], minlength=size)
        assert np.abs(counts / counts.sum() * size - 1).max() < 0.08, name
    b = build(ShapesProceduralDataset, seed=1, n_train=40_000, cache=False).factor_indices("train")
    c = build(ShapesProceduralDataset, seed=2, n_train=40_000, cache=False).factor_indices("train")
    test = build(ShapesProceduralDataset, seed=1, n_test=40_000, cache=False).factor_indices("test")
    assert all(np.array_equal(a[n], b[n]) for n in FACTOR_NAMES)
    assert not np.array_equal(a["floor_hue"], c["floor_hue"]) and not np.array_equal(a["scale"], test["scale"])


def test_cache_is_reused_keyed_by_every_option_and_rebuilt_when_corrupt(tmp_path, build, monkeypatch):
    options = dict(n_train=50, n_test=20, cache_dir=str(tmp_path / "c"))
    first = build(ShapesProceduralDataset, **options).load("train")
    files = list((tmp_path / "c" / "shapes_procedural").glob("*.npz"))
    assert len(files) == 1 and not list((tmp_path / "c").rglob("*.tmp"))

    def no_rendering(*args, **kwargs):
        raise AssertionError("rendered although the cache holds these images")

    monkeypatch.setattr(shapes_procedural, "render_scenes", no_rendering)
    again = build(ShapesProceduralDataset, **options).load("train")
    assert torch.equal(first.images, again.images)
    for change in ({"shading": False}, {"n_hues": 12}, {"image_size": 64}, {"orientation": [3]}):
        with pytest.raises(AssertionError, match="rendered although"):
            build(ShapesProceduralDataset, **options, **change).load("train")
    with pytest.raises(AssertionError, match="rendered although"):
        build(ShapesProceduralDataset, seed=1, **options).load("train")
    monkeypatch.undo()
    files[0].write_bytes(files[0].read_bytes()[:1000])
    rebuilt = build(ShapesProceduralDataset, **options).load("train")
    assert torch.equal(first.images, rebuilt.images)
    build(ShapesProceduralDataset, **{**options, "cache": False, "cache_dir": str(tmp_path / "off")}).load("test")
    assert not (tmp_path / "off").exists()


def test_cache_dir_defaults_to_the_environment(tmp_path, build, monkeypatch):
    monkeypatch.setenv("MFCF_CACHE_DIR", str(tmp_path / "env"))
    build(ShapesProceduralDataset, n_train=5, n_test=5).load("test")
    assert len(list((tmp_path / "env" / "shapes_procedural").glob("test-*.npz"))) == 1


def test_harder_configurations_with_more_values(build):
    ds = build(ShapesProceduralDataset, n_hues=20, n_orientations=30, n_train=30, n_test=30, image_size=64,
               cache=False)
    assert ds.info.factors["floor_hue"] == 20 and ds.info.shape == (3, 64, 64)
    data = ds.load("test")
    hue = data.factors["floor_hue"].numpy() / 20
    corner = (data.images[:, :, -1, 0] * 255).round().numpy()
    assert np.array_equal(corner, np.stack([rgb255(h) for h in hue]).astype(np.float64))


def test_config_errors_name_the_key(build):
    for options, key in [({"image_size": 8}, "image_size"), ({"sampling": "sobol"}, "sampling"),
                         ({"floor_hue": [10]}, "floor_hue"), ({"shape": []}, "shape"), ({"scale": [1, 1]}, "scale"),
                         ({"n_hues": 0}, "n_hues"), ({"labels": ["wall_hue"], "wall_hue": [2]}, "labels"),
                         ({"labels": ["colour"]}, "labels"), ({"test_fraction": 0.0}, "test_fraction")]:
        with pytest.raises(ConfigError, match=f"config key: data.{key}"):
            build(ShapesProceduralDataset, **options)
    assert build(ShapesProceduralDataset, n_hues=12, floor_hue=[11]).info.factors["wall_hue"] == 12


def test_renders_60000_images_at_32x32_well_under_a_minute():
    rng = np.random.default_rng(0)
    n = 60_000
    start = time.perf_counter()
    images = render_scenes(rng.integers(0, 10, n) / 10, rng.integers(0, 10, n) / 10, rng.integers(0, 10, n) / 10,
                           factor_values("scale", 8)[rng.integers(0, 8, n)], rng.integers(0, 4, n),
                           factor_values("orientation", 15)[rng.integers(0, 15, n)], image_size=32)
    elapsed = time.perf_counter() - start
    assert images.shape == (n, 3, 32, 32) and images.dtype == torch.uint8
    assert elapsed < 30, f"rendering took {elapsed:.1f} s"
