"""CT transform of a measured scan's geometry (:class:`operators.scan_geometry.ScanGeometry`): parallel or fan beam.

The projector is astra-toolbox's (``linear`` for parallel beam, ``line_fanflat`` for fan beam): its
sparse system matrix, built in memory per view set and applied as torch CSR (CPU or CUDA), while the
matrix fits ``MATRIX_BUDGET_BYTES``; astra's own CPU projector beyond. Either way the adjoint is the
exact transpose of the forward projection.

FBP (:meth:`ScanTransform.fbp`) back-projects pixel-driven with linear interpolation on the detector:
parallel beam as the Radon transform's; fan beam (flat detector) with the cosine pre-weight
D / sqrt(D² + s²), the ramp at the detector spacing scaled to the rotation centre, and the 1/U²
distance weight, where U = (distance of the pixel from the source along the central ray) / D. A scan
covering the full turn weights every ray 1/2 (each is measured twice); a short scan (at least
180 degrees plus the fan angle) uses Parker's weights, so the rays measured twice sum to one.
"""
from __future__ import annotations

import math

import numpy as np
import torch

from operators.astra_backend import AstraProjector, astra_matrix
from operators.fbp import WINDOWS, filter_sinogram
from operators.scan_geometry import ScanGeometry
from operators.sparse_matrix import _CSRApply, to_torch_csr
from operators.transforms import CTTransform

MATRIX_BUDGET_BYTES = 3 * 2**30  # the largest forward-plus-transpose matrix built (bytes, float32 + int32)
MATRIX_AFTER_CALLS = 8  # astra's projector serves a view set's first calls; building its matrix costs ~40 of them
VIEW_CHUNK = 16  # views back-projected at once by the pixel-driven FBP


def estimated_nonzeros(geometry: ScanGeometry, n_views: int) -> int:
    """Upper estimate of the matrix's non-zeros: each pixel meets about 1 + 1 / (bin width at the centre)
    rays per view (measured 174 k per view for 256², 0.5 px bins: estimate 196 k)."""
    return int(n_views * geometry.size ** 2 * (1.0 + 1.0 / min(geometry.iso_spacing, 1.0)))


class _ScanProjector:
    """Forward and adjoint projection of (B, N, N) images for all views or a view subset."""

    def __init__(self, geometry: ScanGeometry):
        self.geometry = geometry
        self.kind = "linear" if geometry.beam == "parallel" else "line_fanflat"
        self._astra = AstraProjector(geometry, self.kind)
        self._matrices: dict[tuple, tuple[torch.Tensor, torch.Tensor]] = {}
        self._calls: dict[tuple, int] = {}

    def _indices(self, views: torch.Tensor | None) -> np.ndarray | None:
        return None if views is None else views.cpu().numpy().astype(np.int64)

    def _matrix(self, indices: np.ndarray | None, device: torch.device, dtype: torch.dtype):
        """(W, W^T) as torch CSR for the view set, or None: before its ``MATRIX_AFTER_CALLS``-th call on CPU
        (a single FBP residual need not build it), or when it would exceed the budget."""
        n_views = self.geometry.n_angles if indices is None else len(indices)
        if 16 * estimated_nonzeros(self.geometry, n_views) > MATRIX_BUDGET_BYTES:
            return None
        key = (None if indices is None else tuple(indices.tolist()), str(device), dtype)
        self._calls[key] = self._calls.get(key, 0) + 1
        if key not in self._matrices and device.type == "cpu" and self._calls[key] < MATRIX_AFTER_CALLS:
            return None
        if key not in self._matrices:
            matrix = astra_matrix(self.geometry, self.kind, indices)
            matrix.sort_indices()
            self._matrices[key] = (to_torch_csr(matrix, device, dtype), to_torch_csr(matrix.T.tocsr(), device, dtype))
        return self._matrices[key]

    def forward(self, x: torch.Tensor, views: torch.Tensor | None = None) -> torch.Tensor:
        indices = self._indices(views)
        n_views = self.geometry.n_angles if indices is None else len(indices)
        pair = self._matrix(indices, x.device, x.dtype)
        if pair is not None:
            return _CSRApply.apply(x.reshape(x.shape[0], -1), *pair).view(x.shape[0], n_views, -1)
        return self._astra.forward(x.cpu(), views).to(x.device)  # astra's CPU projector, whatever the device

    def adjoint(self, y: torch.Tensor, views: torch.Tensor | None = None) -> torch.Tensor:
        indices = self._indices(views)
        n = self.geometry.size
        pair = self._matrix(indices, y.device, y.dtype)
        if pair is not None:
            return _CSRApply.apply(y.reshape(y.shape[0], -1), pair[1], pair[0]).view(y.shape[0], n, n)
        return self._astra.adjoint(y.cpu(), views).to(y.device)


