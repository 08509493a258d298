"""DICOM in and out.

Reading: one file (single- or multi-frame) or a folder holding one series,
sorted by position along the slice normal (ImagePositionPatient projected on
the ImageOrientationPatient normal), then InstanceNumber. Stored values go
through the modality LUT (RescaleSlope / RescaleIntercept) to real units:
HU for CT, the scanner's magnitude for MR.

Writing: one file per input file, each a copy of its input dataset (patient,
study, frame of reference and geometry kept) with new Series and SOP Instance
UIDs, the given SeriesDescription, ImageType DERIVED\\SECONDARY, and pixel
data stored back through the same slope and intercept, uncompressed (Explicit
VR Little Endian).
"""
from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import pydicom
from pydicom.errors import InvalidDicomError
from pydicom.pixels import apply_modality_lut, get_decoder
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

from recon.errors import InputError

PIXEL_KEYWORDS = ("PixelData", "FloatPixelData", "DoubleFloatPixelData")
# Tags whose value no longer describes the rewritten pixels.
STALE_KEYWORDS = ("SmallestImagePixelValue", "LargestImagePixelValue",
                  "SmallestPixelValueInSeries", "LargestPixelValueInSeries", "LossyImageCompression",
                  "LossyImageCompressionRatio", "LossyImageCompressionMethod")
DERIVED_SERIES_OFFSET = 1000


def is_dicom_file(path: Path) -> bool:
    """True when the file has the ``DICM`` marker after the 128-byte preamble."""
    try:
        with open(path, "rb") as handle:
            handle.seek(128)
            return handle.read(4) == b"DICM"
    except OSError:
        return False


def _read_dataset(path: Path) -> pydicom.Dataset:
    try:
        return pydicom.dcmread(path)
    except InvalidDicomError:
        raise InputError(f"{path}: not a DICOM file") from None
    except (OSError, EOFError, ValueError, TypeError) as exc:
        raise InputError(f"{path}: unreadable DICOM file ({str(exc).splitlines()[0]})") from None


def _decodable(syntax) -> bool:
    """Whether pydicom has a working decoder plugin for a compressed transfer syntax."""
    try:
        return get_decoder(syntax).is_available
    except NotImplementedError:
        return False


def _pixels(ds: pydicom.Dataset, path: Path) -> np.ndarray:
    """Real-unit pixels of one dataset, shape (frames, H, W) float64."""
    if not any(k in ds for k in PIXEL_KEYWORDS):
        raise InputError(f"{path}: DICOM file has no pixel data")
    if int(ds.get("SamplesPerPixel", 1)) != 1:
        raise InputError(f"{path}: colour DICOM image ({ds.get('PhotometricInterpretation')}); "
                         f"expected a grey-scale CT or MR image")
    syntax = ds.file_meta.get("TransferSyntaxUID") if hasattr(ds, "file_meta") else None
    if syntax is not None and syntax.is_compressed and not _decodable(syntax):
        raise InputError(f"{path}: no decoder installed for transfer syntax '{syntax.name}' "
                         f"(install pylibjpeg or gdcm)")
    try:
        stored = ds.pixel_array
    except (ValueError, AttributeError, KeyError, TypeError, RuntimeError, NotImplementedError) as exc:
        if syntax is not None and syntax.is_compressed:
            raise InputError(f"{path}: the installed decoders cannot decode transfer syntax '{syntax.name}' "
                             f"(install pylibjpeg or gdcm)") from None
        raise InputError(f"{path}: unreadable pixel data ({str(exc).splitlines()[0]})") from None
    real = np.asarray(apply_modality_lut(stored, ds), dtype=np.float64)
    return real.reshape((-1,) + real.shape[-2:])


def modality_of(ds: pydicom.Dataset) -> str | None:
    """``ct``, ``mri`` or None from the Modality tag."""
    return {"CT": "ct", "MR": "mri"}.get(str(ds.get("Modality", "")).upper())


def _slice_key(ds: pydicom.Dataset) -> tuple[float, int]:
    position = ds.get("ImagePositionPatient")
    orientation = ds.get("ImageOrientationPatient")
    along = 0.0
    if position is not None and orientation is not None and len(orientation) == 6:
        normal = np.cross(np.array(orientation[:3], float), np.array(orientation[3:], float))
        along = float(np.dot(normal, np.array(position, float)))
    elif position is not None:
        along = float(position[2])
    return along, int(ds.get("InstanceNumber") or 0)


