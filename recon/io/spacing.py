"""In-plane pixel spacing (mm) of what the readers return: DICOM PixelSpacing, NIfTI voxel sizes."""
from __future__ import annotations

import math

import nibabel as nib
import pydicom


def dicom_spacing(ds: pydicom.Dataset) -> tuple[float, float] | None:
    """(row, column) pixel spacing in mm: PixelSpacing, else that of the shared functional groups
    (enhanced multi-frame files); None when absent or not positive."""
    value = ds.get("PixelSpacing")
    if value is None and "SharedFunctionalGroupsSequence" in ds:
        try:
            value = ds.SharedFunctionalGroupsSequence[0].PixelMeasuresSequence[0].PixelSpacing
        except (AttributeError, IndexError, KeyError):
            value = None
    try:
        rows, columns = (float(v) for v in value)
    except (TypeError, ValueError):
        return None
    return (rows, columns) if all(math.isfinite(v) and v > 0 for v in (rows, columns)) else None


def nifti_spacing(meta: dict) -> tuple[float, float]:
    """(row, column) spacing in mm of the axial slices read from a NIfTI image (rows: y, columns: x of RAS)."""
    sizes = nib.affines.voxel_sizes(meta["image"].affine)
    along = {int(axis): float(size) for (axis, _), size in zip(meta["ornt"], sizes)}
    return along[1], along[0]


def volume_spacing(fmt: str, meta: dict) -> tuple[float, float] | None:
    """(row, column) pixel spacing in mm of a volume read as ``fmt`` with reader metadata ``meta`` (a DICOM
    series: its first slice's); None for arrays and pictures, which do not say, and for fastMRI files, whose
    ISMRMRD header is not read for it."""
    if fmt == "dicom":
        return dicom_spacing(meta["datasets"][0])
    if fmt == "nifti":
        spacing = nifti_spacing(meta)
        return spacing if all(math.isfinite(v) and v > 0 for v in spacing) else None
    return None
