"""Sampling masks Lambda: which entries of T x are measured.

Small, seeded functions in the spirit of fastMRI's ``subsample.py``; each
returns a boolean numpy array, and the ``*Mask`` classes wrap them with the
selection P and zero-filling P^-1 used by :class:`operators.Measurement`.

* views: sparse-view CT, rows ``round(linspace(0, M-1, n))`` of the full sinogram;
  limited-angle CT, the views within an arc of the half turn;
* k-space columns: fastMRI's equispaced (with adjusted acceleration) and
  random Cartesian masks with a fully sampled centre;
* metal trace: sinogram bins crossed by metal, to be left out.
"""
from __future__ import annotations

import numpy as np
import torch


def view_indices(n_full: int, n_views: int) -> np.ndarray:
    """Indices of ``n_views`` evenly spread views among ``n_full``, shape (n_views,)."""
    if n_views < 1:
        raise ValueError(f"the number of views must be >= 1, got {n_views}")
    if n_views > n_full:
        raise ValueError(f"{n_views} views requested but the full scan has only {n_full}")
    return np.round(np.linspace(0, n_full - 1, n_views)).astype(np.int64)


def arc_view_indices(n_full: int, arc_degrees: float, n_views: int | None = None) -> np.ndarray:
    """Views of a limited-angle scan: those of the ``n_full`` views over [0, 180) degrees whose angle
    k 180 / n_full lies below ``arc_degrees``, or ``n_views`` of them evenly spread; shape (n,)."""
    if not 0 < arc_degrees <= 180:
        raise ValueError(f"the arc must lie in (0, 180] degrees, got {arc_degrees:g}")
    in_arc = np.flatnonzero(np.arange(n_full) * 180.0 / n_full < arc_degrees)
    if n_views is None:
        return in_arc
    if n_views > len(in_arc):
        raise ValueError(f"{n_views} views requested but a {arc_degrees:g} degree arc holds only {len(in_arc)} "
                         f"of the {n_full} views")
    return in_arc[view_indices(len(in_arc), n_views)]


def default_center_fraction(acceleration: float) -> float:
    """0.08 below 8x, 0.04 at 8x and above (the project's convention)."""
    return 0.04 if acceleration >= 8 else 0.08


def _check_kspace_args(n_cols: int, acceleration: float, center_fraction: float) -> None:
    if n_cols < 2:
        raise ValueError(f"k-space width must be >= 2, got {n_cols}")
    if not acceleration >= 1:
        raise ValueError(f"acceleration must be >= 1, got {acceleration}")
    if not 0 <= center_fraction <= 1:
        raise ValueError(f"center fraction must lie in [0, 1], got {center_fraction}")


def _center_columns(n_cols: int, num_low: int) -> np.ndarray:
    mask = np.zeros(n_cols, dtype=bool)
    pad = (n_cols - num_low + 1) // 2
    mask[pad:pad + num_low] = True
    return mask


def equispaced_columns(n_cols: int, acceleration: float, center_fraction: float | None = None,
                       seed: int | None = 0) -> np.ndarray:
    """fastMRI's equispaced mask with the adjusted acceleration, shape (n_cols,).

    The centre ``round(n_cols * center_fraction)`` columns are kept, and the
    outer columns are spaced at the adjusted rate
    ``a (L - n) / (L a - n)`` (L low-frequency columns) so that the total
    count matches ``n_cols / acceleration``. ``seed`` picks the offset. Where
    the centre alone already holds ``n_cols / acceleration`` columns (fastMRI
    divides by zero there) only the centre is kept.
    """
    center_fraction = default_center_fraction(acceleration) if center_fraction is None else center_fraction
    _check_kspace_args(n_cols, acceleration, center_fraction)
    num_low = round(n_cols * center_fraction)
    mask = _center_columns(n_cols, num_low)
    if acceleration == 1:
        return np.ones(n_cols, dtype=bool)
    denominator = num_low * acceleration - n_cols
    if denominator >= 0:  # the centre alone already reaches n_cols / acceleration
        return mask
    adjusted = acceleration * (num_low - n_cols) / denominator
    offset = np.random.default_rng(seed).integers(0, max(1, round(adjusted)))
    picks = np.around(np.arange(offset, n_cols - 1, adjusted)).astype(np.int64)
    mask[picks] = True
    return mask


