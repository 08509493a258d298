"""The interface every prior offers to the samplers."""
from __future__ import annotations

from typing import Any, Protocol

import torch

from priors.sde import VESDE


class ScorePrior(Protocol):
    """A score model s(x, sigma) ~ grad_x log p_sigma(x) under the VE SDE.

    Attributes:
        sde: the noise schedule the prior was trained (or defined) for.
        meta: metadata: at least ``id`` (str), ``modality`` ("ct", "mri" or
            "synthetic"), ``size`` (image side, int), ``intensity`` (the
            intensity convention) and ``defaults``: per-task sampler defaults,
            e.g. ``{"ct-sparse-view": {"lam": 0.84, "snr": 0.25}}``.
    """

    sde: VESDE
    meta: dict[str, Any]

    def score(self, x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
        """Score of the sigma-perturbed density.

        Args:
            x: (B, 1, H, W) images.
            sigma: (B,) noise levels.
        Returns:
            (B, 1, H, W) score, same dtype and device as x.
        """
        ...
