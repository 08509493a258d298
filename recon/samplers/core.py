"""Pieces shared by every sampler: the counted score, noise draws, step sizes and the run context."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch
from tqdm import tqdm

from recon.samplers.consistency import DataConsistency
from recon.samplers.likelihood import GaussianLikelihood


class CountedScore:
    """Calls ``prior.score`` without autograd and counts the calls.

    Each call evaluates the network once for every image of the batch, so
    ``calls`` is the number of network evaluations (NFE) per image.
    """

    def __init__(self, prior):
        self.prior = prior
        self.calls = 0

    def __call__(self, x: torch.Tensor, sigma: float | torch.Tensor) -> torch.Tensor:
        """Score at noise level ``sigma`` (a scalar, the same for every image): (B, 1, H, W)."""
        self.calls += 1
        sigmas = torch.full((x.shape[0],), float(sigma), device=x.device, dtype=x.dtype)
        with torch.no_grad():
            return self.prior.score(x, sigmas)


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


@dataclass
class Context:
    """Everything one sampler run needs.

    Attributes:
        score: the counted prior score.
        sigmas: (N,) noise levels, geometric from sigma_max down to sigma_min.
        generator: the run's random stream (on the images' device).
        snr: corrector signal-to-noise ratio (eta).
        corrector_steps: Langevin steps per noise level.
        step_norm: ``"image"`` or ``"batch"`` norms in :func:`snr_step_size`.
        consistency: the proximal data-consistency step (None: unconditional).
        likelihood: the baselines' Gaussian likelihood gradient (None: not used).
        callback: called as ``callback(level, n_levels, x)`` after every level.
        progress: show a tqdm bar over the noise levels.
        label: the bar's description.
        eta: stochastic share of the re-noising in the fast samplers (0: deterministic).
        cg_steps: conjugate-gradient iterations of the ``dds`` data step.
        gamma: weight of ||x - x0||^2 against ||A x - y||^2 in the ``dds`` data step.
    """

    score: CountedScore
    sigmas: torch.Tensor
    generator: torch.Generator
    snr: float
    corrector_steps: int
    step_norm: str = "image"
    consistency: DataConsistency | None = None
    likelihood: GaussianLikelihood | None = None
    callback: Callable[[int, int, torch.Tensor], None] | None = None
    progress: bool = True
    label: str = "sampling"
    eta: float = 0.0
    cg_steps: int = 5
    gamma: float = 0.0

    def noise(self, like: torch.Tensor) -> torch.Tensor:
        """Standard normal noise shaped like ``like``."""
        return torch.randn(like.shape, generator=self.generator, device=like.device, dtype=like.dtype)

    def snr_step(self, grad: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        """The corrector's step size for this run's snr and norm rule."""
        return snr_step_size(grad, z, self.snr, self.step_norm)

    def levels(self):
        """Yield (index, sigma, next sigma) from the largest level down; the last next sigma is 0."""
        values = self.sigmas.tolist()
        for i, sigma in enumerate(tqdm(values, desc=self.label, unit="level", disable=not self.progress,
                                       dynamic_ncols=True)):
            yield i, sigma, values[i + 1] if i + 1 < len(values) else 0.0

    def data_step(self, x: torch.Tensor, sigma: float) -> torch.Tensor:
        """The proximal step against a fresh y_t at ``sigma`` (identity when unconditional)."""
        return x if self.consistency is None else self.consistency(x, sigma, self.generator)

    def level_done(self, index: int, x: torch.Tensor) -> None:
        if self.callback is not None:
            self.callback(index, len(self.sigmas), x)
