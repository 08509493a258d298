"""Radon transform through astra-toolbox's own projectors.

CPU tensors use astra's CPU ``linear`` projector; CUDA tensors use astra's
CUDA projector when astra was built with CUDA. Data crosses to numpy (and
back) per call, so this backend is a reference rather than the fast path.
"""
from __future__ import annotations

import numpy as np
import torch

from operators.geometry import ParallelBeamGeometry


class AstraProjector:
    """Forward and adjoint Radon transform with astra-toolbox projectors."""

    def __init__(self, geometry: ParallelBeamGeometry, projector: str = "linear"):
        import astra

        self._astra = astra
        self.geometry = geometry
        self.projector = projector
        self._ids: dict[tuple, int] = {}

    def _projector_id(self, views: torch.Tensor | None, device: torch.device) -> int:
        kind = "cuda" if device.type == "cuda" else self.projector
        if kind == "cuda" and not self._astra.use_cuda():
            raise RuntimeError("astra-toolbox was built without CUDA; use the 'matrix' or 'torch' backend on GPU")
        angles = self.geometry.angles()
        view_key = None if views is None else tuple(views.tolist())
        if view_key is not None:
            angles = angles[list(view_key)]
        key = (kind, view_key)
        if key not in self._ids:
            vol = self._astra.create_vol_geom(self.geometry.size, self.geometry.size)
            proj = self._astra.create_proj_geom("parallel", 1.0, self.geometry.n_detectors, angles)
            self._ids[key] = self._astra.create_projector(kind, proj, vol)
        return self._ids[key]

    def forward(self, x: torch.Tensor, views: torch.Tensor | None = None) -> torch.Tensor:
        """(B, N, N) images -> (B, V, n_detectors) sinograms (V = all views by default)."""
        return astra_apply("forward", self._projector_id(views, x.device), x)

    def adjoint(self, y: torch.Tensor, views: torch.Tensor | None = None) -> torch.Tensor:
        """(B, V, n_detectors) sinograms -> (B, N, N) back-projections."""
        return astra_apply("adjoint", self._projector_id(views, y.device), y)


def astra_apply(direction: str, projector_id: int, batch: torch.Tensor) -> torch.Tensor:
    """astra's forward projection (images (B, N, N) -> (B, V, D)) or back-projection (the reverse) with the
    projector ``projector_id``, one item at a time through numpy; returned on ``batch``'s device and dtype."""
    import astra

    create = astra.create_sino if direction == "forward" else astra.create_backprojection
    out = []
    for item in batch.detach().cpu().numpy().astype(np.float32):
        data_id, result = create(item, projector_id)
        astra.data2d.delete(data_id)
        out.append(result)
    return torch.from_numpy(np.stack(out)).to(device=batch.device, dtype=batch.dtype)
