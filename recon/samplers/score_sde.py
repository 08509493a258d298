"""The "Score SDE" baseline (appendix B.5.9, Eq. B.36).

The PC sampler run on an approximate conditional score: the prior score plus
the Gaussian likelihood gradient against a fresh noisy measurement
y_t = y + sigma_i A z, in both the Langevin corrector (eps from the snr and
the norm of the total gradient) and the reverse-diffusion predictor. No
proximal step. NFE = N (corrector_steps + 1).
"""
from __future__ import annotations

import torch

from priors.discretisation import langevin_step, reverse_diffusion_step
from recon.samplers import core
from recon.samplers.consistency import noisy_measurement


def _conditional_score(x: torch.Tensor, sigma: float, ctx: core.Context) -> torch.Tensor:
    lik = ctx.likelihood
    y_t = noisy_measurement(lik.measurement, lik.y, sigma, x, ctx.generator)
    return ctx.score(x, sigma) + lik.grad(x, sigma, y_t)


def run(x: torch.Tensor, ctx: core.Context) -> torch.Tensor:
    """Sample from x ~ N(0, sigma_max^2 I) (B, 1, H, W) down to the last level."""
    for i, sigma, sigma_next in ctx.levels():
        for _ in range(ctx.options.corrector_steps):
            grad = _conditional_score(x, sigma, ctx)
            z = ctx.noise(x)
            x = langevin_step(x, grad, ctx.snr_step(grad, z), z)
        x = reverse_diffusion_step(x, _conditional_score(x, sigma, ctx), sigma, sigma_next, ctx.noise(x))
        ctx.level_done(i, x)
    return x
