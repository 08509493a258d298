"""Intensity conventions: CT model units and MR robust scaling, numpy and torch."""
import numpy as np
import pytest
import torch

from recon.units import hu_to_model, model_to_hu, robust_max, robust_scale, robust_unscale


def test_ct_anchor_values():
    assert hu_to_model(-1000.0) == 0.0
    assert hu_to_model(0.0) == 0.25
    assert hu_to_model(1000.0) == 0.5
    assert model_to_hu(0.25) == 0.0


@pytest.mark.parametrize("kind", ["numpy", "torch"])
def test_ct_round_trip(kind):
    hu = np.linspace(-1024, 3071, 257)
    values = torch.from_numpy(hu) if kind == "torch" else hu
    back = model_to_hu(hu_to_model(values))
    assert type(back) is type(values)
    assert np.allclose(np.asarray(back), hu, atol=1e-9)


@pytest.mark.parametrize("kind", ["numpy", "torch"])
def test_robust_scale_round_trip(kind):
    rng = np.random.default_rng(0)
    magnitude = rng.random((32, 32)) * 750.0
    values = torch.from_numpy(magnitude) if kind == "torch" else magnitude
    scaled, scale = robust_scale(values)
    assert scale == pytest.approx(np.percentile(magnitude, 99.5))
    assert float(scaled.max()) == pytest.approx(magnitude.max() / scale)
    assert np.allclose(np.asarray(robust_unscale(scaled, scale)), magnitude)


def test_robust_max_never_zero():
    sparse = np.zeros((64, 64))
    sparse[0, 0] = 5.0  # fewer than 0.5 % non-zero pixels: the percentile is 0
    assert robust_max(sparse) == 5.0
    assert robust_max(np.zeros((8, 8))) == 1.0
