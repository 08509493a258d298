"""In-plane pixel spacing (mm) of what the readers return: DICOM PixelSpacing, NIfTI voxel sizes, the ISMRMRD
header of a fastMRI file."""
from __future__ import annotations

import math
import xml.etree.ElementTree as ElementTree

import nibabel as nib
import pydicom


def _positive(spacing: tuple[float, float]) -> tuple[float, float] | None:
    """``spacing`` when both values are finite and positive, else None."""
    return spacing if all(math.isfinite(v) and v > 0 for v in spacing) else None


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
    return _positive((rows, columns))


def nifti_spacing(meta: dict) -> tuple[float, float]:
    """(row, column) spacing in mm of the axial slices read from a NIfTI image (rows: y, columns: x of RAS)."""
    sizes = nib.affines.voxel_sizes(meta["image"].affine)
    along = {int(axis): float(size) for (axis, _), size in zip(meta["ornt"], sizes)}
    return along[1], along[0]


ISMRMRD = "{http://www.ismrm.org/ISMRMRD}"


def ismrmrd_spacing(header: str | bytes | None, space: str) -> tuple[float, float] | None:
    """(row, column) pixel spacing in mm of a fastMRI image from its ``ismrmrd_header`` XML: the field of view
    over the matrix size of ``space`` ("encodedSpace": the k-space's own grid, rows along the readout x;
    "reconSpace": the reference reconstruction's). None without a header or with one that does not say."""
    if header is None:
        return None
    try:
        root = ElementTree.fromstring(header)
        found = root.find(f"{ISMRMRD}encoding/{ISMRMRD}{space}")
        fov = [float(found.find(f"{ISMRMRD}fieldOfView_mm/{ISMRMRD}{a}").text) for a in "xy"]
        matrix = [float(found.find(f"{ISMRMRD}matrixSize/{ISMRMRD}{a}").text) for a in "xy"]
    except (ElementTree.ParseError, AttributeError, TypeError, ValueError):
        return None
    return _positive((fov[0] / matrix[0], fov[1] / matrix[1])) if min(matrix) > 0 else None


def volume_spacing(fmt: str, meta: dict) -> tuple[float, float] | None:
    """(row, column) pixel spacing in mm of a volume read as ``fmt`` with reader metadata ``meta`` (a DICOM
    series: its first slice's); None for the other formats (arrays and pictures do not say; the fastMRI reader
    sets its own from the ISMRMRD header, :func:`ismrmrd_spacing`)."""
    if fmt == "dicom":
        return dicom_spacing(meta["datasets"][0])
    if fmt == "nifti":
        return _positive(nifti_spacing(meta))
    return None
