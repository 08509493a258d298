"""Radon transform as a sparse system matrix built by astra-toolbox.

Only the *representative* views of the scan are stored (a quarter of them, see
:mod:`operators.symmetry`): the matrix of astra's ``linear`` (Joseph) or ``strip``
projector for those views is built once per geometry, cached on disk as int32
CSR arrays keyed by the geometry, and applied with torch CSR tensors on whatever
device the images live on. Other views are the representatives applied to a
permuted image, in one of two ways:

* few views (at most as many as there are representatives, e.g. sparse-view CT), or any
  views while their rows fit ``ROWS_BUDGET_BYTES``: their own rows, made from the
  representatives' rows by renumbering the columns;
* many views of a large image (all views at 512², the metal-trace mask): the
  representatives' matrix times the four permuted images, stacked as columns of one product.

Transposed matrices are stored explicitly, so adjoints are CSR products too, and
a custom autograd Function makes gradients use the transpose.
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

from operators.astra_backend import astra_matrix
from operators.geometry import ParallelBeamGeometry
from operators.symmetry import (PERMUTATIONS, pixel_permutations, representative_views,
                                view_orbits)

PROJECTORS = ("linear", "strip")
# Views get their own rows (fastest: one product with B columns) while these fit in this many bytes,
# up to ~360^2 at full views; beyond, the stacked product of the representatives (4B columns, 4x less memory).
ROWS_BUDGET_BYTES = 2**30


def cache_dir() -> Path:
    """Folder for cached system matrices: $RECON_CACHE or ~/.cache/recon."""
    root = os.environ.get("RECON_CACHE") or Path.home() / ".cache" / "recon"
    return Path(root) / "radon"


def estimated_nonzeros(geometry: ParallelBeamGeometry) -> int:
    """Upper estimate of the stored matrix's non-zeros (two bins per pixel per representative view)."""
    return 2 * geometry.size * geometry.size * len(representative_views(geometry.n_angles))


def _cache_path(geometry: ParallelBeamGeometry, projector: str) -> Path:
    import astra

    tag = f"{geometry.key()}_{projector}_reps_astra{astra.__version__}"
    digest = hashlib.sha256(tag.encode()).hexdigest()[:12]
    return cache_dir() / f"{tag}_{digest}.npz"


def load_system_matrix(geometry: ParallelBeamGeometry, projector: str = "linear") -> scipy.sparse.csr_matrix:
    """The (R * n_detectors, N * N) matrix of the representative views, from the disk cache or astra."""
    if projector not in PROJECTORS:
        raise ValueError(f"projector must be one of {PROJECTORS}, got {projector!r}")
    path = _cache_path(geometry, projector)
    if path.exists():
        with np.load(path) as f:
            return scipy.sparse.csr_matrix((f["data"], f["indices"], f["indptr"]), shape=tuple(f["shape"]))
    matrix = astra_matrix(geometry, projector, representative_views(geometry.n_angles))
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".npz.tmp")
    os.close(fd)
    with open(tmp, "wb") as f:
        np.savez(f, data=matrix.data, indices=matrix.indices.astype(np.int32),
                 indptr=matrix.indptr.astype(np.int32), shape=np.array(matrix.shape))
    os.replace(tmp, path)
    return matrix


def view_rows(representatives: scipy.sparse.csr_matrix, geometry: ParallelBeamGeometry,
              views: np.ndarray) -> scipy.sparse.csr_matrix:
    """The (V * n_detectors, N * N) rows of ``views`` made from the representatives' rows:
    a view seeing permutation ``perm`` of the image has its representative's weights on columns ``perm[p]``."""
    orbits = view_orbits(geometry.n_angles, views)
    n_det = geometry.n_detectors
    source_rows = (orbits.representative[:, None] * n_det + np.arange(n_det)).ravel()
    matrix = representatives[source_rows]
    permutation_of_row = np.repeat(orbits.permutation, n_det)
    permutation_of_entry = np.repeat(permutation_of_row, np.diff(matrix.indptr))
    columns = pixel_permutations(geometry.size)[permutation_of_entry, matrix.indices]
    rows = scipy.sparse.csr_matrix((matrix.data, columns.astype(np.int32), matrix.indptr), shape=matrix.shape)
    rows.sort_indices()  # pixels in memory order along each ray, as astra's own rows: faster products
    return rows


