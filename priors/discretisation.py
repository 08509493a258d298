"""The VE SDE's discretisation: Langevin corrector and reverse-diffusion predictor steps (Alg. B.4, B.6).

:func:`pc_level` is one predictor-corrector noise level, shared by the
reconstruction samplers (with a data step) and the training sample grids
(without one).
"""
from __future__ import annotations

from typing import Callable

import torch

DEFAULT_SNR = 0.16
"""The released score_sde code's VE corrector snr, used for unconditional sampling."""


def per_image_norm(x: torch.Tensor) -> torch.Tensor:
    """Euclidean norm of each image, shaped (B, 1, 1, 1) for broadcasting."""
    return x.reshape(x.shape[0], -1).norm(dim=1).reshape(-1, *([1] * (x.dim() - 1)))


STEP_NORMS = ("image", "batch")


def snr_step_size(grad: torch.Tensor, z: torch.Tensor, snr: float, norm: str = "image") -> torch.Tensor:
    """Langevin step of Alg. B.6: eps = 2 (snr ||z|| / ||grad||)^2, (B, 1, 1, 1).

    ``norm="image"`` uses each image's own norms; ``"batch"`` their means over
    the batch (the released code; needed when images are tiny, e.g. 2-D points,
    where a per-point ||grad|| near a mode is close to 0).
    """
    z_norm, g_norm = per_image_norm(z), per_image_norm(grad)
    if norm == "batch":
        z_norm, g_norm = z_norm.mean().expand_as(z_norm), g_norm.mean().expand_as(g_norm)
    return 2 * (snr * z_norm / g_norm.clamp_min(1e-30)) ** 2


def langevin_step(x: torch.Tensor, grad: torch.Tensor, eps: torch.Tensor | float, z: torch.Tensor) -> torch.Tensor:
    """x + eps grad + sqrt(2 eps) z."""
    eps = torch.as_tensor(eps, dtype=x.dtype, device=x.device)
    return x + eps * grad + (2 * eps).sqrt() * z


def reverse_diffusion_step(x: torch.Tensor, grad: torch.Tensor, sigma: float, sigma_next: float,
                           z: torch.Tensor) -> torch.Tensor:
    """Reverse-diffusion predictor of the VE SDE (Alg. B.4 lines 3-5), from sigma down to sigma_next."""
    variance = sigma ** 2 - sigma_next ** 2
    return x + variance * grad + variance ** 0.5 * z


Score = Callable[[torch.Tensor, float], torch.Tensor]
Noise = Callable[[torch.Tensor], torch.Tensor]
DataStep = Callable[[torch.Tensor, float], torch.Tensor]


def pc_level(x: torch.Tensor, score: Score, sigma: float, sigma_next: float, snr: float, corrector_steps: int,
             noise: Noise, data_step: DataStep | None = None, step_norm: str = "image") -> torch.Tensor:
    """One predictor-corrector noise level of the VE SDE, from ``sigma`` down to ``sigma_next``.

    ``corrector_steps`` times the data step then a Langevin corrector step with
    eps = 2 (snr ||z|| / ||s||)^2 (:func:`snr_step_size`, ``step_norm``); then
    the data step and the reverse-diffusion predictor step. Both use the score
    at ``sigma``, as in the released code: NFE = corrector_steps + 1.

    Args:
        x: the state (B, ...) at ``sigma``.
        score: ``score(x, sigma)``, the prior score at the scalar level ``sigma``.
        noise: ``noise(like)``, standard normal noise shaped like ``like``.
        data_step: ``data_step(x, sigma) -> x`` (None: the identity, unconditional sampling).

    Returns:
        The state at ``sigma_next`` (0 after the last level: no predictor noise left).
    """
    def data(v: torch.Tensor) -> torch.Tensor:
        return v if data_step is None else data_step(v, sigma)

    for _ in range(corrector_steps):
        x = data(x)
        grad = score(x, sigma)
        z = noise(x)
        x = langevin_step(x, grad, snr_step_size(grad, z, snr, step_norm), z)
    x = data(x)
    return reverse_diffusion_step(x, score(x, sigma), sigma, sigma_next, noise(x))
