"""Radon transform as a sparse system matrix built by astra-toolbox.

The matrix of astra's ``linear`` (Joseph) or ``strip`` projector is built once
per geometry, cached on disk as int32 CSR arrays keyed by the geometry, and
applied with torch CSR tensors on whatever device the images live on. The
transposed matrix is stored explicitly, so the adjoint is a CSR product too.
A custom autograd Function makes gradients use the transpose.
"""
from __future__ import annotations

import hashlib
import os
import tempfile
import warnings
from pathlib import Path

import numpy as np
import scipy.sparse
import torch

from operators.geometry import ParallelBeamGeometry

PROJECTORS = ("linear", "strip")


def cache_dir() -> Path:
    """Folder for cached system matrices: $RECON_CACHE or ~/.cache/recon."""
    root = os.environ.get("RECON_CACHE") or Path.home() / ".cache" / "recon"
    return Path(root) / "radon"


def estimated_nonzeros(geometry: ParallelBeamGeometry) -> int:
    """Upper estimate of the matrix's non-zeros (two bins per pixel per view)."""
    return 2 * geometry.size * geometry.size * geometry.n_angles


def _build_with_astra(geometry: ParallelBeamGeometry, projector: str) -> scipy.sparse.csr_matrix:
    import astra

    vol = astra.create_vol_geom(geometry.size, geometry.size)
    proj = astra.create_proj_geom("parallel", 1.0, geometry.n_detectors, geometry.angles())
    pid = astra.create_projector(projector, proj, vol)
    mid = astra.projector.matrix(pid)
    try:
        return astra.matrix.get(mid).tocsr().astype(np.float32)
    finally:
        astra.matrix.delete(mid)
        astra.projector.delete(pid)


def _cache_path(geometry: ParallelBeamGeometry, projector: str) -> Path:
    import astra

    tag = f"{geometry.key()}_{projector}_astra{astra.__version__}"
    digest = hashlib.sha256(tag.encode()).hexdigest()[:12]
    return cache_dir() / f"{tag}_{digest}.npz"


def load_system_matrix(geometry: ParallelBeamGeometry, projector: str = "linear") -> scipy.sparse.csr_matrix:
    """The (n_angles*n_detectors, N*N) system matrix, from the disk cache or astra."""
    if projector not in PROJECTORS:
        raise ValueError(f"projector must be one of {PROJECTORS}, got {projector!r}")
    path = _cache_path(geometry, projector)
    if path.exists():
        with np.load(path) as f:
            return scipy.sparse.csr_matrix((f["data"], f["indices"], f["indptr"]), shape=tuple(f["shape"]))
    matrix = _build_with_astra(geometry, projector)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".npz.tmp")
    os.close(fd)
    with open(tmp, "wb") as f:
        np.savez(f, data=matrix.data, indices=matrix.indices.astype(np.int32),
                 indptr=matrix.indptr.astype(np.int32), shape=np.array(matrix.shape))
    os.replace(tmp, path)
    return matrix


def to_torch_csr(matrix: scipy.sparse.csr_matrix, device: torch.device | str = "cpu",
                 dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """A torch CSR tensor with int32 indices (several times faster than int64 on CPU)."""
    with warnings.catch_warnings():  # torch flags CSR support as beta on every construction
        warnings.simplefilter("ignore", UserWarning)
        return torch.sparse_csr_tensor(
            torch.from_numpy(matrix.indptr.astype(np.int32)),
            torch.from_numpy(matrix.indices.astype(np.int32)),
            torch.from_numpy(matrix.data.astype(np.float32)).to(dtype),
            size=matrix.shape, check_invariants=False,
        ).to(device)


class _CSRApply(torch.autograd.Function):
    """y = W x for x of shape (B, K); the backward pass uses the stored W^T."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, matrix: torch.Tensor, transpose: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(transpose)
        return (matrix @ x.T).T

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        (transpose,) = ctx.saved_tensors
        return (transpose @ grad.T).T, None, None


class SparseMatrixProjector:
    """Forward and adjoint Radon transform with a cached astra system matrix.

    Matrices (and row subsets of them for sparse views) are kept per
    (views, device, dtype) and built lazily.
    """

    def __init__(self, geometry: ParallelBeamGeometry, projector: str = "linear"):
        self.geometry = geometry
        self.projector = projector
        self._scipy: scipy.sparse.csr_matrix | None = None
        self._torch: dict[tuple, tuple[torch.Tensor, torch.Tensor]] = {}

    def _matrices(self, views: torch.Tensor | None, device: torch.device,
                  dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
        view_key = None if views is None else tuple(views.tolist())
        key = (view_key, str(device), dtype)
        if key not in self._torch:
            if self._scipy is None:
                self._scipy = load_system_matrix(self.geometry, self.projector)
            matrix = self._scipy
            if views is not None:
                n_det = self.geometry.n_detectors
                rows = (views.cpu().numpy()[:, None] * n_det + np.arange(n_det)).ravel()
                matrix = matrix[rows]
            self._torch[key] = (to_torch_csr(matrix, device, dtype), to_torch_csr(matrix.T.tocsr(), device, dtype))
        return self._torch[key]

    def forward(self, x: torch.Tensor, views: torch.Tensor | None = None) -> torch.Tensor:
        """(B, N, N) images -> (B, V, n_detectors) sinograms (V = all views by default)."""
        w, wt = self._matrices(views, x.device, x.dtype)
        b = x.shape[0]
        return _CSRApply.apply(x.reshape(b, -1), w, wt).view(b, -1, self.geometry.n_detectors)

    def adjoint(self, y: torch.Tensor, views: torch.Tensor | None = None) -> torch.Tensor:
        """(B, V, n_detectors) sinograms -> (B, N, N) back-projections."""
        w, wt = self._matrices(views, y.device, y.dtype)
        b = y.shape[0]
        n = self.geometry.size
        return _CSRApply.apply(y.reshape(b, -1), wt, w).view(b, n, n)
