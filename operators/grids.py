"""A transform seen from another image grid: T R, with R resampling to T's own grid.

A score prior runs on its own grid (128²) while the measurement belongs to the scan's (512² CT, a
256² fan-beam geometry, a 64² MR slice). :class:`Regridded` lets a sampler work on the prior's grid against the
measured data as they are: forward(x) = T(R x), adjoint(y) = R^T T^T(y), so A = P(Lambda) T R is an honest
linear operator with an exact adjoint, the measurement y is never binned or resampled, and every view,
detector bin and k-space line keeps its geometry. T^-1 is approximated by T's own inverse resampled to the
prior's grid.

R is separable: x (n, n) -> K x K^T with K (N, n) the 1-D resampling matrix (:func:`resampling_matrix`):
linear interpolation of pixel centres when T's grid is finer (align_corners=False, edges clamped, the same
values as ``torch.nn.functional.interpolate(..., "bilinear")``), the exact area average when it is coarser
(a pixel of T's grid integrates the prior's pixels it covers).
"""
from __future__ import annotations

import torch

from operators.measurement import Measurement


def area_matrix(coarse: int, fine: int) -> torch.Tensor:
    """K (coarse, fine), float64: the average of the ``fine`` samples each of ``coarse`` pixels covers, by exact
    overlap (coarse pixel i spans [i, i + 1) fine / coarse fine pixels); rows sum to one."""
    scale = fine / coarse
    start = torch.arange(coarse, dtype=torch.float64).unsqueeze(1) * scale
    left = torch.arange(fine, dtype=torch.float64).unsqueeze(0)
    overlap = (torch.minimum(start + scale, left + 1) - torch.maximum(start, left)).clamp(min=0)
    return overlap / scale


def resampling_matrix(to: int, start: int) -> torch.Tensor:
    """K (to, start), float64: linear interpolation when enlarging (:func:`interpolation_matrix`), the exact
    area average when shrinking (:func:`area_matrix`), the identity when the sides agree."""
    return interpolation_matrix(to, start) if to >= start else area_matrix(to, start)


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


class Regridded:
    """T of images on a ``size`` grid, resampled to T's ``fine_size`` grid first (either may be the finer).

    Args:
        fine: the transform T on (B, C, fine_size, fine_size) images (CT or Fourier).
        size: the side n of the images this transform takes (the prior's grid).
        fine_size: the side N of T's images.

    Shapes: images (B, C, n, n); T's output as T gives it. ``views`` (sparse-view CT) pass through to T.
    """

    def __init__(self, fine, size: int, fine_size: int):
        if size < 1 or fine_size < 1:
            raise ValueError(f"grid sides must be >= 1, got {size} and {fine_size}")
        self.fine, self.size, self.fine_size = fine, size, fine_size
        self._matrix = resampling_matrix(fine_size, size)
        if hasattr(fine, "window"):
            self.window = fine.window
        self.takes_views = getattr(fine, "takes_views", False)

    def _k(self, like: torch.Tensor) -> torch.Tensor:
        return self._matrix.to(device=like.device, dtype=like.dtype)

    def to_fine(self, x: torch.Tensor) -> torch.Tensor:
        """R: (B, C, n, n) -> (B, C, N, N)."""
        k = self._k(x)
        return k @ x @ k.T

    def to_fine_adjoint(self, x: torch.Tensor) -> torch.Tensor:
        """R^T: (B, C, N, N) -> (B, C, n, n)."""
        k = self._k(x)
        return k.T @ x @ k

    def from_fine(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, N, N) -> (B, C, n, n): the area average when n < N (a left inverse of R on smooth images),
        bilinear interpolation when n > N."""
        if self.size < self.fine_size:
            return torch.nn.functional.interpolate(x, size=(self.size, self.size), mode="area")
        return torch.nn.functional.interpolate(x, size=(self.size, self.size), mode="bilinear", align_corners=False)

    def forward(self, x: torch.Tensor, *views) -> torch.Tensor:
        return self.fine.forward(self.to_fine(x), *views)

    def adjoint(self, y: torch.Tensor, *views) -> torch.Tensor:
        return self.to_fine_adjoint(self.fine.adjoint(y, *views))

    def inverse(self, y: torch.Tensor) -> torch.Tensor:
        return self.from_fine(self.fine.inverse(y))

    def with_window(self, window: str) -> "Regridded":
        """The same grids with T's FBP window ``window`` (CT only)."""
        return Regridded(self.fine.with_window(window), self.size, self.fine_size)


def on_grid(measurement: Measurement, size: int, fine_size: int) -> Measurement:
    """``measurement`` (of fine_size² images) as a measurement of size² images: P(Lambda) T R, same y."""
    return Measurement(Regridded(measurement.transform, size, fine_size), measurement.sampling,
                       measurement.noise_std)