def _series_files(folder: Path) -> list[tuple[Path, pydicom.Dataset]]:
    """Every DICOM file of ``folder`` with pixel data, sorted; one series only."""
    found = []
    for path in sorted(p for p in folder.iterdir() if p.is_file() and not p.name.startswith(".")):
        if not is_dicom_file(path):
            continue
        ds = _read_dataset(path)
        if any(k in ds for k in PIXEL_KEYWORDS):
            found.append((path, ds))
    if not found:
        raise InputError(f"{folder}: folder holds no DICOM images")
    series = sorted({str(ds.get("SeriesInstanceUID", "")) for _, ds in found})
    if len(series) > 1:
        raise InputError(f"{folder}: folder mixes {len(series)} DICOM series; put one series per folder")
    sizes = sorted({(int(ds.Rows), int(ds.Columns)) for _, ds in found})
    if len(sizes) > 1:
        raise InputError(f"{folder}: slices of different sizes {sizes} in one series")
    return sorted(found, key=lambda item: _slice_key(item[1]))


def read_dicom(path: Path) -> tuple[np.ndarray, dict, str | None]:
    """Read a DICOM file or series folder.

    Returns ``(stack, meta, modality)``: the (S, H, W) float64 stack in real
    units (HU for CT), ``meta = {"datasets": [...], "files": [...]}`` and the
    modality from the Modality tag (None when neither CT nor MR).
    """
    items = _series_files(path) if path.is_dir() else [(path, _read_dataset(path))]
    stacks = [_pixels(ds, file) for file, ds in items]
    datasets = [ds for _, ds in items]
    modalities = {modality_of(ds) for ds in datasets}
    meta = {"datasets": datasets, "files": [file for file, _ in items]}
    return np.concatenate(stacks, axis=0), meta, modalities.pop() if len(modalities) == 1 else None


def _rescale(ds: pydicom.Dataset) -> tuple[float, float]:
    return float(ds.get("RescaleSlope", 1) or 1), float(ds.get("RescaleIntercept", 0) or 0)


def _derived(template: pydicom.Dataset, frames: np.ndarray, series_uid: str, description: str) -> pydicom.Dataset:
    """A copy of ``template`` holding ``frames`` (F, H, W) in real units."""
    ds = copy.deepcopy(template)
    slope, intercept = _rescale(ds)
    signed = int(ds.get("PixelRepresentation", 1)) == 1
    dtype = np.int16 if signed else np.uint16
    limits = np.iinfo(dtype)
    stored = np.clip(np.rint((frames - intercept) / slope), limits.min, limits.max).astype(dtype)
    for keyword in PIXEL_KEYWORDS + STALE_KEYWORDS:
        if keyword in ds:
            delattr(ds, keyword)
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.Rows, ds.Columns = int(stored.shape[1]), int(stored.shape[2])
    ds.BitsAllocated, ds.BitsStored, ds.HighBit = 16, 16, 15
    ds.PixelRepresentation = int(signed)
    if "NumberOfFrames" in ds or stored.shape[0] > 1:
        ds.NumberOfFrames = int(stored.shape[0])
    ds.PixelData = (stored[0] if stored.shape[0] == 1 else stored).astype(f"<{np.dtype(dtype).str[1:]}").tobytes()
    ds["PixelData"].VR = "OW"
    image_type = list(ds.get("ImageType", ["ORIGINAL", "PRIMARY"]))
    ds.ImageType = ["DERIVED", "SECONDARY"] + image_type[2:]
    ds.SeriesInstanceUID = series_uid
    ds.SOPInstanceUID = generate_uid()
    ds.SeriesDescription = description[:64]
    ds.DerivationDescription = description[:1024]
    if "SeriesNumber" in ds and ds.SeriesNumber is not None:
        ds.SeriesNumber = int(ds.SeriesNumber) + DERIVED_SERIES_OFFSET
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    if "SOPClassUID" in ds:
        ds.file_meta.MediaStorageSOPClassUID = ds.SOPClassUID
    return ds


def dicom_names(meta: dict, stem: str) -> list[str]:
    """Output file names: ``stem.dcm`` for one input file, ``stem_0001.dcm``... for a series."""
    n = len(meta["datasets"])
    return [f"{stem}.dcm"] if n == 1 else [f"{stem}_{i + 1:04d}.dcm" for i in range(n)]


def write_dicom(meta: dict, real: np.ndarray, paths: list[Path], description: str) -> None:
    """Write the (S, H, W) real-unit stack as one file per input dataset at ``paths``."""
    series_uid = generate_uid()
    start = 0
    for template, path in zip(meta["datasets"], paths):
        n_frames = int(template.get("NumberOfFrames", 1) or 1)
        ds = _derived(template, real[start:start + n_frames], series_uid, description)
        start += n_frames
        pydicom.dcmwrite(path, ds, enforce_file_format=True)
    if start != real.shape[0]:
        raise ValueError(f"internal error: wrote {start} of {real.shape[0]} slices")
