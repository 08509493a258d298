"""A transform seen from a coarser image grid: T U, with U bilinear interpolation to T's own grid.

A score prior runs on its own grid (128²) while the measurement belongs to the scan's (512² CT, a
256² fan-beam geometry). :class:`Upsampled` lets a sampler work on the prior's grid against the measured
data as they are: forward(x) = T(U x), adjoint(y) = U^T T^T(y), so A = P(Lambda) T U is an honest linear
operator with an exact adjoint, the measurement y is never binned or resampled, and every view, detector
bin and k-space line keeps its geometry. T^-1 is approximated by the area average of T's own inverse.

U is separable: x (n, n) -> K x K^T with K (N, n) the 1-D linear interpolation matrix of pixel centres
(align_corners=False, edges clamped), the same values as ``torch.nn.functional.interpolate(..., "bilinear")``.
"""
from __future__ import annotations

import torch

from operators.measurement import Measurement


def interpolation_matrix(fine: int, coarse: int) -> torch.Tensor:
    """K (fine, coarse), float64: linear interpolation of pixel centres from ``coarse`` to ``fine`` samples
    (align_corners=False: fine centre i sits at coarse coordinate (i + 0.5) coarse / fine - 0.5, clamped)."""
    position = ((torch.arange(fine, dtype=torch.float64) + 0.5) * coarse / fine - 0.5).clamp(0, coarse - 1)
    left = position.floor().long()
    right = (left + 1).clamp(max=coarse - 1)
    weight = position - left
    matrix = torch.zeros(fine, coarse, dtype=torch.float64)
    rows = torch.arange(fine)
    matrix.index_put_((rows, left), 1 - weight, accumulate=True)
    matrix.index_put_((rows, right), weight, accumulate=True)
    return matrix


class Upsampled:
    """T of images on a ``size`` grid, by bilinear interpolation to T's ``fine_size`` grid first.

    Args:
        fine: the transform T on (B, C, fine_size, fine_size) images (CT or Fourier).
        size: the side n of the coarse images, n <= fine_size.
        fine_size: the side N of T's images.

    Shapes: images (B, C, n, n); T's output as T gives it. ``views`` (sparse-view CT) pass through to T.
    """

    def __init__(self, fine, size: int, fine_size: int):
        if not 1 <= size <= fine_size:
            raise ValueError(f"the coarse grid ({size}) must be between 1 and the fine grid ({fine_size})")
        self.fine, self.size, self.fine_size = fine, size, fine_size
        self._matrix = interpolation_matrix(fine_size, size)
        if hasattr(fine, "window"):
            self.window = fine.window
        self.takes_views = getattr(fine, "takes_views", False)

    def _k(self, like: torch.Tensor) -> torch.Tensor:
        return self._matrix.to(device=like.device, dtype=like.dtype)

    def upsample(self, x: torch.Tensor) -> torch.Tensor:
        """U: (B, C, n, n) -> (B, C, N, N)."""
        k = self._k(x)
        return k @ x @ k.T

    def upsample_adjoint(self, x: torch.Tensor) -> torch.Tensor:
        """U^T: (B, C, N, N) -> (B, C, n, n)."""
        k = self._k(x)
        return k.T @ x @ k

    def downsample(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, N, N) -> (B, C, n, n) by area averaging (a left inverse of U on smooth images)."""
        return torch.nn.functional.interpolate(x, size=(self.size, self.size), mode="area")

    def forward(self, x: torch.Tensor, *views) -> torch.Tensor:
        return self.fine.forward(self.upsample(x), *views)

    def adjoint(self, y: torch.Tensor, *views) -> torch.Tensor:
        return self.upsample_adjoint(self.fine.adjoint(y, *views))

    def inverse(self, y: torch.Tensor) -> torch.Tensor:
        return self.downsample(self.fine.inverse(y))

    def with_window(self, window: str) -> "Upsampled":
        """The same grids with T's FBP window ``window`` (CT only)."""
        return Upsampled(self.fine.with_window(window), self.size, self.fine_size)


def on_coarse_grid(measurement: Measurement, size: int, fine_size: int) -> Measurement:
    """``measurement`` (of fine_size² images) as a measurement of size² images: P(Lambda) T U, same y."""
    return Measurement(Upsampled(measurement.transform, size, fine_size), measurement.sampling,
                       measurement.noise_std)