class ScanTransform(CTTransform):
    """T of a measured scan: (B, 1, N, N) images (attenuation per pixel) -> (B, 1, M, D) line integrals in
    pixel units, for the geometry's M views; ``inverse``/``fbp`` the analytic reconstruction.

    Args:
        geometry: the scan.
        window: FBP ramp window, one of :data:`operators.fbp.WINDOWS`.
    """

    def __init__(self, geometry: ScanGeometry, window: str = "ram-lak"):
        if window not in WINDOWS:
            raise ValueError(f"unknown FBP window {window!r}; choose one of {', '.join(WINDOWS)}")
        self.geometry = geometry
        self.window = window
        self._projector = _ScanProjector(geometry)

    def fbp(self, y: torch.Tensor, views: torch.Tensor | None = None, window: str | None = None) -> torch.Tensor:
        """Filtered back-projection of the views ``views`` (all by default), (B, 1, V, D) -> (B, 1, N, N)."""
        self._check_sino(y, self.geometry.n_angles if views is None else len(views))
        indices = np.arange(self.geometry.n_angles) if views is None else views.cpu().numpy().astype(np.int64)
        angles = np.asarray(self.geometry.angles)[indices]
        vectors = torch.from_numpy(self.geometry.vectors(indices)).to(y.device, torch.float64)
        spacing = self.geometry.iso_spacing
        s = (torch.arange(self.geometry.n_detectors, device=y.device, dtype=torch.float64)
             - (self.geometry.n_detectors - 1) / 2) * spacing  # bin centres at the rotation centre, pixels
        weighted = y.to(torch.float64) * _redundancy_weights(self.geometry, angles, s)
        if self.geometry.beam == "fan":
            distance = self.geometry.source_origin
            weighted = weighted * (distance / torch.sqrt(distance ** 2 + s ** 2))
        filtered = filter_sinogram(weighted, self.window if window is None else window) / spacing
        image = _back_project(filtered[:, 0], vectors, self.geometry)
        return (image * _view_step(self.geometry, angles)).to(y.dtype).unsqueeze(1)


def _coverage(angles: np.ndarray) -> float:
    """The arc the views cover (radians), taking them as evenly spaced: span * V / (V - 1)."""
    if len(angles) < 2:
        return math.pi
    span = float(np.max(angles) - np.min(angles))
    return span * len(angles) / (len(angles) - 1)


def _view_step(geometry: ScanGeometry, angles: np.ndarray) -> float:
    """The angle each view stands for in the back-projection sum (pi / V over a half turn of parallel views)."""
    if geometry.beam == "parallel":
        return math.pi / len(angles)
    return _coverage(angles) / len(angles)


