"""Measurement physics: transforms T, masks Lambda and A = P(Lambda) T.

Images are (B, 1, N, N) float tensors on any device; see
:class:`Measurement` for the composition and :func:`sparse_view_ct`,
:func:`undersampled_mri` and :func:`metal_trace_ct` for the three tasks.
"""
from operators.coils import CoilFourier
from operators.geometry import ParallelBeamGeometry
from operators.grids import Regridded, on_grid
from operators.masks import (BooleanMask, ViewMask, arc_view_indices, default_center_fraction, equispaced_columns,
                             kspace_column_mask, metal_trace, random_columns, view_indices)
from operators.measurement import Measurement, metal_trace_ct, sparse_view_ct, undersampled_mri
from operators.scan import ScanTransform
from operators.scan_geometry import ScanGeometry
from operators.transforms import CTTransform, Fourier, Radon, Transform, fft2c, ifft2c

__all__ = [
    "BooleanMask", "CTTransform", "CoilFourier", "Fourier", "Measurement", "ParallelBeamGeometry", "Radon",
    "Regridded", "ScanGeometry", "ScanTransform", "Transform", "ViewMask",
    "arc_view_indices",
    "default_center_fraction", "equispaced_columns", "fft2c", "ifft2c", "kspace_column_mask",
    "metal_trace", "metal_trace_ct", "on_grid", "random_columns", "sparse_view_ct", "undersampled_mri", "view_indices",
]