def to_torch_csr(matrix: scipy.sparse.csr_matrix, device: torch.device | str = "cpu",
                 dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """A torch CSR tensor with int32 indices (several times faster than int64 on CPU); on the CPU it shares
    the scipy matrix's arrays where they already have these types (no second copy of a 1 GB matrix)."""
    with warnings.catch_warnings():  # torch flags CSR support as beta on every construction
        warnings.simplefilter("ignore", UserWarning)
        return torch.sparse_csr_tensor(
            torch.from_numpy(matrix.indptr.astype(np.int32, copy=False)),
            torch.from_numpy(matrix.indices.astype(np.int32, copy=False)),
            torch.from_numpy(matrix.data.astype(np.float32, copy=False)).to(dtype),
            size=matrix.shape, check_invariants=False,
        ).to(device)


def _product(matrix: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """W x for the rows of x (B, K): one image on the CPU by a sparse matrix-vector product (about 1.7x faster
    there than the matrix-matrix product with one column), a batch by the matrix-matrix product."""
    if x.shape[0] == 1 and x.device.type == "cpu":
        return torch.mv(matrix, x[0]).unsqueeze(0)
    return (matrix @ x.T).T


class _CSRApply(torch.autograd.Function):
    """y = W x for x of shape (B, K); the backward pass uses the stored W^T."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, matrix: torch.Tensor, transpose: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(transpose)
        return _product(matrix, x)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        (transpose,) = ctx.saved_tensors
        return _product(transpose, grad), None, None


class SparseMatrixProjector:
    """Forward and adjoint Radon transform with a cached astra system matrix of the representative views.

    View sets no larger than the representatives, or whose rows fit ``ROWS_BUDGET_BYTES``, get their own
    rows (:func:`view_rows`), kept per (views, device, dtype); larger ones use the stacked product.
    """

    def __init__(self, geometry: ParallelBeamGeometry, projector: str = "linear"):
        self.geometry = geometry
        self.projector = projector
        self._scipy: scipy.sparse.csr_matrix | None = None
        self._torch: dict[tuple, tuple[torch.Tensor, torch.Tensor]] = {}
        self._n_representatives = len(representative_views(geometry.n_angles))

    def _representatives(self) -> scipy.sparse.csr_matrix:
        if self._scipy is None:
            self._scipy = load_system_matrix(self.geometry, self.projector)
        return self._scipy

    def _pair(self, key: tuple, build) -> tuple[torch.Tensor, torch.Tensor]:
        """(W, W^T) as torch CSR for ``key`` = (what, device, dtype), built by ``build()`` once."""
        if key not in self._torch:
            matrix = build()
            device, dtype = key[1], key[2]
            self._torch[key] = (to_torch_csr(matrix, device, dtype), to_torch_csr(matrix.T.tocsr(), device, dtype))
        return self._torch[key]

    def _plan(self, views: torch.Tensor | None, device: torch.device, dtype: torch.dtype):
        """("rows", W, W^T) for few views; ("stacked", W_R, W_R^T, each view's representative and
        permutation index, the pixel permutations and their inverses) for many."""
        all_views = views is None
        indices = np.arange(self.geometry.n_angles) if all_views else views.cpu().numpy().astype(np.int64)
        own_rows_bytes = 16 * 2 * self.geometry.size ** 2 * len(indices)  # W and W^T, 2 entries per pixel and view
        if len(indices) <= self._n_representatives or own_rows_bytes <= ROWS_BUDGET_BYTES:
            pair = self._pair((tuple(indices.tolist()), str(device), dtype),
                              lambda: view_rows(self._representatives(), self.geometry, indices))
            return ("rows", *pair)
        pair = self._pair(("representatives", str(device), dtype), self._representatives)
        key = ("orbits", None if all_views else tuple(indices.tolist()), str(device))
        if key not in self._torch:
            orbits = view_orbits(self.geometry.n_angles, indices)
            self._torch[key] = (torch.from_numpy(orbits.representative).to(device),
                                torch.from_numpy(orbits.permutation).to(device))
        permutations_key = ("permutations", str(device))  # the same for every view set
        if permutations_key not in self._torch:
            permutations = torch.from_numpy(pixel_permutations(self.geometry.size)).to(device)
            self._torch[permutations_key] = (permutations, torch.argsort(permutations, dim=1))
        return ("stacked", *pair, *self._torch[key], *self._torch[permutations_key])

    def forward(self, x: torch.Tensor, views: torch.Tensor | None = None) -> torch.Tensor:
        """(B, N, N) images -> (B, V, n_detectors) sinograms (V = all views by default)."""
        plan = self._plan(views, x.device, x.dtype)
        b, n_det = x.shape[0], self.geometry.n_detectors
        flat = x.reshape(b, -1)
        if plan[0] == "rows":
            return _CSRApply.apply(flat, plan[1], plan[2]).view(b, -1, n_det)
        _, w, wt, representative, permutation, permutations, _ = plan
        stacked = flat[:, permutations].transpose(0, 1).reshape(len(PERMUTATIONS) * b, -1)  # (4B, N*N)
        out = _CSRApply.apply(stacked, w, wt).view(len(PERMUTATIONS), b, -1, n_det)  # (4, B, R, D)
        return out[permutation, :, representative].transpose(0, 1)  # (B, V, D)

    def adjoint(self, y: torch.Tensor, views: torch.Tensor | None = None) -> torch.Tensor:
        """(B, V, n_detectors) sinograms -> (B, N, N) back-projections."""
        plan = self._plan(views, y.device, y.dtype)
        b, n = y.shape[0], self.geometry.size
        if plan[0] == "rows":
            return _CSRApply.apply(y.reshape(b, -1), plan[2], plan[1]).view(b, n, n)
        _, w, wt, representative, permutation, _, inverse = plan
        parts = y.new_zeros((len(PERMUTATIONS), b, self._n_representatives, self.geometry.n_detectors))
        parts[permutation, :, representative] = y.transpose(0, 1)  # each (permutation, representative) once
        back = _CSRApply.apply(parts.reshape(len(PERMUTATIONS) * b, -1), wt, w).view(len(PERMUTATIONS), b, -1)
        return sum(back[g][:, inverse[g]] for g in range(len(PERMUTATIONS))).view(b, n, n)