def _redundancy_weights(geometry: ScanGeometry, angles: np.ndarray, s: torch.Tensor) -> torch.Tensor:
    """(V, D) weights of the fan-beam rays so that rays measured twice sum to one (1 for parallel beam)."""
    if geometry.beam == "parallel":
        return torch.ones((len(angles), len(s)), dtype=s.dtype, device=s.device)
    coverage = _coverage(angles)
    if coverage >= 2 * math.pi * (1 - 1e-6):
        return torch.full((len(angles), len(s)), 0.5, dtype=s.dtype, device=s.device)
    gamma = -torch.atan(s / geometry.source_origin)  # fan angle of each bin, signed as astra turns the source
    delta = max((coverage - math.pi) / 2, float(gamma.abs().max()))  # half the overscan: at least the fan's
    beta = torch.from_numpy(np.asarray(angles) - np.min(angles)).to(s)[:, None]
    rise = torch.sin(math.pi / 4 * beta / (delta - gamma).clamp_min(1e-12)) ** 2
    fall = torch.sin(math.pi / 4 * (math.pi + 2 * delta - beta) / (delta + gamma).clamp_min(1e-12)) ** 2
    weights = torch.where(beta < 2 * (delta - gamma), rise, torch.ones_like(rise))
    weights = torch.where(beta > math.pi - 2 * gamma, fall, weights)
    return torch.where(beta > math.pi + 2 * delta, torch.zeros_like(weights), weights)


def _back_project(filtered: torch.Tensor, vectors: torch.Tensor, geometry: ScanGeometry) -> torch.Tensor:
    """Pixel-driven back-projection (B, V, D) -> (B, N, N) with linear interpolation between bins; fan beam
    weighted by 1/U². ``vectors`` (V, 6) are astra's: source (or ray direction), detector centre, bin vector."""
    n, n_det = geometry.size, geometry.n_detectors
    coords = torch.arange(n, device=filtered.device, dtype=torch.float64) - (n - 1) / 2
    px = coords[None, :].expand(n, n).reshape(-1)  # x = c - (N-1)/2
    py = coords.flip(0)[:, None].expand(n, n).reshape(-1)  # y = (N-1)/2 - r
    image = filtered.new_zeros((filtered.shape[0], n * n))
    for first in range(0, vectors.shape[0], VIEW_CHUNK):
        vec = vectors[first:first + VIEW_CHUNK]
        a, c, u = vec[:, 0:2, None], vec[:, 2:4, None], vec[:, 4:6, None]  # (v, 2, 1)
        if geometry.beam == "parallel":  # p + l a = c + t u  ->  t = ((p - c) x a) / (u x a)
            rel_x, rel_y = px - c[:, 0], py - c[:, 1]
            t = (rel_x * a[:, 1] - rel_y * a[:, 0]) / (u[:, 0] * a[:, 1] - u[:, 1] * a[:, 0])
            weight = torch.ones_like(t)
        else:  # S + l (p - S) = c + t u  ->  t = ((S - c) x v) / (u x v), v = p - S
            vx, vy = px - a[:, 0], py - a[:, 1]
            t = ((a[:, 0] - c[:, 0]) * vy - (a[:, 1] - c[:, 1]) * vx) / (u[:, 0] * vy - u[:, 1] * vx)
            along = -(vx * a[:, 0] + vy * a[:, 1]) / geometry.source_origin  # (p - S) . (origin - S) / |S|
            weight = (geometry.source_origin / along) ** 2
        position = t + (n_det - 1) / 2  # fractional bin index (v, N*N)
        low = position.floor().clamp(-1, n_det - 1)
        frac = position - low
        rows = filtered[:, first:first + VIEW_CHUNK]  # (B, v, D)
        padded = torch.nn.functional.pad(rows, (1, 1))  # bins -1 and D read as zero
        left = torch.gather(padded, 2, (low.long() + 1).clamp(0, n_det + 1).expand(rows.shape[0], -1, -1))
        right = torch.gather(padded, 2, (low.long() + 2).clamp(0, n_det + 1).expand(rows.shape[0], -1, -1))
        inside = (position >= -1) & (position <= n_det)
        image += ((left * (1 - frac) + right * frac) * weight * inside).sum(dim=1)
    return image.view(filtered.shape[0], n, n)
