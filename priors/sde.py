"""The Variance Exploding SDE: x_t = x_0 + sigma(t) z.

sigma(t) = sigma_min (sigma_max / sigma_min)^t for t in [eps, 1], with
sigma_min = 0.01 and eps = 1e-5 as in the paper; sigma_max is a property of
the training set (the largest pairwise distance between its images).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch

SIGMA_MIN = 0.01
T_EPS = 1e-5


@dataclass(frozen=True)
class VESDE:
    """Noise schedule of the VE SDE.

    Attributes:
        sigma_max: largest noise level (image units), e.g. the training set's
            largest pairwise Euclidean distance.
        sigma_min: smallest noise level.
    """

    sigma_max: float
    sigma_min: float = SIGMA_MIN

    def __post_init__(self) -> None:
        if not 0 < self.sigma_min < self.sigma_max:
            raise ValueError(f"need 0 < sigma_min < sigma_max, got {self.sigma_min} and {self.sigma_max}")

    def sigma(self, t: torch.Tensor) -> torch.Tensor:
        """Noise level at time(s) t in [0, 1], same shape as t."""
        return self.sigma_min * (self.sigma_max / self.sigma_min) ** t

    def time(self, sigma: torch.Tensor) -> torch.Tensor:
        """Inverse of :meth:`sigma`."""
        return torch.log(sigma / self.sigma_min) / math.log(self.sigma_max / self.sigma_min)

    def perturb(self, x0: torch.Tensor, t: torch.Tensor, generator: torch.Generator | None = None
                ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Sample x_t ~ N(x0, sigma(t)^2 I) for per-image times t (B,).

        Returns (x_t, z, sigma) with z the standard normal noise and sigma (B,).
        """
        sigma = self.sigma(t)
        z = torch.randn(x0.shape, generator=generator, device=x0.device, dtype=x0.dtype)
        return x0 + sigma.view(-1, *([1] * (x0.dim() - 1))) * z, z, sigma

    def prior_sample(self, shape: tuple[int, ...], generator: torch.Generator | None = None,
                     device: torch.device | str = "cpu") -> torch.Tensor:
        """x_1 ~ N(0, sigma_max^2 I)."""
        return self.sigma_max * torch.randn(shape, generator=generator, device=device)

    def discrete_sigmas(self, n: int, device: torch.device | str = "cpu", start: float | None = None
                        ) -> torch.Tensor:
        """The sampler's noise levels: n values geometric from sigma_max down to sigma_min, float32 (n,).

        ``start`` (in (sigma_min, sigma_max]) replaces sigma_max as the first level (a warm start).
        """
        if n < 1:
            raise ValueError(f"the number of noise levels must be >= 1, got {n}")
        first = 1.0
        if start is not None:
            if not self.sigma_min < start <= self.sigma_max:
                raise ValueError(f"the first noise level must lie in ({self.sigma_min}, {self.sigma_max}], got {start}")
            first = float(self.time(torch.tensor(float(start), dtype=torch.float64)))
        t = torch.linspace(first, T_EPS, n, dtype=torch.float64)
        return self.sigma(t).to(device=device, dtype=torch.float32)


def largest_pairwise_distance(images: torch.Tensor, max_pairs: int = 10_000,
                              generator: torch.Generator | None = None) -> float:
    """Technique 1 of Song & Ermon (2020): sigma_max = max ||x_i - x_j||.

    Args:
        images: (N, ...) training images.
        max_pairs: all pairs are used when there are at most this many,
            otherwise this many random pairs.
    """
    flat = images.reshape(images.shape[0], -1).to(torch.float64)
    n = flat.shape[0]
    if n < 2:
        raise ValueError("need at least two images to estimate sigma_max")
    if n * (n - 1) // 2 <= max_pairs:
        return float(torch.pdist(flat).max())
    i = torch.randint(0, n, (max_pairs,), generator=generator)
    j = torch.randint(0, n, (max_pairs,), generator=generator)
    return float((flat[i] - flat[j]).norm(dim=1).max())
