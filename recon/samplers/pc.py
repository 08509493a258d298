"""Predictor-corrector sampling for the VE SDE with the proximal step (Alg. B.4 + B.6, Sec. 8.3).

At each noise level sigma_i (largest first): ``corrector_steps`` times the
data step then one Langevin corrector step with eps = 2 (snr ||z|| / ||s||)^2
per image; then the data step and one reverse-diffusion predictor step to the
next level (0 after the last). The corrector and the predictor both use the
score at sigma_i, as in the released code. NFE = N (corrector_steps + 1).
"""
from __future__ import annotations

import torch

from priors.discretisation import pc_level
from recon.samplers import core


def run(x: torch.Tensor, ctx: core.Context) -> torch.Tensor:
    """Sample from x ~ N(0, sigma_max^2 I) (B, 1, H, W) down to the last level."""
    for i, sigma, sigma_next in ctx.levels():
        x = pc_level(x, ctx.score, sigma, sigma_next, ctx.options.snr, ctx.options.corrector_steps, ctx.noise,
                     ctx.data_step, ctx.options.step_norm)
        ctx.level_done(i, x)
    return x
