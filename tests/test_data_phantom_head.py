"""The procedural head CT phantom and CT sets of several anatomies (`recon data build --anatomy`)."""
import numpy as np
import pytest

from recon.cli import main
from recon.data import read_manifest, thorax_phantom
from recon.data.build import build_dataset, item_seed, make_item
from recon.data.phantom_head import head_phantom
from recon.units import hu_to_model


def test_a_seed_always_gives_the_same_head_and_seeds_differ():
    assert np.array_equal(head_phantom(64, 3), head_phantom(64, 3))
    assert not np.array_equal(head_phantom(64, 3), head_phantom(64, 4))
    assert head_phantom(48, 0).shape == (48, 48) and head_phantom(48, 0).dtype == np.float32


@pytest.mark.parametrize("seed", range(6))
def test_a_head_slice_has_air_around_a_skull_around_a_brain(seed):
    hu = head_phantom(128, seed)
    assert np.isfinite(hu).all()
    corners = np.concatenate([hu[:6, :6].ravel(), hu[:6, -6:].ravel()])
    assert np.all(corners < -900)  # air outside the head (noise: a few HU)
    assert (hu > 900).mean() > 0.005  # the skull's cortical tables
    centre = hu[54:74, 54:74]
    assert 0 < np.median(centre) < 60  # brain or CSF in the middle, not bone or air


def test_some_slices_reach_the_skull_base_with_air_inside_the_head():
    from scipy import ndimage

    with_air = 0
    for seed in range(12):
        hu = head_phantom(96, seed)
        head = ndimage.binary_fill_holes(hu > -300)
        with_air += bool((head & (hu < -600)).any())  # sinuses or mastoid air cells
    assert 0 < with_air < 12  # the skull-base level, but not every slice


def test_a_mixed_set_alternates_thorax_and_head_and_says_so(tmp_path):
    path = build_dataset("ct", 32, {"train": 4, "val": 1, "test": 1}, tmp_path / "mixed.h5", seed=5,
                         progress=False, anatomy="mixed")
    manifest = read_manifest(path)
    assert set(manifest["generator"]["generators"]) == {"thorax", "head"}
    assert "thorax and head" in manifest["source"]
    assert np.array_equal(make_item("ct", 32, 5, "train", 0, "mixed"),
                          hu_to_model(thorax_phantom(32, item_seed(5, "train", 0))).astype(np.float32))
    assert np.array_equal(make_item("ct", 32, 5, "train", 1, "mixed"),
                          hu_to_model(head_phantom(32, item_seed(5, "train", 1))).astype(np.float32))
    head = read_manifest(build_dataset("ct", 16, 2, tmp_path / "head.h5", progress=False, anatomy="head"))
    assert head["generator"]["name"] == "recon.data.phantom_head.head_phantom"


def test_anatomy_is_refused_where_it_means_nothing(tmp_path, capsys):
    assert main(["data", "build", "--modality", "mri", "--anatomy", "head", "--n", "2", "-o",
                 str(tmp_path / "x.h5"), "--quiet"]) == 2
    assert "a mri set is one of brain, varied" in capsys.readouterr().err
    assert main(["data", "build", "--modality", "ct", "--anatomy", "head", "--from", str(tmp_path), "-o",
                 str(tmp_path / "y.h5"), "--quiet"]) == 2
    assert "--anatomy picks a procedural generator" in capsys.readouterr().err
    assert not (tmp_path / "x.h5").exists() and not (tmp_path / "y.h5").exists()
