"""Randomised-contrast MR slices (recon/data/mri_varied.py) and `recon data build --modality mri --anatomy varied`."""
import numpy as np

from recon.data import build_dataset, read_manifest
from recon.data.mri_slices import base_slices
from recon.data.mri_varied import BRAIN_KNOTS, _random_curve, body_slice, brain_slice, varied_slice


def test_slices_are_seeded_model_units():
    for make in (lambda s: brain_slice("train", 32, s), lambda s: body_slice(32, s)):
        a, b, c = make(3), make(3), make(4)
        assert a.shape == (32, 32) and a.dtype == np.float32 and np.isfinite(a).all()
        assert np.array_equal(a, b) and not np.array_equal(a, c)
        assert a.min() >= 0 and 0.9 < np.percentile(a, 99.5) < 1.1  # divided by the robust maximum


def test_contrast_is_randomised_beyond_t1():
    """Across seeds the curve puts the template's CSF above its white matter (T2-like) in some slices and
    below (T1-like) in others; a monotone T1 augmentation never inverts them. Background stays dark."""
    curves = [_random_curve(np.random.default_rng(seed), len(BRAIN_KNOTS), 2) for seed in range(40)]
    inverted = sum(c[2] > c[4] for c in curves)  # knots 2 and 4: CSF and white matter
    assert 8 <= inverted <= 32
    assert all(c[:2].max() <= 0.03 for c in curves)


def test_even_items_are_brains_of_their_split_odd_items_bodies():
    assert np.array_equal(varied_slice("val", 32, 5, 0), brain_slice("val", 32, 5))
    assert np.array_equal(varied_slice("val", 32, 5, 1), body_slice(32, 5))
    assert len(base_slices("val", 32)) == 8  # val brains come from the held-out template block only


def test_build_varied_set(tmp_path):
    path = build_dataset("mri", 32, {"train": 4, "val": 2, "test": 2}, tmp_path / "v.h5", progress=False,
                         anatomy="varied")
    manifest = read_manifest(path)
    assert manifest["generator"]["name"] == "recon.data.mri_varied" and "randomised" in manifest["source"]
