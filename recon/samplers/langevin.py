"""The "Langevin" baseline of Jalal et al. (2021), in the released code's form.

Annealed Langevin dynamics on the prior score plus the Gaussian likelihood
gradient against the clean measurement,
g = s(x, sigma_i) - A^H (A x - y) / ((rho sigma_i)^2 L),
with eps = 2 (snr sigma_i)^2 and ``corrector_steps`` steps per level (paper:
700 levels x 3 steps). No proximal step. NFE = N corrector_steps.
"""
from __future__ import annotations

import torch

from priors.discretisation import langevin_step
from recon.samplers import core


def run(x: torch.Tensor, ctx: core.Context) -> torch.Tensor:
    """Sample from x ~ N(0, sigma_max^2 I) (B, 1, H, W) down to the last level."""
    for i, sigma, _ in ctx.levels():
        eps = 2 * (ctx.options.snr * sigma) ** 2
        for _ in range(ctx.options.corrector_steps):
            grad = ctx.score(x, sigma) + ctx.likelihood.grad(x, sigma)
            x = langevin_step(x, grad, eps, ctx.noise(x))
        ctx.level_done(i, x)
    return x
