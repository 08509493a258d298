"""NIfTI (.nii, .nii.gz) in and out.

The volume is reoriented to the closest RAS+ axes and cut into axial slices
along the third axis; each slice is shown with anterior at the top and the
subject's right on the right (rows = -y, columns = +x, neurological view).
Writing applies the inverse, so the output has the input's array layout,
affine (sform and qform) and header, with float32 data in real units.
"""
from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np
from nibabel.filebasedimages import ImageFileError
from nibabel.orientations import apply_orientation, axcodes2ornt, io_orientation, ornt_transform

from recon.errors import InputError

RAS = axcodes2ornt(("R", "A", "S"))


def is_nifti_name(path: Path) -> bool:
    name = path.name.lower()
    return name.endswith(".nii") or name.endswith(".nii.gz")


def read_nifti(path: Path, volume: int | None = None) -> tuple[np.ndarray, dict]:
    """Read a 2-D or 3-D NIfTI image, or volume ``volume`` of a 4-D one (DWI, fMRI: volumes along the fourth
    axis), as an (S, H, W) float64 stack of axial slices in file units, with
    ``meta = {"image": <nibabel image>, "ndim": ...}``; the output is written as a 3-D image."""
    try:
        image = nib.load(str(path))
    except (ImageFileError, OSError, EOFError, ValueError) as exc:
        raise InputError(f"{path}: not a readable NIfTI file ({str(exc).splitlines()[0]})") from None
    shape = tuple(image.shape)
    while len(shape) > 3 and shape[-1] == 1:
        shape = shape[:-1]
    if len(shape) < 2:
        raise InputError(f"{path}: {len(shape)}-D NIfTI; expected a 2-D image or a 3-D volume")
    volumes = int(np.prod(shape[3:]))
    if len(shape) > 3 and volume is None:
        raise InputError(f"{path}: {len(shape)}-D NIfTI with {volumes} volumes; choose one with --volume "
                         f"(0..{volumes - 1})")
    if volume is not None and not 0 <= volume < volumes:
        raise InputError(f"{path}: --volume {volume} is out of range: the file holds {volumes} "
                         f"volume{'s' if volumes > 1 else ''} (0..{volumes - 1})")
    try:
        proxy = image.dataobj
        if len(shape) > 3:  # one volume read alone: its index over every axis past the third
            proxy = proxy[(slice(None),) * 3 + np.unravel_index(volume, image.shape[3:])]
        data = np.asarray(proxy, dtype=np.float64).reshape(shape[:3] + (1,) * (3 - len(shape)))
    except (OSError, EOFError, ValueError, TypeError) as exc:
        raise InputError(f"{path}: unreadable NIfTI data ({str(exc).splitlines()[0]})") from None
    meta = {"image": image, "ndim": min(len(shape), 3), "ornt": io_orientation(image.affine)}
    return axial_stack(data, image.affine), meta


def axial_stack(data: np.ndarray, affine: np.ndarray) -> np.ndarray:
    """(X, Y, Z) voxel array with its affine -> (S, H, W) axial slices, anterior up."""
    canonical = apply_orientation(data, io_orientation(affine))
    return np.ascontiguousarray(np.flip(np.transpose(canonical, (2, 1, 0)), axis=1))


def write_nifti(meta: dict, real: np.ndarray, path: Path, description: str) -> None:
    """Write the (S, H, W) real-unit stack back in the input's layout and affine."""
    image = meta["image"]
    canonical = np.transpose(np.flip(real, axis=1), (2, 1, 0))
    data = apply_orientation(canonical, ornt_transform(RAS, meta["ornt"])).astype(np.float32)
    if meta["ndim"] == 2:
        data = data[:, :, 0]
    header = image.header.copy()
    header.set_data_dtype(np.float32)
    out = type(image)(data, image.affine, header)
    out.header.set_slope_inter(1.0, 0.0)
    qform, qcode = image.get_qform(coded=True)
    sform, scode = image.get_sform(coded=True)
    if qform is not None:
        out.set_qform(qform, qcode)
    if sform is not None:
        out.set_sform(sform, scode)
    out.header["descrip"] = description.encode("ascii", "replace")[:79]
    nib.save(out, str(path))
