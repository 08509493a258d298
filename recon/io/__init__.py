"""Reading and writing CT and MR images in real units.

``read_volume`` turns a DICOM file or series folder, a NIfTI file, a fastMRI
HDF5 file, a .npy/.npz array or a PNG/TIFF picture into a :class:`Volume`
of (S, H, W) float32 slices in model units (see :mod:`recon.units`);
``write_volume`` writes a result back in the input's family of formats and
real units (DICOM in HU, NIfTI with the same affine, ...); ``write_png``
writes a windowed 8-bit preview. Problems with the input raise
:class:`recon.errors.InputError` with a one-line message naming the file.

Output formats: DICOM -> DICOM (one file per input file); NIfTI -> NIfTI
(same suffix); fastMRI -> fastMRI-style HDF5 with a ``reconstruction``
dataset; .npy/.npz -> .npy; PNG/TIFF -> float32 TIFF plus a PNG preview of
the middle slice; a measured sinogram (:mod:`recon.io.sinogram`) -> .npy and
NIfTI with the geometry's pixel spacing. Values are in real units (HU for CT, the input's magnitude
for MR) except in the PNG preview.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from recon.errors import InputError
from recon.io.arrays import (SUFFIXES as ARRAY_SUFFIXES, TIFF_SUFFIXES, check_ct_span, read_npy, read_npz,
                              read_png, read_tiff, to_real)
from recon.io.atomic import atomic_outputs, atomic_path
from recon.io.dicom import is_dicom_file, read_dicom
from recon.io.fastmri import is_hdf5_name, read_fastmri
from recon.io.nifti import is_nifti_name, read_nifti
from recon.io.reading import ReadOptions
from recon.io.preview import CT_WINDOWS, to_display, to_uint8, write_png
from recon.io.lazy_stack import LazyStack
from recon.io.shape import check_shape, check_values, make_square
from recon.io.spacing import volume_spacing
from recon.io.volume import Volume
from recon.io.writer import VolumeWriter, write_volume
from recon.units import hu_to_model, model_to_hu, robust_scale

__all__ = ["Volume", "ReadOptions", "read_volume", "model_units", "write_volume", "VolumeWriter",
           "write_png", "to_display", "to_uint8", "CT_WINDOWS", "detect_format", "atomic_path", "atomic_outputs"]

MODALITIES = ("ct", "mri")
AIR_FLOOR_HU = -1024.0  # CT numbers below this (padding outside the field of view) are read as air
DICOM_SUFFIXES = (".dcm", ".dicom", ".ima")
ARRAY_READERS = {"npy": read_npy, "npz": read_npz, "png": read_png, "tiff": read_tiff}


def detect_format(path: Path) -> str:
    """The format name of ``path`` from its type, suffix and, for DICOM, its ``DICM`` marker."""
    if path.is_dir():
        return "dicom"
    suffix = path.suffix.lower()
    if is_nifti_name(path):
        return "nifti"
    if is_hdf5_name(path):
        return "fastmri"
    if suffix in ARRAY_SUFFIXES:
        return "tiff" if suffix in TIFF_SUFFIXES else suffix[1:]
    if suffix in DICOM_SUFFIXES or is_dicom_file(path):
        return "dicom"
    raise InputError(f"{path}: unrecognised file type; expected DICOM, NIfTI (.nii, .nii.gz), fastMRI (.h5), "
                     f".npy, .npz, .png or .tif")


def _read_real(path: Path, fmt: str, modality: str | None, force: bool, lazy: bool,
               volume: int | None, rescale: tuple[float, float] | None) -> tuple[np.ndarray, str, dict]:
    """Dispatch to the format reader; returns (real-unit stack, modality, meta)."""
    if fmt == "dicom":
        stack, meta, modality = read_dicom(path, modality, force, lazy)
        return stack, modality, meta
    if fmt == "nifti":
        stack, meta = read_nifti(path, volume)
        return stack, modality or "mri", meta
    if fmt == "fastmri":
        if modality == "ct":
            raise InputError(f"{path}: a fastMRI file holds MR data, not CT")
        stack, meta = read_fastmri(path)
        return stack, "mri", meta
    modality = modality or "ct"
    meta = {} if rescale is None else {"rescale": list(rescale)}
    return to_real(ARRAY_READERS[fmt](path), modality, path, rescale), modality, meta


def read_volume(path: Path | str, modality: str | None = None, square: str = "refuse", force: bool = False,
                lazy: bool = False, volume: int | None = None, rescale: tuple[float, float] | None = None) -> Volume:
    """Read an image file or DICOM series folder into model units.

    ``modality`` (``ct`` or ``mri``) is inferred when None: from the DICOM
    Modality tag; NIfTI and fastMRI are MR; arrays and pictures default to
    CT. CT numbers below -1024 HU (padding outside the scanner's field of
    view) are read as -1024. ``square`` says what to do with non-square slices: ``refuse``
    (InputError), ``pad`` (zeros around) or ``crop`` (centred); the writers
    undo it. A DICOM input whose Modality tag is not ``modality`` is refused
    unless ``force`` (a series mixing modalities always). Returns a
    :class:`Volume` with (S, H, W) float32 ``data``; with ``lazy``, a CT
    DICOM series gets a :class:`recon.io.lazy_stack.LazyStack` instead, which
    decodes (and checks) its slices when they are indexed, so that a long
    series is never held whole. ``meta["pixel_spacing_mm"]`` is the (row, column)
    pixel spacing where the file gives one (DICOM, NIfTI, a fastMRI ISMRMRD header),
    else None. ``volume`` picks one volume of a 4-D NIfTI file (required there, refused elsewhere).
    ``rescale`` (slope, intercept) gives the HU of a CT array or picture, HU = slope * stored + intercept
    (:func:`recon.io.arrays.to_real`; refused for other formats, which carry their own scale). The flags
    square, force, volume and rescale are those of :class:`recon.io.ReadOptions`.
    """
    path = Path(path)
    if modality is not None and modality not in MODALITIES:
        raise InputError(f"unknown modality {modality!r}; choose ct or mri")
    if not path.exists():
        raise InputError(f"{path}: no such file or folder")
    fmt = detect_format(path)
    ReadOptions(square, force, volume, rescale).check(path)
    real, modality, meta = _read_real(path, fmt, modality, force, lazy, volume, rescale)
    if isinstance(real, LazyStack):
        check_shape(real.shape, path)
        model, scale = real.mapped(lambda image: _model_slice(image, path), real.shape[1:]), 1.0
    else:
        check_values(real, path)
        if fmt in ARRAY_READERS and modality == "ct":
            check_ct_span(real, path, rescale is not None)
        model, scale = model_units(real, modality)
    model, meta["square"] = make_square(model, path, square)
    meta.setdefault("files", [path])
    meta.setdefault("pixel_spacing_mm", volume_spacing(fmt, meta))
    return Volume(data=model, modality=modality, source=path, format=fmt, scale=float(scale), meta=meta)


def model_units(real: np.ndarray, modality: str) -> tuple[np.ndarray, float]:
    """A real-unit stack (HU for CT, magnitude for MR) in model units, float32, and its scale:
    1 for CT (CT numbers below -1024 HU read as -1024), the robust maximum of the stack for MR."""
    if modality == "ct":
        return hu_to_model(np.maximum(real, AIR_FLOOR_HU)).astype(np.float32), 1.0
    model, scale = robust_scale(real)
    return model.astype(np.float32), float(scale)


def _model_slice(image: np.ndarray, source: Path) -> np.ndarray:
    """One CT slice (H, W) in HU, checked, in model units (as :func:`model_units`)."""
    check_values(image[None], source)
    return model_units(image, "ct")[0]
