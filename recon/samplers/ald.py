""""ALD + ours": annealed Langevin dynamics with the proximal step.

At each noise level sigma_i (largest first), ``corrector_steps`` times: the
data step, then a Langevin step with the annealed step size
eps = 2 (snr sigma_i)^2 (Song & Ermon's schedule as the released code writes
it). NFE = N corrector_steps; the paper uses N = 700 and 3 steps per level.
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
            x = ctx.data_step(x, sigma)
            x = langevin_step(x, ctx.score(x, sigma), eps, ctx.noise(x))
        ctx.level_done(i, x)
    return x
