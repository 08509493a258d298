"""The VE SDE's discretisation (priors.discretisation): one predictor-corrector level, step sizes."""
import math

import torch

from priors.discretisation import DEFAULT_SNR, langevin_step, pc_level, reverse_diffusion_step, snr_step_size
from priors.sde import VESDE


def test_pc_levels_on_a_gaussian_prior_end_at_its_variance():
    # 4096 one-pixel samples of the prior N(0, s0^2): the score at sigma is -x / (s0^2 + sigma^2). The
    # "batch" step norm, as for 2-D points: a one-pixel ||grad|| near 0 would blow up a per-image step.
    s0 = 0.5
    generator = torch.Generator().manual_seed(0)

    def score(x, sigma):
        return -x / (s0 ** 2 + sigma ** 2)

    def noise(like):
        return torch.randn(like.shape, generator=generator, dtype=like.dtype)

    sigmas = VESDE(sigma_min=0.01, sigma_max=20.0).discrete_sigmas(200).tolist()
    x = sigmas[0] * torch.randn((4096, 1, 1, 1), generator=generator, dtype=torch.float64)
    for sigma, sigma_next in zip(sigmas, sigmas[1:] + [0.0]):
        x = pc_level(x, score, sigma, sigma_next, DEFAULT_SNR, 1, noise, step_norm="batch")
    n = x.numel()
    standard_error = s0 ** 2 * math.sqrt(2 / (n - 1))  # of the sample variance of n normal values
    assert abs(float(x.var()) - s0 ** 2) < 5 * standard_error
    assert abs(float(x.mean())) < 5 * s0 / math.sqrt(n)


def test_pc_level_is_data_step_corrector_times_then_data_step_and_predictor():
    generator = torch.Generator().manual_seed(2)
    draws = [torch.randn(2, 1, 3, 3, generator=generator) for _ in range(3)]
    calls = []

    def score(x, sigma):
        calls.append(("score", sigma))
        return -x / (1 + sigma ** 2)

    def noise(like):
        calls.append(("noise",))
        return draws[sum(call == ("noise",) for call in calls) - 1]

    def data_step(x, sigma):
        calls.append(("data", sigma))
        return 0.9 * x + 0.01 * sigma

    x0 = torch.randn(2, 1, 3, 3, generator=generator)
    x = pc_level(x0, score, 2.0, 1.0, 0.5, 2, noise, data_step)
    assert calls == [("data", 2.0), ("score", 2.0), ("noise",)] * 3

    expected = x0
    for z in draws[:2]:
        expected = 0.9 * expected + 0.02
        grad = -expected / 5
        expected = langevin_step(expected, grad, snr_step_size(grad, z, 0.5), z)
    expected = 0.9 * expected + 0.02
    expected = reverse_diffusion_step(expected, -expected / 5, 2.0, 1.0, draws[2])
    torch.testing.assert_close(x, expected)


def test_snr_step_size_per_image_and_per_batch():
    generator = torch.Generator().manual_seed(1)
    grad = torch.randn(3, 1, 4, 5, generator=generator)
    z = torch.randn(3, 1, 4, 5, generator=generator)
    snr = 0.3
    z_norm = z.flatten(1).norm(dim=1)
    g_norm = grad.flatten(1).norm(dim=1)
    eps = snr_step_size(grad, z, snr)
    assert eps.shape == (3, 1, 1, 1)
    torch.testing.assert_close(eps.flatten(), 2 * (snr * z_norm / g_norm) ** 2)
    batch = snr_step_size(grad, z, snr, "batch")
    torch.testing.assert_close(batch.flatten(), (2 * (snr * z_norm.mean() / g_norm.mean()) ** 2).expand(3))
