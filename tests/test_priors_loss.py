"""DSM loss against the closed form for Gaussian data with its exact score."""
import math

import torch

from priors.losses import dsm_loss, sample_times
from priors.sde import T_EPS, VESDE

MU, S, D = 0.3, 0.5, 16  # data N(MU, S^2 I) on 4x4 images


def gaussian_score(x: torch.Tensor, sigma: torch.Tensor, scale: float = 1.0) -> torch.Tensor:
    """Exact score of N(MU, (S^2 + sigma^2) I), times ``scale``."""
    var = S ** 2 + sigma.view(-1, 1, 1, 1) ** 2
    return -scale * (x - MU) / var


def closed_form(sde: VESDE) -> float:
    """D E_t[S^2 / (S^2 + sigma(t)^2)], t ~ U(eps, 1), integrated analytically."""
    b = 2 * math.log(sde.sigma_max / sde.sigma_min)

    def antiderivative(t: float) -> float:
        sigma2 = (sde.sigma_min * (sde.sigma_max / sde.sigma_min) ** t) ** 2
        return t - math.log1p(sigma2 / S ** 2) / b

    return D * (antiderivative(1.0) - antiderivative(T_EPS)) / (1 - T_EPS)


def test_dsm_loss_of_exact_gaussian_score_is_the_closed_form_minimum():
    sde = VESDE(sigma_max=10.0)
    gen = torch.Generator().manual_seed(1)
    n = 40_000
    x0 = MU + S * torch.randn(n, 1, 4, 4, generator=gen)
    t = sample_times(n, generator=gen)
    z = torch.randn(n, 1, 4, 4, generator=gen)
    sigma = sde.sigma(t).view(-1, 1, 1, 1)
    per_image = (sigma * gaussian_score(x0 + sigma * z, sde.sigma(t)) + z).square().flatten(1).sum(1)
    tol = 4 * float(per_image.std()) / math.sqrt(n)

    loss = float(dsm_loss(gaussian_score, x0, t, z, sde))
    assert abs(loss - float(per_image.mean())) < 1e-4 * loss
    expected = closed_form(sde)
    assert abs(loss - expected) < tol, (loss, expected, tol)
    # A fixed noise level: D S^2 / (S^2 + sigma^2) exactly in expectation.
    t_fixed = torch.full((n,), 0.3)
    sig = float(sde.sigma(t_fixed[:1]))
    assert abs(float(dsm_loss(gaussian_score, x0, t_fixed, z, sde)) - D * S ** 2 / (S ** 2 + sig ** 2)) < 0.05
    # It is the minimum: mis-scaled scores lose by much more than the (paired) Monte Carlo error.
    for scale in (0.8, 1.25):
        worse = (sigma * gaussian_score(x0 + sigma * z, sde.sigma(t), scale) + z).square().flatten(1).sum(1)
        gap = worse - per_image
        assert float(gap.mean()) > 5 * float(gap.std()) / math.sqrt(n)
        assert float(dsm_loss(lambda x, s: gaussian_score(x, s, scale), x0, t, z, sde)) > loss


def test_sample_times_range():
    t = sample_times(10_000, generator=torch.Generator().manual_seed(0))
    assert float(t.min()) >= T_EPS and float(t.max()) <= 1.0
    assert abs(float(t.mean()) - 0.5) < 0.02