def random_columns(n_cols: int, acceleration: float, center_fraction: float | None = None,
                   seed: int | None = 0) -> np.ndarray:
    """fastMRI's random mask: centre columns plus each outer column with
    probability ``(n_cols / a - L) / (n_cols - L)``, shape (n_cols,)."""
    center_fraction = default_center_fraction(acceleration) if center_fraction is None else center_fraction
    _check_kspace_args(n_cols, acceleration, center_fraction)
    num_low = round(n_cols * center_fraction)
    mask = _center_columns(n_cols, num_low)
    prob = max(0.0, (n_cols / acceleration - num_low) / max(n_cols - num_low, 1))
    return mask | (np.random.default_rng(seed).uniform(size=n_cols) < prob)


KSPACE_MASKS = {"equispaced": equispaced_columns, "random": random_columns}


def metal_trace(metal: torch.Tensor, radon, threshold: float = 0.0) -> torch.Tensor:
    """Sinogram bins whose ray crosses metal.

    Args:
        metal: (B, 1, N, N) boolean or 0/1 metal masks.
        radon: a :class:`operators.Radon` for the scan.
        threshold: bins whose projected metal path length (pixels) exceeds it
            count as trace.
    Returns:
        (B, 1, n_angles, n_detectors) boolean trace.
    """
    return radon.forward(metal.to(torch.float32)) > threshold


class ViewMask:
    """View sampling (sparse-view, limited-angle CT): P keeps whole views (rows of the sinogram).

    Measured sinograms are compact, (B, 1, n_views, n_detectors).

    Args:
        n_full: views of the full scan.
        indices: (n_views,) the measured ones, e.g. :func:`view_indices` or :func:`arc_view_indices`.
    """

    def __init__(self, n_full: int, indices: np.ndarray | torch.Tensor):
        self.n_full = n_full
        self.indices = torch.as_tensor(indices, dtype=torch.int64)

    def tensor(self, full_shape: tuple[int, ...], device: torch.device | str = "cpu") -> torch.Tensor:
        """Lambda as a (1, 1, n_full, 1) boolean tensor broadcastable over sinograms."""
        mask = torch.zeros(1, 1, self.n_full, 1, dtype=torch.bool, device=device)
        mask[:, :, self.indices.to(device)] = True
        return mask

    def select(self, full: torch.Tensor) -> torch.Tensor:
        """P: (B, 1, n_full, D) -> (B, 1, n_views, D)."""
        return full.index_select(-2, self.indices.to(full.device))

    def fill(self, measured: torch.Tensor) -> torch.Tensor:
        """P^-1: (B, 1, n_views, D) -> (B, 1, n_full, D), zeros where unmeasured."""
        shape = (*measured.shape[:-2], self.n_full, measured.shape[-1])
        full = torch.zeros(shape, dtype=measured.dtype, device=measured.device)
        return full.index_copy(-2, self.indices.to(measured.device), measured)


class BooleanMask:
    """Any 0/1 pattern on T's output (k-space columns, metal trace).

    Measurements stay full-size with zeros where unmeasured (fastMRI's
    convention for undersampled k-space), so P and P^-1 both multiply by Lambda.

    Args:
        mask: boolean tensor broadcastable to T's output, e.g. (1, 1, 1, W)
            for k-space columns or (B, 1, M, D) for a metal trace.
    """

    def __init__(self, mask: torch.Tensor):
        self.mask = mask.to(torch.bool)

    def tensor(self, full_shape: tuple[int, ...], device: torch.device | str = "cpu") -> torch.Tensor:
        return self.mask.to(device)

    def select(self, full: torch.Tensor) -> torch.Tensor:
        return full * self.mask.to(full.device)

    def fill(self, measured: torch.Tensor) -> torch.Tensor:
        return measured * self.mask.to(measured.device)


def kspace_column_mask(width: int, acceleration: float, center_fraction: float | None = None,
                       kind: str = "equispaced", seed: int | None = 0) -> BooleanMask:
    """A (1, 1, 1, width) k-space column mask of the given kind."""
    if kind not in KSPACE_MASKS:
        raise ValueError(f"unknown k-space mask {kind!r}; choose one of {', '.join(KSPACE_MASKS)}")
    columns = KSPACE_MASKS[kind](width, acceleration, center_fraction, seed)
    return BooleanMask(torch.from_numpy(columns).view(1, 1, 1, width))
