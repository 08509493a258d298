"""The Gaussian likelihood gradient used by the score baselines (Langevin, Score SDE).

grad_x log p(y | x) = -A^H (A x - y) / (rho sigma)^2 / L, the form of the
released code (measurement std proportional to the noise level, factor rho).
L = ||A||_2^2 normalises the operator's scale: it is 1 for the unitary
Fourier MRI operator (so MRI matches the released code exactly) and makes
the same rho usable with the unnormalised Radon transform.
"""
from __future__ import annotations

import torch


def operator_norm_squared(measurement, like: torch.Tensor, iterations: int = 50) -> float:
    """||A||_2^2 by power iteration on A^H A from a constant image (deterministic)."""
    v = torch.ones_like(like[:1])
    value = 0.0
    for _ in range(iterations):
        w = measurement.A_adjoint(measurement.A(v))
        value = float(w.norm() / v.norm())
        v = w / w.norm().clamp_min(1e-30)
    return value


class GaussianLikelihood:
    """grad_x log N(y; A x, (rho sigma)^2 L I).

    Args:
        measurement: an :class:`operators.Measurement`.
        y: (B, ...) measurements.
        rho: the ratio of the likelihood std to the noise level sigma.
        scale: L; default ``operator_norm_squared`` (set 1.0 for the raw released form).
        like: an image batch (B, 1, H, W) giving shape/device for the power iteration.
    """

    def __init__(self, measurement, y: torch.Tensor, rho: float, like: torch.Tensor, scale: float | None = None):
        self.measurement, self.y, self.rho = measurement, y, rho
        self.scale = operator_norm_squared(measurement, like) if scale is None else scale

    def grad(self, x: torch.Tensor, sigma: float, y: torch.Tensor | None = None) -> torch.Tensor:
        """Gradient at noise level sigma against ``y`` (default: the clean measurement)."""
        y = self.y if y is None else y
        residual = self.measurement.A(x) - y
        return -self.measurement.A_adjoint(residual) / ((self.rho * sigma) ** 2 * self.scale)
