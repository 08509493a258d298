"""Pieces shared by every sampler: the counted score, noise draws, step sizes and the run context."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch
from tqdm import tqdm

from priors.discretisation import snr_step_size
from recon.samplers.consistency import DataConsistency
from recon.samplers.likelihood import GaussianLikelihood
from recon.samplers.options import SamplerOptions
from recon.samplers.streams import SliceStreams


class CountedScore:
    """Calls ``prior.score`` without autograd and counts the network evaluations.

    Each channel of an image is an image to the prior (images (B, 2, H, W) are the real and
    imaginary parts of complex MR images), so a call evaluates the network C times for every
    image of the batch, and ``calls`` is the number of network evaluations (NFE) per image.
    """

    def __init__(self, prior):
        self.prior = prior
        self.calls = 0

    def __call__(self, x: torch.Tensor, sigma: float | torch.Tensor) -> torch.Tensor:
        """Score at noise level ``sigma`` (a scalar, the same for every image): (B, C, H, W)."""
        self.calls += x.shape[1]
        flat = x.reshape(-1, 1, *x.shape[2:])
        sigmas = torch.full((flat.shape[0],), float(sigma), device=x.device, dtype=x.dtype)
        with torch.no_grad():
            return self.prior.score(flat, sigmas).reshape(x.shape)


@dataclass
class Context:
    """Everything one sampler run needs.

    Attributes:
        score: the counted prior score.
        sigmas: (N,) noise levels, geometric from sigma_max down to sigma_min.
        generator: the run's random streams, one per slice (on the images' device).
        options: the sampler's resolved options (:mod:`recon.samplers.options`); each sampler reads its own
            (pc: ``snr``, ``corrector_steps``, ``step_norm``; dds: ``eta``, ``cg_steps``, ``gamma`` ...).
        consistency: the proximal data-consistency step (None: unconditional).
        likelihood: the baselines' Gaussian likelihood gradient (None: not used).
        callback: called as ``callback(level, n_levels, x)`` after every level.
        progress: show a tqdm bar over the noise levels.
        label: the bar's description.
    """

    score: CountedScore
    sigmas: torch.Tensor
    generator: SliceStreams
    options: SamplerOptions
    consistency: DataConsistency | None = None
    likelihood: GaussianLikelihood | None = None
    callback: Callable[[int, int, torch.Tensor], None] | None = None
    progress: bool = True
    label: str = "sampling"

    def noise(self, like: torch.Tensor) -> torch.Tensor:
        """Standard normal noise shaped like ``like``."""
        return self.generator.randn_like(like)

    def snr_step(self, grad: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        """The corrector's step size for this run's snr and norm rule."""
        return snr_step_size(grad, z, self.options.snr, self.options.step_norm)

    def levels(self):
        """Yield (index, sigma, next sigma) from the largest level down; the last next sigma is 0."""
        values = self.sigmas.tolist()
        # leave=None: the bar stays when it is the only one, and vanishes under a volume's bar over slices.
        for i, sigma in enumerate(tqdm(values, desc=self.label, unit="level", disable=not self.progress,
                                       dynamic_ncols=True, leave=None)):
            yield i, sigma, values[i + 1] if i + 1 < len(values) else 0.0

    def data_step(self, x: torch.Tensor, sigma: float) -> torch.Tensor:
        """The proximal step against a fresh y_t at ``sigma`` (identity when unconditional)."""
        return x if self.consistency is None else self.consistency(x, sigma, self.generator)

    def level_done(self, index: int, x: torch.Tensor) -> None:
        if self.callback is not None:
            self.callback(index, len(self.sigmas), x)
