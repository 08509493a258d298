"""Continuous-time denoising score matching under the VE SDE.

With x_t = x_0 + sigma(t) z and weight lambda(t) = sigma(t)^2 the objective is

    L = E_{t ~ U(eps, 1)} E_{x_0, z} || sigma(t) s(x_t, sigma(t)) + z ||^2,

summed over pixels and averaged over the batch (the official VE setting).
For data N(mu, s^2 I) in D dimensions the exact score gives
E||sigma s + z||^2 = D s^2 / (s^2 + sigma^2) at each sigma, the minimum.
"""
from __future__ import annotations

from typing import Callable

import torch

from priors.sde import T_EPS, VESDE

ScoreFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def dsm_loss(score_fn: ScoreFn, x0: torch.Tensor, t: torch.Tensor, z: torch.Tensor, sde: VESDE) -> torch.Tensor:
    """Weighted DSM loss for given times and noise.

    Args:
        score_fn: s(x (B, C, H, W), sigma (B,)) -> (B, C, H, W).
        x0: (B, C, H, W) clean images.
        t: (B,) times in [eps, 1].
        z: (B, C, H, W) standard normal noise.
        sde: the VE SDE.
    Returns:
        scalar: batch mean of the per-image sum of (sigma s + z)^2.
    """
    sigma = sde.sigma(t).to(x0.dtype)
    s4 = sigma.view(-1, *([1] * (x0.dim() - 1)))
    score = score_fn(x0 + s4 * z, sigma)
    return (s4 * score + z).square().flatten(1).sum(dim=1).mean()


def sample_times(n: int, generator: torch.Generator | None = None, device: torch.device | str = "cpu",
                 eps: float = T_EPS) -> torch.Tensor:
    """t ~ U(eps, 1), float32 (n,)."""
    return eps + (1 - eps) * torch.rand(n, generator=generator, device=device)
