"""The Gaussian likelihood gradient used by the score baselines (Langevin, Score SDE).

grad_x log p(y | x) = -A^H (A x - y) / (rho sigma)^2 / L, the form of the
released code (measurement std proportional to the noise level, factor rho).
L = ||A||_2^2 normalises the operator's scale: it is 1 for the unitary
Fourier MRI operator (so MRI matches the released code exactly) and makes
the same rho usable with the unnormalised Radon transform.
"""
from __future__ import annotations

import torch


def default_scale(measurement, like: torch.Tensor) -> float:
    """L = ||A||_2^2, the largest over the images ``like`` (B, 1, H, W) (masks may differ per image)."""
    return float(measurement.norm_squared(like).max())


class GaussianLikelihood:
    """grad_x log N(y; A x, (rho sigma)^2 L I).

    Args:
        measurement: an :class:`operators.Measurement`.
        y: (B, ...) measurements.
        rho: the ratio of the likelihood std to the noise level sigma.
        scale: L; default :func:`default_scale` (set 1.0 for the raw released form).
        like: an image batch (B, 1, H, W) giving shape/device for the power iteration.
    """

    def __init__(self, measurement, y: torch.Tensor, rho: float, like: torch.Tensor, scale: float | None = None):
        self.measurement, self.y, self.rho = measurement, y, rho
        self.scale = default_scale(measurement, like) if scale is None else scale

    def grad(self, x: torch.Tensor, sigma: float, y: torch.Tensor | None = None) -> torch.Tensor:
        """Gradient at noise level sigma against ``y`` (default: the clean measurement)."""
        y = self.y if y is None else y
        residual = self.measurement.A(x) - y
        return -self.measurement.A_adjoint(residual) / ((self.rho * sigma) ** 2 * self.scale)
