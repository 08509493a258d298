"""Fourier transform, masks and A = P(Lambda) T."""
import numpy as np
import pytest
import torch

from operators import (Fourier, Measurement, Radon, ViewMask, equispaced_columns, fft2c, ifft2c,
                       metal_trace_ct, random_columns, sparse_view_ct, undersampled_mri, view_indices)


def fastmri_equispaced_count(n_cols: int, accel: float, center_fraction: float, offset: int) -> int:
    """Column count by fastMRI's formula (adjusted acceleration), written out independently."""
    num_low = round(n_cols * center_fraction)
    adjusted = accel * (num_low - n_cols) / (num_low * accel - n_cols)
    mask = np.zeros(n_cols, dtype=bool)
    pad = (n_cols - num_low + 1) // 2
    mask[pad:pad + num_low] = True
    mask[np.around(np.arange(offset, n_cols - 1, adjusted)).astype(int)] = True
    return int(mask.sum())


def test_fourier_is_unitary_and_inverts():
    x = torch.randn(2, 1, 24, 24, dtype=torch.complex128)
    k = fft2c(x)
    assert torch.allclose(k.abs().pow(2).sum(), x.abs().pow(2).sum())
    assert (ifft2c(k) - x).abs().max() < 1e-6


def test_fourier_centre_is_dc():
    x = torch.ones(1, 1, 16, 16)
    k = Fourier().forward(x)
    assert abs(k[0, 0, 8, 8].real - 16.0) < 1e-5
    assert k.abs().sum() - k[0, 0, 8, 8].abs() < 1e-4


@pytest.mark.parametrize("width", [128, 240, 320])
@pytest.mark.parametrize("accel", [4, 8, 24])
def test_equispaced_counts_match_fastmri(width, accel):
    cf = 0.08 if accel < 8 else 0.04
    num_low = round(width * cf)
    for seed in range(3):
        mask = equispaced_columns(width, accel, seed=seed)
        pad = (width - num_low + 1) // 2
        assert mask[pad:pad + num_low].all()
        assert abs(mask.sum() - width / accel) <= max(2, 0.1 * width / accel)
        if num_low * accel == width:  # fastMRI's formula divides by zero: the centre is the whole budget
            assert mask.sum() == num_low
            continue
        adjusted = accel * (num_low - width) / (num_low * accel - width)
        offset = np.random.default_rng(seed).integers(0, max(1, round(adjusted)))
        assert mask.sum() == fastmri_equispaced_count(width, accel, cf, offset)


def test_random_mask_is_seeded_and_near_the_rate():
    a, b = random_columns(320, 4, seed=1), random_columns(320, 4, seed=1)
    assert (a == b).all() and not (a == random_columns(320, 4, seed=2)).all()
    assert abs(a.sum() - 80) < 25


def test_bad_mask_arguments():
    with pytest.raises(ValueError, match="acceleration"):
        equispaced_columns(128, 0.5)
    with pytest.raises(ValueError, match="only 10"):
        view_indices(10, 11)
    with pytest.raises(ValueError, match="k-space mask"):
        undersampled_mri(32, 4, kind="radial")


def test_view_indices_follow_the_paper():
    idx = view_indices(320, 23)
    assert idx[0] == 0 and idx[-1] == 319 and len(set(idx)) == 23
    assert np.array_equal(idx, np.round(np.linspace(0, 319, 23)).astype(int))


def _adjoint_error(m: Measurement, x: torch.Tensor) -> float:
    y = m.A(x)
    r = torch.randn_like(y.real) if not y.is_complex() else torch.randn_like(y)
    r = m.P(m.P_inv(r))
    lhs = (m.A(x).conj() * r).sum().real if y.is_complex() else (m.A(x) * r).sum()
    rhs = (x * m.A_adjoint(r)).sum()
    return abs(float(lhs - rhs)) / abs(float(lhs))


@pytest.mark.parametrize("backend", ["matrix", "astra", "torch"])
def test_sparse_view_adjoint(backend):
    m = sparse_view_ct(32, 7, backend=backend)
    x = torch.rand(2, 1, 32, 32, dtype=torch.float32 if backend == "astra" else torch.float64)
    assert m.A(x).shape == (2, 1, 7, m.transform.geometry.n_detectors)
    assert _adjoint_error(m, x) < 1e-5


@pytest.mark.parametrize("kind", ["equispaced", "random"])
def test_mri_adjoint(kind):
    m = undersampled_mri(32, 4, kind=kind)
    x = torch.rand(2, 1, 32, 32, dtype=torch.float64)
    assert _adjoint_error(m, x) < 1e-5


def test_metal_trace_adjoint_and_mask():
    metal = torch.zeros(2, 1, 32, 32, dtype=torch.bool)
    metal[0, 0, 10:13, 20:23] = True
    metal[1, 0, 15:17, 5:9] = True
    m = metal_trace_ct(metal)
    x = torch.rand(2, 1, 32, 32, dtype=torch.float64)
    assert _adjoint_error(m, x) < 1e-5
    lam = m.mask(m.T(x))
    # every view crosses the metal, so every view loses some bins, but most bins stay
    assert (~lam).any(dim=-1).all()
    assert lam.float().mean() > 0.8
    # the metal itself projects to zero inside the measured set
    assert float(m.A(metal.double()).abs().max()) == 0.0


def test_measure_adds_noise_only_where_measured():
    m = undersampled_mri(32, 4, noise_std=0.1)
    x = torch.rand(1, 1, 32, 32)
    g = torch.Generator().manual_seed(0)
    y = m.measure(x, g)
    unmeasured = ~m.mask(y).expand_as(y)
    assert y[unmeasured].abs().max() == 0
    assert 0.05 < float((y - m.A(x))[~unmeasured].real.std()) < 0.15
    y2 = m.measure(x, torch.Generator().manual_seed(0))
    assert torch.equal(y, y2)


def test_projection_identities():
    m = sparse_view_ct(32, 9)
    full = torch.rand(1, 1, 32, m.transform.geometry.n_detectors)
    assert torch.equal(m.P(m.P_inv(m.P(full))), m.P(full))
    lam = m.mask(full)
    assert torch.equal(m.P_inv(m.P(full)), full * lam)
    assert isinstance(m.sampling, ViewMask) and isinstance(m.transform, Radon)


@pytest.mark.parametrize("backend", ["matrix", "astra", "torch"])
def test_sparse_view_fast_path_equals_select_of_full(backend):
    m = sparse_view_ct(40, 11, backend=backend)
    x = torch.rand(2, 1, 40, 40)
    assert torch.allclose(m.A(x), m.P(m.T(x)), atol=1e-4)
    y = torch.rand_like(m.A(x))
    assert torch.allclose(m.A_adjoint(y), m.T_adjoint(m.P_inv(y)), atol=1e-3)
