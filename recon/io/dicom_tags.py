"""DICOM header checks, run on every file of a series before any pixel is decoded.

A file is refused, with one line naming it and the tag, when its tags cannot
describe its pixels: no Rows, Columns or BitsAllocated; uncompressed pixel
data of another length than Rows x Columns x frames needs (zero bytes after
the image are padding and allowed); an ImagePositionPatient without 3 values
or an ImageOrientationPatient without 6; a RescaleSlope or RescaleIntercept
that is empty or not a finite number, or a slope outside ``SLOPE_RANGE``.

Slope bounds: stored values are at most 16 bits in CT and MR images, so with
|slope| < 1e-6 the whole stored range spans less than 0.07 real units (HU for
CT) and with |slope| > 1e3 a single stored step is more than a thousand HU
(air to water in one step). Scanners write 1 for CT and values of order
0.01..100 for MR and PET; 0 (every pixel reads as the intercept) is the usual
corruption.

Modality: ``recon ct`` takes CT and ``recon mri`` takes MR; another Modality
(PT, NM, RTDOSE, or none) is refused unless forced, and a series mixing
modalities is refused always.
"""
from __future__ import annotations

import math
from pathlib import Path

import pydicom
from pydicom.multival import MultiValue

from recon.errors import InputError

PIXEL_KEYWORDS = ("PixelData", "FloatPixelData", "DoubleFloatPixelData")
SLOPE_RANGE = (1e-6, 1e3)
MODALITY_TAGS = {"ct": "CT", "mri": "MR"}
GEOMETRY_COUNTS = (("ImagePositionPatient", 3), ("ImageOrientationPatient", 6))


def _number(ds: pydicom.Dataset, keyword: str, path: Path) -> float:
    """The finite single number held by ``keyword``."""
    value = ds[keyword].value
    if value is None or value == "":
        raise InputError(f"{path}: {keyword} is empty")
    if isinstance(value, (list, tuple, MultiValue)):
        raise InputError(f"{path}: {keyword} has {len(value)} values, expected 1")
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise InputError(f"{path}: {keyword} {value!r} is not a number") from None
    if not math.isfinite(number):
        raise InputError(f"{path}: {keyword} is {number}; expected a finite number")
    return number


def rescale_of(ds: pydicom.Dataset, path: Path) -> tuple[float, float]:
    """(slope, intercept) of the modality LUT, checked; (1, 0) unless both tags are present
    (pydicom applies them only then)."""
    if "RescaleSlope" not in ds or "RescaleIntercept" not in ds:
        return 1.0, 0.0
    slope, intercept = _number(ds, "RescaleSlope", path), _number(ds, "RescaleIntercept", path)
    low, high = SLOPE_RANGE
    if not low <= abs(slope) <= high:
        raise InputError(f"{path}: RescaleSlope is {slope:g}; expected a magnitude between {low:g} and {high:g}")
    return slope, intercept


def _check_geometry(ds: pydicom.Dataset, path: Path) -> None:
    for keyword, count in GEOMETRY_COUNTS:
        value = ds.get(keyword)
        if value is None or value == "":
            continue  # absent or empty: the slices are sorted by InstanceNumber
        values = list(value) if isinstance(value, (list, tuple, MultiValue)) else [value]
        if len(values) != count:
            raise InputError(f"{path}: {keyword} has {len(values)} values, expected {count}")
        try:
            finite = all(math.isfinite(float(v)) for v in values)
        except (TypeError, ValueError):
            finite = False
        if not finite:
            raise InputError(f"{path}: {keyword} holds a value that is not a finite number")


def _positive_int(ds: pydicom.Dataset, keyword: str, path: Path, default: int | None = None) -> int:
    """A required count (``default`` None) or an optional one whose absence, emptiness or 0 means ``default``."""
    value = ds.get(keyword)
    if value is None or value == "" or (default is not None and value == 0):
        if default is None:
            raise InputError(f"{path}: DICOM image has no {keyword}")
        return default
    try:
        number = int(value)
    except (TypeError, ValueError):
        number = 0
    if number < 1:
        raise InputError(f"{path}: {keyword} is {value}; expected a positive whole number")
    return number


def _check_pixel_length(ds: pydicom.Dataset, path: Path) -> None:
    """Uncompressed pixel data must hold exactly what Rows x Columns x frames need (plus zero padding)."""
    rows, columns = _positive_int(ds, "Rows", path), _positive_int(ds, "Columns", path)
    bits = _positive_int(ds, "BitsAllocated", path)
    syntax = ds.file_meta.get("TransferSyntaxUID") if hasattr(ds, "file_meta") else None
    keyword = next(k for k in PIXEL_KEYWORDS if k in ds)
    if keyword == "PixelData" and syntax is not None and syntax.is_encapsulated:
        return  # compressed: the decoder checks the frame sizes
    frames = _positive_int(ds, "NumberOfFrames", path, default=1)
    samples = _positive_int(ds, "SamplesPerPixel", path, default=1)
    needed = (rows * columns * frames * samples * bits + 7) // 8
    data = ds[keyword].value or b""
    if len(data) < needed or bytes(data[needed:]).strip(b"\0"):
        shape = f"{rows}x{columns}" + (f", {frames} frames" if frames > 1 else "")
        raise InputError(f"{path}: Rows x Columns ({shape} of {bits} bits) need {needed} bytes of pixel data, "
                         f"the file holds {len(data)}")


def check_header(ds: pydicom.Dataset, path: Path) -> None:
    """Refuse a dataset whose tags cannot describe its pixels (see the module's docstring)."""
    if not any(k in ds for k in PIXEL_KEYWORDS):
        raise InputError(f"{path}: DICOM file has no pixel data")
    _check_pixel_length(ds, path)
    _check_geometry(ds, path)
    rescale_of(ds, path)


def modality_of(ds: pydicom.Dataset) -> str | None:
    """``ct``, ``mri`` or None from the Modality tag."""
    return {"CT": "ct", "MR": "mri"}.get(str(ds.get("Modality", "")).upper())


def check_modality(path: Path, datasets: list[pydicom.Dataset], wanted: str | None, force: bool) -> str:
    """The modality to read the series as: ``wanted`` (``ct``/``mri``) or, when None, the Modality tag's.

    A series mixing modalities is refused; one whose Modality is not ``wanted`` is refused unless
    ``force``; with ``wanted`` None, one that is neither CT nor MR is refused.
    """
    tags = sorted({str(ds.get("Modality") or "").strip().upper() for ds in datasets})
    if len(tags) > 1:
        names = ", ".join(tag or "none" for tag in tags)
        raise InputError(f"{path}: series mixes modalities {names}; put one modality per folder")
    found = modality_of(datasets[0])
    if wanted is None:
        if found is None:
            kind = datasets[0].get("Modality", "unknown")
            raise InputError(f"{path}: DICOM modality '{kind}' is neither CT nor MR; say which it is (ct or mri)")
        return found
    if found != wanted and not force:
        want = MODALITY_TAGS[wanted]
        raise InputError(f"{path}: DICOM Modality is {tags[0] or 'missing'}, not {want}; "
                         f"pass --force-modality to read it as {want} anyway")
    return wanted
