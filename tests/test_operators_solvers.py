"""operators.solvers: CG, CGLS and the power iteration, alone and through Measurement."""
import numpy as np
import pytest
import torch

from operators import sparse_view_ct, undersampled_mri
from operators.solvers import cgls, conjugate_gradient, operator_norm_squared, per_image_dot


def images(size: int, batch: int = 2) -> torch.Tensor:
    """Positive test images (B, 1, size, size): an ellipse on a ramp, shifted and brighter per batch item."""
    grid = torch.linspace(-1, 1, size)
    yy, xx = torch.meshgrid(grid, grid, indexing="ij")
    return torch.stack([((xx - 0.2 * b) ** 2 + 0.5 * yy ** 2 < 0.5).float() * (0.5 + 0.1 * b) + 0.1 * xx.abs()
                        for b in range(batch)])[:, None]


def test_per_image_dot_is_the_real_inner_product_of_each_image():
    a = torch.randn(3, 1, 4, 5, dtype=torch.complex64)
    b = torch.randn(3, 1, 4, 5, dtype=torch.complex64)
    expected = torch.stack([torch.vdot(a[i].flatten(), b[i].flatten()).real for i in range(3)])
    assert torch.allclose(per_image_dot(a, b).float(), expected, rtol=1e-5)
    assert per_image_dot(a.real, a.real).dtype == torch.float64


def test_conjugate_gradient_solves_a_small_spd_system():
    generator = torch.Generator().manual_seed(0)
    m = torch.randn(2, 8, 8, generator=generator, dtype=torch.float64)
    spd = m @ m.transpose(1, 2) + torch.eye(8, dtype=torch.float64)  # one SPD matrix per image
    x_true = torch.randn(2, 1, 8, 1, generator=generator, dtype=torch.float64)

    def normal(v):
        return (spd @ v[:, 0])[:, None]

    x = conjugate_gradient(normal, normal(x_true), torch.zeros_like(x_true), 8, rtol=1e-12)
    assert torch.allclose(x, x_true, rtol=1e-8, atol=1e-8)  # n steps solve an n x n system


def test_cgls_on_sparse_view_ct_decreases_the_residual_and_reaches_tol():
    m = sparse_view_ct(32, 8)
    y = m.A(images(32))
    residuals = []
    x, info = cgls(m.A, m.A_adjoint, y, None, 30,
                   callback=lambda k, xk: residuals.append((m.A(xk) - y).flatten(1).norm(dim=1)))
    residuals = torch.stack(residuals)
    assert x.shape == (2, 1, 32, 32) and info["iterations"] == 30 and len(residuals) == 30
    assert (residuals.diff(dim=0) <= 1e-5 * y.norm()).all()  # monotone up to float32 round-off
    assert (residuals[-1] < 0.1 * y.flatten(1).norm(dim=1)).all()
    x, info = cgls(m.A, m.A_adjoint, y.double(), None, 500, tol=1e-3)
    assert info["iterations"] < 500 and info["relative_residual"] <= 1e-3
    true = ((m.A(x) - y.double()).flatten(1).norm(dim=1) / y.double().flatten(1).norm(dim=1)).max()
    assert true <= 1.01e-3


def test_cgls_solves_mri_in_two_steps_and_then_stops():
    # For real images A^H A = F^H (M + M')/2 F (M' the mask mirrored to the conjugate
    # frequencies): eigenvalues 1 on paired columns and 1/2 on unpaired ones, so two steps
    # solve it, to the minimum-norm solution (a symmetric mask would take one).
    m = undersampled_mri(32, 4)
    y = m.A(images(32).double())
    calls = []
    x, info = cgls(m.A, m.A_adjoint, y, None, 20, callback=lambda k, xk: calls.append(k))
    assert calls == list(range(20))  # called for every iteration, also after the early end
    assert info["iterations"] == 2 and info["relative_residual"] < 1e-12
    def gram(v):
        return m.A_adjoint(m.A(v))

    # minimum norm: x lies in the range of A^H, on which 3 G - 2 G^2 (G = A^H A) is the identity
    assert torch.allclose(3 * gram(x) - 2 * gram(gram(x)), x, atol=1e-12)
    assert torch.allclose(m.A_dagger(y.to(torch.complex64), iterations=20), x.float(), atol=1e-6)


@pytest.mark.parametrize("problem", ["ct", "mri"])
def test_cgls_treats_each_image_on_its_own(problem):
    m = sparse_view_ct(32, 8) if problem == "ct" else undersampled_mri(32, 4)
    x = images(32, 3)
    y = m.A(x)
    together = m.A_dagger(y, iterations=15)
    alone = torch.cat([m.A_dagger(y[i:i + 1], iterations=15) for i in range(3)])
    # Per-image sums run in float64, so only the operator's float32 round-off could set a batch apart (one
    # image takes the CPU's matrix-vector kernel, a batch the matrix-matrix one: another summation order):
    # eps_32 ~ 1.2e-7 relative, grown at most by the condition number ~1e4 of the system, 1.2e-3.
    assert torch.allclose(together, alone, atol=1.2e-3 * float(x.abs().max()))


def test_cgls_with_tol_stops_each_image_on_its_own():
    m = sparse_view_ct(32, 8)
    x_true = images(32).double()
    y = m.A(x_true)
    x0 = torch.stack([torch.zeros_like(x_true[0]), x_true[1]])  # the second image starts solved
    x, info = cgls(m.A, m.A_adjoint, y, x0, 500, tol=1e-4)
    assert 0 < info["iterations"] < 500 and info["relative_residual"] <= 1e-4
    assert torch.equal(x[1], x_true[1])  # never stepped
    assert (m.A(x[:1]) - y[:1]).norm() <= 1.01e-4 * y[:1].norm()


def test_power_iteration_matches_the_largest_eigenvalue():
    m = sparse_view_ct(16, 6)
    basis = torch.eye(16 * 16, dtype=torch.float64).reshape(-1, 1, 16, 16)
    matrix = m.A(basis).reshape(basis.shape[0], -1).T.numpy()  # A as (measurements, pixels)
    expected = np.linalg.eigvalsh(matrix.T @ matrix).max()
    like = torch.zeros(2, 1, 16, 16, dtype=torch.float64)
    value = m.norm_squared(like, iterations=100)
    assert value.shape == (2, 1, 1, 1)
    assert torch.allclose(value, torch.full_like(value, expected), rtol=1e-3)
    assert torch.equal(value, operator_norm_squared(m.A, m.A_adjoint, like, 100))  # deterministic
    mri = undersampled_mri(16, 4)
    assert torch.allclose(mri.norm_squared(like.float()), torch.ones(2, 1, 1, 1), rtol=1e-5)  # a 0/1 mask
