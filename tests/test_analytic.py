"""Analytic priors: exact perturbed scores, closed-form posteriors, metadata."""
import math

import pytest
import torch

import operators
from priors.analytic import GaussianMixturePrior, GaussianPrior, squared_exponential_basis


def smooth_prior(size: int = 8, length: float = 2.0, std: float = 0.3, nugget: float = 0.05) -> GaussianPrior:
    vecs, vals = squared_exponential_basis(size, length, std, nugget)
    return GaussianPrior(torch.full((size * size,), 0.2), vecs, vals)


def autograd_score(prior, x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
    x = x.clone().requires_grad_(True)
    prior.log_prob(x, sigma).sum().backward()
    return x.grad


def test_squared_exponential_basis_is_orthonormal_and_matches_the_kernel():
    vecs, vals = squared_exponential_basis(5, 1.5, 0.4, 0.1)
    assert torch.allclose(vecs.T @ vecs, torch.eye(25, dtype=torch.float64), atol=1e-10)
    grid = torch.stack(torch.meshgrid(torch.arange(5.0), torch.arange(5.0), indexing="ij"), -1).reshape(-1, 2)
    dist2 = ((grid[:, None] - grid[None]) ** 2).sum(-1).double()
    expected = 0.16 * torch.exp(-dist2 / (2 * 1.5 ** 2)) + 0.01 * torch.eye(25, dtype=torch.float64)
    assert torch.allclose((vecs * vals) @ vecs.T, expected, atol=1e-10)


@pytest.mark.parametrize("basis", ["full", "low-rank", "pixel"])
def test_gaussian_score_is_the_gradient_of_the_perturbed_log_density(basis):
    size = 6
    if basis == "pixel":
        prior = GaussianPrior(torch.zeros(1, size, size), None, torch.linspace(0.1, 2.0, size * size), sigma_max=10.0)
    else:
        vecs, vals = squared_exponential_basis(size, 1.5, 0.5, 0.05)
        if basis == "low-rank":
            top = vals.argsort()[-10:]
            vecs, vals = vecs[:, top], vals[top]
        prior = GaussianPrior(torch.randn(size * size, dtype=torch.float64), vecs, vals, sigma_max=10.0)
    x = torch.randn(3, 1, size, size, dtype=torch.float64)
    sigma = torch.tensor([0.01, 0.5, 4.0], dtype=torch.float64)
    assert torch.allclose(prior.score(x, sigma), autograd_score(prior, x, sigma), rtol=1e-6, atol=1e-8)
    assert prior.score(x.float(), sigma.float()).dtype == torch.float32


def test_gaussian_score_reaches_the_closed_form_denoising_score_matching_minimum():
    # E || sigma s(x0 + sigma z) + z ||^2 = D - sigma^2 tr((C + sigma^2 I)^-1) for the exact score.
    prior = smooth_prior()
    generator = torch.Generator().manual_seed(0)
    for sigma in (0.05, 0.3, 2.0):
        x0 = prior.sample(20000, generator)
        z = torch.randn(x0.shape, generator=generator, dtype=torch.float64)
        s = prior.score(x0 + sigma * z, torch.full((x0.shape[0],), sigma, dtype=torch.float64))
        loss = ((sigma * s + z) ** 2).reshape(x0.shape[0], -1).sum(1).mean()
        expected = prior.dim - sigma ** 2 * (1 / (prior.eigvals + sigma ** 2)).sum()
        assert abs(float(loss) - float(expected)) < 0.02 * float(expected)
        assert float(expected) < prior.dim - 1  # the minimum is well below a zero score's loss


def test_mixture_score_matches_autograd_and_accepts_2d_points():
    means = torch.tensor([[-2.0, 0.0], [1.0, 2.0], [2.0, -1.0]])
    covs = torch.stack([torch.tensor([[0.5, 0.2], [0.2, 0.3]]), 0.2 * torch.eye(2),
                        torch.tensor([[0.1, 0.0], [0.0, 0.6]])])
    prior = GaussianMixturePrior(means, weights=torch.tensor([0.2, 0.5, 0.3]), covariances=covs, sigma_max=8.0)
    x = torch.randn(4, 1, 1, 2, dtype=torch.float64)
    sigma = torch.tensor([0.01, 0.1, 1.0, 5.0], dtype=torch.float64)
    assert prior.score(x, sigma).shape == (4, 1, 1, 2)
    assert torch.allclose(prior.score(x, sigma), autograd_score(prior, x, sigma), rtol=1e-6, atol=1e-8)
    iso = GaussianMixturePrior(means, stds=torch.tensor([0.5, 0.3, 0.2]), sigma_max=8.0)
    assert torch.allclose(iso.score(x, sigma), autograd_score(iso, x, sigma), rtol=1e-6, atol=1e-8)
    assert torch.allclose(iso.responsibilities(x, sigma).sum(1), torch.ones(4, dtype=torch.float64))


def test_mixture_samples_follow_the_weights():
    means = torch.tensor([[-5.0, 0.0], [5.0, 0.0]])
    prior = GaussianMixturePrior(means, stds=torch.tensor([0.5, 0.5]), weights=torch.tensor([0.3, 0.7]))
    x = prior.sample(20000, torch.Generator().manual_seed(0)).reshape(-1, 2)
    assert abs(float((x[:, 0] > 0).double().mean()) - 0.7) < 0.02
    assert prior.sde.sigma_max > 10  # the largest pairwise distance spans both modes


def test_metadata_and_default_sigma_max_are_deterministic():
    a, b = smooth_prior(), smooth_prior()
    assert a.sde.sigma_max == b.sde.sigma_max
    # Pairwise distances of N(mu, C) samples concentrate near sqrt(2 tr C).
    assert 0.8 * math.sqrt(2 * float(a.eigvals.sum())) < a.sde.sigma_max < 2.5 * math.sqrt(2 * float(a.eigvals.sum()))
    assert a.meta["modality"] == "synthetic" and a.meta["size"] == 8 and a.meta["defaults"] == {}
    assert {"id", "intensity"} <= set(a.meta)
    with pytest.raises(ValueError):
        GaussianPrior(torch.zeros(10), None, torch.ones(10))  # not square, no shape


def test_gaussian_samples_have_the_prior_covariance():
    prior = smooth_prior(size=4)
    x = prior.sample(40000, torch.Generator().manual_seed(1)).reshape(40000, -1)
    assert torch.allclose(x.mean(0), prior.mean, atol=0.01)
    assert torch.allclose(torch.cov(x.T), prior.covariance(), atol=0.006)


def dense(measurement, size: int) -> torch.Tensor:
    basis = torch.eye(size * size).reshape(-1, 1, size, size)
    return measurement.A(basis).reshape(size * size, -1).T.double()


def test_posterior_matches_the_textbook_formula_with_noise():
    size, noise = 8, 0.05
    prior = smooth_prior(size)
    m = operators.sparse_view_ct(size, 3, noise_std=noise)
    y = m.measure(prior.sample(2, torch.Generator().manual_seed(0)).float(), torch.Generator().manual_seed(1))
    mean, std = prior.posterior(m, y)
    a, c = dense(m, size), prior.covariance()
    gain = c @ a.T @ torch.linalg.inv(a @ c @ a.T + noise ** 2 * torch.eye(a.shape[0], dtype=torch.float64))
    expected = prior.mean[:, None] + gain @ (y.reshape(2, -1).double().T - (a @ prior.mean)[:, None])
    assert torch.allclose(mean.reshape(2, -1), expected.T, atol=1e-5)
    expected_var = torch.diag(c - gain @ a @ c)
    assert torch.allclose(std[0].reshape(-1) ** 2, expected_var, atol=1e-6)


@pytest.mark.parametrize("task", ["mri", "ct"])
def test_noiseless_posterior_mean_fits_the_data_and_shrinks_the_uncertainty(task):
    size = 8
    prior = smooth_prior(size)
    m = operators.undersampled_mri(size, 4) if task == "mri" else operators.sparse_view_ct(size, 3)
    x = prior.sample(1, torch.Generator().manual_seed(2)).float()
    y = m.measure(x)
    mean, std = prior.posterior(m, y)
    assert float((m.A(mean.float()) - y).abs().max()) < 1e-4 * float(y.abs().max())
    prior_std = torch.diag(prior.covariance()).sqrt().reshape(1, 1, size, size)
    assert (std <= prior_std + 1e-9).all() and float(std.mean()) < 0.8 * float(prior_std.mean())
    assert float((mean - x).norm()) < float((prior.mean.reshape(1, 1, size, size) - x).norm())
