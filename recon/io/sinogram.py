"""Measured CT sinograms in, and their reconstructions out.

A sinogram file is ``.npy`` of shape (n_angles, detector_count), or (slices, n_angles, detector_count),
or ``.h5`` with a dataset ``sinogram`` of either shape, holding line integrals of mu
(dimensionless, -ln I/I0) in the geometry of a GEOM.json (:mod:`recon.io.ct_geometry`).
The reconstruction is written in HU twice: ``.npy`` (S, N, N) and NIfTI with the geometry's pixel spacing.
"""
from __future__ import annotations

from pathlib import Path

import h5py
import nibabel as nib
import numpy as np
from nibabel.orientations import io_orientation

from recon.errors import InputError
from recon.io.volume import Volume

SINOGRAM_SUFFIXES = (".npy", ".h5", ".hdf5")
MAX_LINE_INTEGRAL = 50.0  # mu L: water over 50 cm is about 10; far above this, the file holds counts, not -ln I/I0
MIN_LINE_INTEGRAL = -1.0  # noise makes small negative values; far below, the file is not line integrals


def _load(path: Path) -> np.ndarray:
    if path.suffix.lower() == ".npy":
        try:
            return np.load(path, allow_pickle=False)
        except (OSError, ValueError) as exc:
            raise InputError(f"{path}: not a readable .npy array ({str(exc).splitlines()[0]})") from None
    try:
        with h5py.File(path, "r") as handle:
            if "sinogram" not in handle:
                raise InputError(f"{path}: no 'sinogram' dataset (datasets: {', '.join(handle) or 'none'})")
            return np.asarray(handle["sinogram"])
    except OSError:
        raise InputError(f"{path}: not an HDF5 file") from None


def looks_like_sinogram(path: Path, sino_shape: tuple[int, int]) -> bool:
    """Whether ``path`` holds a sinogram (rather than an image) for a scan of ``sino_shape``: an ``.h5`` with
    a ``sinogram`` dataset, or a ``.npy`` whose last two dimensions are (n_angles, detector_count)."""
    suffix = path.suffix.lower()
    if suffix in (".h5", ".hdf5"):
        try:
            with h5py.File(path, "r") as handle:
                return "sinogram" in handle
        except OSError:
            return False
    if suffix != ".npy":
        return False
    try:
        shape = np.load(path, mmap_mode="r", allow_pickle=False).shape
    except (OSError, ValueError):
        return False
    square = len(shape) >= 2 and shape[-1] == shape[-2]
    return tuple(shape[-2:]) == tuple(sino_shape) or (len(shape) in (2, 3) and not square)


def read_sinogram(path: Path, sino_shape: tuple[int, int]) -> np.ndarray:
    """The (S, n_angles, detector_count) float32 line integrals of ``path``, checked against the geometry."""
    data = _load(path)
    if data.dtype.kind not in "fiu":
        raise InputError(f"{path}: a sinogram holds real line integrals, got {data.dtype}")
    if data.ndim == 2:
        data = data[None]
    if data.ndim != 3 or tuple(data.shape[1:]) != tuple(sino_shape):
        raise InputError(f"{path}: sinogram shape {data.shape} disagrees with the geometry: expected "
                         f"({sino_shape[0]}, {sino_shape[1]}) = (angles_rad, detector_count), or (slices, ...) of it")
    data = data.astype(np.float32)
    if not np.isfinite(data).all():
        raise InputError(f"{path}: the sinogram holds NaN or infinite values")
    low, high = float(data.min()), float(data.max())
    if high > MAX_LINE_INTEGRAL or low < MIN_LINE_INTEGRAL:
        raise InputError(f"{path}: sinogram values span [{low:.3g}, {high:.3g}]; expected line integrals "
                         f"-ln(I/I0), about 0 to 10 (raw counts or intensities must be converted first)")
    return data


def sinogram_volume(path: Path, n_slices: int, size: int, pixel_spacing_mm: float, files: list[Path]) -> Volume:
    """The output record of a measured scan: ``size``² slices in model units (zeros: nothing to show but the
    measurement), written as .npy and NIfTI in HU with ``pixel_spacing_mm``."""
    affine = np.diag([pixel_spacing_mm, pixel_spacing_mm, 1.0, 1.0])
    template = nib.Nifti1Image(np.zeros((size, size, n_slices), np.float32), affine)
    template.set_qform(affine, 1)
    template.set_sform(affine, 1)
    meta = {"measured": "sinogram", "files": files, "pixel_spacing_mm": (pixel_spacing_mm, pixel_spacing_mm),
            "nifti": {"image": template, "ndim": 3, "ornt": io_orientation(affine)}}
    return Volume(np.zeros((n_slices, size, size), np.float32), "ct", path, "sinogram", meta=meta)
