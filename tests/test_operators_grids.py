"""A measurement seen from another grid, A R (operators/grids.py)."""
import pytest
import torch

from operators import (BooleanMask, Fourier, Measurement, Radon, ViewMask, kspace_column_mask,
                       on_grid, view_indices)
from operators.grids import Regridded, area_matrix, interpolation_matrix


@pytest.mark.parametrize("coarse, fine", [(8, 32), (12, 20), (16, 16)])
def test_interpolation_is_torch_bilinear(coarse, fine):
    x = torch.rand(2, 1, coarse, coarse, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    k = interpolation_matrix(fine, coarse)
    expected = torch.nn.functional.interpolate(x, size=(fine, fine), mode="bilinear", align_corners=False)
    assert torch.allclose(k @ x @ k.T, expected, atol=1e-12)
    assert torch.allclose(k.sum(dim=1), torch.ones(fine, dtype=torch.float64))  # constants stay constant


def _adjoint_gap(measurement: Measurement, size: int) -> float:
    """|<A x, y> - <x, A^T y>| relative to their size, in float64."""
    g = torch.Generator().manual_seed(1)
    x = torch.rand(2, 1, size, size, dtype=torch.float64, generator=g)
    ax = measurement.A(x)
    y = torch.randn(ax.shape, dtype=ax.dtype, generator=g)
    left = (ax.conj() * y).sum().real if ax.is_complex() else (ax * y).sum()
    right = (x * measurement.A_adjoint(y)).sum()
    return float((left - right).abs() / left.abs())


def test_sparse_view_ct_on_a_coarse_grid_has_its_adjoint():
    fine = Measurement(Radon(32, 24, backend="torch"), ViewMask(24, view_indices(24, 7)))
    coarse = on_grid(fine, 12, 32)
    assert coarse.A(torch.zeros(1, 1, 12, 12, dtype=torch.float64)).shape == (1, 1, 7, fine.transform.geometry.n_detectors)
    assert _adjoint_gap(coarse, 12) < 1e-10


def test_kspace_on_a_coarse_grid_has_its_adjoint_and_same_data():
    fine = Measurement(Fourier(real=True), kspace_column_mask(24, 4, seed=0))
    coarse = on_grid(fine, 8, 24)
    assert _adjoint_gap(coarse, 8) < 1e-10
    x = torch.rand(1, 1, 8, 8, dtype=torch.float64)
    up = torch.nn.functional.interpolate(x, size=(24, 24), mode="bilinear", align_corners=False)
    assert torch.allclose(coarse.A(x), fine.A(up), atol=1e-12)  # the same measurement, seen from 8²


def test_metal_mask_and_inverse_on_a_coarse_grid():
    radon = Radon(32, 32, backend="torch")
    mask = torch.ones(1, 1, 32, radon.geometry.n_detectors, dtype=torch.bool)
    mask[..., 20:24] = False
    coarse = on_grid(Measurement(radon, BooleanMask(mask)), 16, 32)
    assert _adjoint_gap(coarse, 16) < 1e-10
    # T^-1 is the area average of FBP: a smooth disc comes back close to itself on the coarse grid
    yy, xx = torch.meshgrid(torch.linspace(-1, 1, 16), torch.linspace(-1, 1, 16), indexing="ij")
    disc = (0.5 * (1 - (xx ** 2 + yy ** 2) / 0.5).clamp(min=0)).view(1, 1, 16, 16).double()
    back = coarse.T_inv(coarse.T(disc))
    assert float((back - disc).abs().mean()) < 0.1 * float(disc.mean())


@pytest.mark.parametrize("coarse, fine", [(8, 16), (5, 12), (7, 7)])
def test_area_matrix_integrates_the_pixels_it_covers(coarse, fine):
    k = area_matrix(coarse, fine)
    assert torch.allclose(k.sum(dim=1), torch.ones(coarse, dtype=torch.float64))  # constants stay constant
    every_pixel_once = torch.full((fine,), coarse / fine, dtype=torch.float64)
    assert torch.allclose(k.sum(dim=0), every_pixel_once)
    if fine % coarse == 0:  # an integer factor: torch's area pooling
        x = torch.rand(1, 1, fine, fine, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
        expected = torch.nn.functional.interpolate(x, size=(coarse, coarse), mode="area")
        assert torch.allclose(k @ x @ k.T, expected, atol=1e-12)


def test_a_finer_prior_grid_sees_the_measurement_through_the_area_average():
    """A 24² prior grid for a 12² k-space measurement: A R with R the 2x2 average, an exact adjoint, and T^-1
    brought back to the fine grid by interpolation."""
    fine = Measurement(Fourier(real=True), kspace_column_mask(12, 4, seed=0))
    finer = on_grid(fine, 24, 12)
    assert _adjoint_gap(finer, 24) < 1e-10
    x = torch.rand(1, 1, 24, 24, dtype=torch.float64)
    assert torch.allclose(finer.A(x), fine.A(torch.nn.functional.avg_pool2d(x, 2)), atol=1e-12)
    assert finer.T_inv(finer.T(x)).shape == (1, 1, 24, 24)


def test_grid_sides_must_be_positive():
    with pytest.raises(ValueError, match="grid sides"):
        Regridded(Fourier(), 0, 32)


def test_fbp_window_follows_the_fine_transform():
    ct = on_grid(Measurement(Radon(32, 24, backend="torch"), ViewMask(24, view_indices(24, 7))), 16, 32)
    assert ct.with_window("hann").transform.window == "hann"
    mri = on_grid(Measurement(Fourier(real=True), kspace_column_mask(24, 4, seed=0)), 8, 24)
    with pytest.raises(ValueError, match="FBP window"):
        mri.with_window("hann")
