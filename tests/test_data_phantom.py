"""The thorax CT phantom and the MNI152 brain slices."""
import time
from itertools import islice

import numpy as np
import pytest
from scipy import ndimage

from recon.data import mri_slices, thorax_phantom
from recon.data.mri_slices import EXCLUDED_FROM_TRAIN, TEST_SLICES, VAL_SLICES, split_indices


def test_phantom_is_deterministic_and_seeds_differ():
    a, b, c = thorax_phantom(64, 3), thorax_phantom(64, 3), thorax_phantom(64, 4)
    assert a.shape == (64, 64) and a.dtype == np.float32
    assert np.array_equal(a, b)
    assert np.abs(a - c).mean() > 50


@pytest.mark.parametrize("seed", range(6))
def test_phantom_tissues_have_realistic_hu(seed):
    hu = thorax_phantom(128, seed)
    assert np.isfinite(hu).all()
    assert abs(np.median(hu[:6, :6]) + 1000) < 30  # air in the corner
    assert -1100 < hu.min() and 500 < hu.max() < 1600  # bone present (partial volume at 3 mm), nothing absurd
    body = ndimage.binary_fill_holes(hu > -500)
    lung = (hu < -700) & (hu > -950)
    assert 0.25 < body.mean() < 0.75
    assert lung.mean() > 0.05  # lungs
    assert np.median(hu[lung]) == pytest.approx(-860, abs=60)
    soft = hu[(hu > -20) & (hu < 250)]
    fat = hu[(hu > -150) & (hu < -60)]
    assert soft.size > 200 and fat.size > 100


def test_phantom_zoom_shows_the_same_anatomy():
    full = thorax_phantom(64, 5)
    assert np.array_equal(thorax_phantom(64, 5, zoom=1.0, view=(0.0, 0.0)), full)
    half = thorax_phantom(64, 5, zoom=0.5, view=(0.5, 0.5))  # the bottom-right quarter, twice as sharp
    coarse = half.reshape(32, 2, 32, 2).mean(axis=(1, 3))
    assert np.corrcoef(coarse.ravel(), full[32:, 32:].ravel())[0, 1] > 0.9
    with pytest.raises(ValueError, match="zoom"):
        thorax_phantom(64, 5, zoom=1.5)


def test_phantom_is_fast():
    times = []
    for seed in range(8):
        start = time.process_time()  # CPU time: robust to other processes sharing the machine
        thorax_phantom(128, seed)
        times.append(time.process_time() - start)
    assert np.median(times) < 0.1  # typically 0.03 s


def test_mri_splits_are_disjoint_with_a_margin():
    train = set(split_indices("train"))
    assert len(train) > 80
    held_out = set(VAL_SLICES) | set(TEST_SLICES)
    assert not train & set(EXCLUDED_FROM_TRAIN)
    assert min(abs(k - j) for k in train for j in held_out) >= 3
    assert not set(VAL_SLICES) & set(TEST_SLICES)


def test_mri_slices_plain_and_augmented():
    val = list(mri_slices("val", 64, seed=0, augment=False))
    assert len(val) == len(VAL_SLICES)
    for image in val:
        assert image.shape == (64, 64) and image.dtype == np.float32
        assert np.percentile(image, 99.5) == pytest.approx(1.0, abs=1e-5) and image.min() >= 0
        assert (image > 0.1).mean() > 0.3  # brain fills the field of view
    first = list(islice(mri_slices("train", 64, seed=1, augment=True), 4))
    again = list(islice(mri_slices("train", 64, seed=1, augment=True), 4))
    other = list(islice(mri_slices("train", 64, seed=2, augment=True), 4))
    assert all(np.array_equal(a, b) for a, b in zip(first, again))
    assert not any(np.array_equal(a, b) for a, b in zip(first, other))
    assert all(np.percentile(a, 99.5) == pytest.approx(1.0, abs=1e-5) for a in first)
