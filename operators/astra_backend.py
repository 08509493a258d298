"""CT projections through astra-toolbox's own projectors, and the system matrices astra builds.

A geometry here is anything with ``size`` and ``astra(views)`` (astra's projection geometry of all
views or of the view indices ``views``): :class:`operators.geometry.ParallelBeamGeometry` and
:class:`operators.scan_geometry.ScanGeometry`. CPU tensors use the named CPU projector (``linear``,
``line_fanflat`` ...); CUDA tensors use astra's CUDA projector when astra was built with CUDA. Data
crosses to numpy (and back) per call, so this backend is a reference rather than the fast path.
"""
from __future__ import annotations

from typing import Any

import numpy as np
import scipy.sparse
import torch


def _view_key(views: torch.Tensor | np.ndarray | None) -> tuple[int, ...] | None:
    return None if views is None else tuple(int(v) for v in views.tolist())


def create_projector(geometry: Any, projector: str, views: tuple[int, ...] | None = None) -> int:
    """An astra projector of kind ``projector`` for ``geometry``'s views ``views`` (None: all)."""
    import astra

    volume = astra.create_vol_geom(geometry.size, geometry.size)
    return astra.create_projector(projector, geometry.astra(None if views is None else np.asarray(views)), volume)


def astra_matrix(geometry: Any, projector: str, views: np.ndarray | None = None) -> scipy.sparse.csr_matrix:
    """The (V * n_detectors, N * N) float32 system matrix of the CPU ``projector`` for ``geometry``'s views."""
    import astra

    projector_id = create_projector(geometry, projector, _view_key(views))
    matrix_id = astra.projector.matrix(projector_id)
    try:
        return astra.matrix.get(matrix_id).tocsr().astype(np.float32)
    finally:
        astra.matrix.delete(matrix_id)
        astra.projector.delete(projector_id)


class AstraProjector:
    """Forward and adjoint projection with astra-toolbox projectors, for all views or a view subset."""

    def __init__(self, geometry: Any, projector: str = "linear"):
        import astra

        self._astra = astra
        self.geometry = geometry
        self.projector = projector
        self._ids: dict[tuple, int] = {}

    def _projector_id(self, views: torch.Tensor | None, device: torch.device) -> int:
        kind = "cuda" if device.type == "cuda" else self.projector
        if kind == "cuda" and not self._astra.use_cuda():
            raise RuntimeError("astra-toolbox was built without CUDA; use the 'matrix' or 'torch' backend on GPU")
        key = (kind, _view_key(views))
        if key not in self._ids:
            self._ids[key] = create_projector(self.geometry, kind, key[1])
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
