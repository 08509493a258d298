"""DICOM in and out.

Reading: one file (single- or multi-frame), a folder holding one series or
(``read_dicom_files``) the files of one series picked from a folder holding several,
sorted by position along the slice normal (ImagePositionPatient projected on
the ImageOrientationPatient normal), then InstanceNumber. Stored values go
through the modality LUT (RescaleSlope / RescaleIntercept) to real units:
HU for CT, the scanner's magnitude for MR.

Writing: one file per input file, each a copy of its input dataset (patient,
study, frame of reference, geometry and LossyImageCompression kept) with new
Series and SOP Instance UIDs, the given SeriesDescription, ImageType
DERIVED\\SECONDARY, a SourceImageSequence naming the input file's image, and
pixel data stored uncompressed (Explicit VR Little Endian) through the input's
slope and intercept when every value fits the stored integer type, else
through a wider slope (never clipped). A posterior std map (``kind="std"``)
is its own derived series: SeriesNumber input + 2000 (the image's is + 1000),
ImageType DERIVED\\SECONDARY\\...\\POSTERIOR_STD, RescaleType US (not HU:
the values are no CT numbers of the anatomy), its own slope and no window.
"""
from __future__ import annotations

import copy
import math
from pathlib import Path

import numpy as np
import pydicom
from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError
from pydicom.pixels import apply_modality_lut, get_decoder
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

from recon.errors import InputError
from recon.io.dicom_tags import PIXEL_KEYWORDS, check_header, check_modality, rescale_of
from recon.io.lazy_stack import LazyStack

# Tags whose value no longer describes the rewritten pixels (the input's own derivation included).
STALE_KEYWORDS = ("SmallestImagePixelValue", "LargestImagePixelValue", "SmallestPixelValueInSeries",
                  "LargestPixelValueInSeries", "ModalityLUTSequence", "SourceImageSequence", "DerivationCodeSequence")
# ... and those that no longer describe a std map (the window is the anatomy's).
STD_STALE_KEYWORDS = ("WindowCenter", "WindowWidth", "WindowCenterWidthExplanation", "VOILUTSequence")
SERIES_OFFSETS = {"image": 1000, "std": 2000}
STD_IMAGE_TYPE = "POSTERIOR_STD"
SOURCE_PURPOSE = ("121322", "DCM", "Source image for image processing operation")  # CID 7202


def is_dicom_file(path: Path) -> bool:
    """True when the file has the ``DICM`` marker after the 128-byte preamble."""
    try:
        with open(path, "rb") as handle:
            handle.seek(128)
            return handle.read(4) == b"DICM"
    except OSError:
        return False


def _read_dataset(path: Path, header_only: bool = False) -> pydicom.Dataset:
    try:
        return pydicom.dcmread(path, stop_before_pixels=header_only)
    except InvalidDicomError:
        raise InputError(f"{path}: not a DICOM file") from None
    except (OSError, EOFError, ValueError, TypeError) as exc:
        raise InputError(f"{path}: unreadable DICOM file ({str(exc).splitlines()[0]})") from None


def read_header(path: Path) -> pydicom.Dataset:
    """The tags of a DICOM file up to its pixel data (nothing decoded), e.g. to group files into series.

    Raises :class:`InputError` ``<path>: not a DICOM file`` or ``<path>: unreadable DICOM file (...)``.
    """
    return _read_dataset(path, header_only=True)


def _decodable(syntax) -> bool:
    """Whether pydicom has a working decoder plugin for a compressed transfer syntax."""
    try:
        return get_decoder(syntax).is_available
    except NotImplementedError:
        return False


def _pixels(ds: pydicom.Dataset, path: Path) -> np.ndarray:
    """Real-unit pixels of one dataset (header checked), shape (frames, H, W) float64."""
    if int(ds.get("SamplesPerPixel", 1)) != 1:
        raise InputError(f"{path}: colour DICOM image ({ds.get('PhotometricInterpretation')}); "
                         f"expected a grey-scale CT or MR image")
    syntax = ds.file_meta.get("TransferSyntaxUID") if hasattr(ds, "file_meta") else None
    if syntax is not None and syntax.is_compressed and not _decodable(syntax):
        raise InputError(f"{path}: no decoder installed for transfer syntax '{syntax.name}' "
                         f"(install pylibjpeg-libjpeg, pylibjpeg-openjpeg or gdcm)")
    try:
        stored = ds.pixel_array
    except (ValueError, AttributeError, KeyError, TypeError, RuntimeError, NotImplementedError) as exc:
        if syntax is not None and syntax.is_compressed:
            raise InputError(f"{path}: the installed decoders cannot decode transfer syntax '{syntax.name}' "
                             f"(install pylibjpeg-libjpeg, pylibjpeg-openjpeg or gdcm)") from None
        raise InputError(f"{path}: unreadable pixel data ({str(exc).splitlines()[0]})") from None
    real = np.asarray(apply_modality_lut(stored, ds), dtype=np.float64)
    return real.reshape((-1,) + real.shape[-2:])


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
    """Every DICOM file of ``folder`` with pixel data, headers checked, sorted; one series only."""
    files = [p for p in sorted(folder.iterdir()) if p.is_file() and not p.name.startswith(".") and is_dicom_file(p)]
    return _checked_series(files, folder)


def _checked_series(files: list[Path], folder: Path) -> list[tuple[Path, pydicom.Dataset]]:
    """Those of ``files`` with pixel data, headers checked, sorted; one series only (messages name ``folder``).

    The datasets returned hold no pixel data (see :func:`_without_pixels`): the pixels are decoded from
    the files when needed, so a long series is not held twice."""
    found = []
    for path in files:
        ds = _read_dataset(path)
        if any(k in ds for k in PIXEL_KEYWORDS):
            check_header(ds, path)
            found.append((path, _without_pixels(ds)))
    if not found:
        raise InputError(f"{folder}: folder holds no DICOM images")
    series = sorted({str(ds.get("SeriesInstanceUID", "")) for _, ds in found})
    if len(series) > 1:
        raise InputError(f"{folder}: folder mixes {len(series)} DICOM series; put one series per folder")
    sizes = sorted({(int(ds.Rows), int(ds.Columns)) for _, ds in found})
    if len(sizes) > 1:
        raise InputError(f"{folder}: slices of different sizes {sizes} in one series")
    return sorted(found, key=lambda item: _slice_key(item[1]))


def _without_pixels(ds: pydicom.Dataset) -> pydicom.Dataset:
    """``ds`` with its pixel data removed (what the writers keep as the template of a derived file)."""
    for keyword in PIXEL_KEYWORDS:
        if keyword in ds:
            delattr(ds, keyword)
    return ds


def _decoded(path: Path) -> np.ndarray:
    """Real-unit pixels (frames, H, W) float64 of the DICOM file ``path`` (its header already checked)."""
    return _pixels(_read_dataset(path), path)


def read_dicom(path: Path, modality: str | None = None, force: bool = False,
               lazy: bool = False) -> tuple[np.ndarray | LazyStack, dict, str]:
    """Read a DICOM file or series folder as ``modality`` (``ct``, ``mri``; None: the Modality tag's).

    Every header is checked (:mod:`recon.io.dicom_tags`) and the Modality tag
    compared with ``modality`` (another one refused unless ``force``) before
    any pixel is decoded. Returns ``(stack, meta, modality)``: the (S, H, W)
    stack in real units (HU for CT), ``meta = {"datasets": [...] (headers
    without pixel data), "files": [...]}`` and the modality to read it as.
    The stack is float64, or with ``lazy`` a CT series of single-frame files
    as a float32 :class:`LazyStack` that decodes its files when indexed (CT
    numbers need no volume-wide scale; MR magnitudes do, so MR is read whole).
    """
    if path.is_dir():
        items = _series_files(path)
    else:
        items = [(path, _read_dataset(path))]
        check_header(items[0][1], path)
        _without_pixels(items[0][1])
    return _read_items(items, path, modality, force, lazy)


def read_dicom_files(files: list[Path], folder: Path, modality: str | None = None,
                     force: bool = False) -> tuple[np.ndarray, dict, str]:
    """Read ``files`` (one series, in any order) as :func:`read_dicom` reads a series folder;
    for a folder holding several series. Messages name ``folder``; returns ``(stack, meta, modality)``."""
    return _read_items(_checked_series(list(files), folder), folder, modality, force, lazy=False)


def _read_items(items: list[tuple[Path, pydicom.Dataset]], path: Path, modality: str | None,
                force: bool, lazy: bool) -> tuple[np.ndarray | LazyStack, dict, str]:
    """Check the modality of sorted, header-checked (file, dataset) pairs, then decode them (or, ``lazy``,
    a stack that decodes them when indexed)."""
    datasets = [ds for _, ds in items]
    files = [file for file, _ in items]
    modality = check_modality(path, datasets, modality, force)
    meta = {"datasets": datasets, "files": files}
    if lazy and modality == "ct" and len(files) > 1 and all(frames_of(ds) == 1 for ds in datasets):
        shape = (int(datasets[0].Rows), int(datasets[0].Columns))
        return LazyStack(lambda i: _decoded(files[i])[0].astype(np.float32), len(files), shape), meta, modality
    return np.concatenate([_decoded(file) for file in files], axis=0), meta, modality


def _round_up(value: float) -> float:
    """``value`` rounded up to 6 significant digits (a short DS string)."""
    step = 10.0 ** (math.floor(math.log10(value)) - 5)
    return float(f"{math.ceil(value / step) * step:.6g}")


def _ds(value: float) -> str:
    """``value`` as a decimal string (DS) of at most 16 characters, as exact as that allows."""
    return next(text for digits in range(16, 5, -1) if len(text := f"{value:.{digits}g}") <= 16)


def fit_rescale(real: np.ndarray, slope: float, intercept: float, dtype) -> tuple[float, float]:
    """(slope, intercept) storing ``real`` as ``dtype`` without clipping: the given ones when every
    value fits, else the same intercept (unsigned: at most the lowest value) and a wider slope."""
    limits = np.iinfo(dtype)
    low, high = float(real.min()), float(real.max())

    def fits(s: float, b: float) -> bool:
        ends = np.rint((np.array([low, high]) - b) / s)
        return limits.min <= ends.min() and ends.max() <= limits.max

    if fits(slope, intercept):
        return slope, intercept
    if limits.min == 0:
        intercept = min(intercept, float(math.floor(low)))
    below = (intercept - low) / -limits.min if limits.min < 0 else 0.0
    return _round_up(max((high - intercept) / limits.max, below, abs(slope))), intercept


def _stored(template: pydicom.Dataset, file: Path, frames: np.ndarray, kind: str):
    """The stored integers of ``frames`` and the (slope, intercept) they need, or None to keep the input's."""
    dtype = np.int16 if int(template.get("PixelRepresentation", 1)) == 1 else np.uint16
    slope, intercept = rescale_of(template, file)
    if kind == "std":  # own rescale: 0 at 0, the largest value near the largest stored one
        slope, intercept = _round_up(max(float(frames.max()) / np.iinfo(dtype).max, 1e-6)), 0.0
    new_slope, new_intercept = fit_rescale(frames, slope, intercept, dtype)
    stored = np.rint((frames - new_intercept) / new_slope)
    limits = np.iinfo(dtype)
    if stored.min() < limits.min or stored.max() > limits.max:
        raise ValueError(f"internal error: values {frames.min():g}..{frames.max():g} do not fit {np.dtype(dtype)}")
    keep = kind != "std" and (new_slope, new_intercept) == (slope, intercept)
    return stored.astype(dtype), None if keep else (new_slope, new_intercept)


def _source_reference(template: pydicom.Dataset) -> list[Dataset]:
    """A SourceImageSequence naming ``template``'s image (empty when it has no SOP UIDs)."""
    if "SOPClassUID" not in template or "SOPInstanceUID" not in template:
        return []
    item, purpose = Dataset(), Dataset()
    item.ReferencedSOPClassUID, item.ReferencedSOPInstanceUID = template.SOPClassUID, template.SOPInstanceUID
    purpose.CodeValue, purpose.CodingSchemeDesignator, purpose.CodeMeaning = SOURCE_PURPOSE
    item.PurposeOfReferenceCodeSequence = [purpose]
    return [item]


def _label(ds: pydicom.Dataset, template: pydicom.Dataset, series_uid: str, description: str, kind: str) -> None:
    """The derived series' identity: UIDs, number, description, ImageType, source, std-map tags."""
    image_type = list(template.get("ImageType", ["ORIGINAL", "PRIMARY"]))
    extra = image_type[2:3] + [STD_IMAGE_TYPE] if kind == "std" else image_type[2:]
    ds.ImageType = ["DERIVED", "SECONDARY"] + extra
    ds.SeriesInstanceUID = series_uid
    ds.SOPInstanceUID = generate_uid()
    ds.SeriesDescription = description[:64]
    ds.DerivationDescription = description[:1024]
    if "SeriesNumber" in ds and ds.SeriesNumber is not None:
        ds.SeriesNumber = int(ds.SeriesNumber) + SERIES_OFFSETS[kind]
    source = _source_reference(template)
    if source:
        ds.SourceImageSequence = source
    if kind == "std":
        for keyword in STD_STALE_KEYWORDS:
            if keyword in ds:
                delattr(ds, keyword)
        ds.RescaleType = "US"  # unspecified units: not CT numbers of the anatomy


def _derived(template: pydicom.Dataset, file: Path, frames: np.ndarray, series_uid: str, description: str,
             kind: str) -> pydicom.Dataset:
    """A copy of ``template`` (read from ``file``) holding ``frames`` (F, H, W) in real units."""
    ds = copy.deepcopy(template)
    stored, rescale = _stored(template, file, frames, kind)
    for keyword in PIXEL_KEYWORDS + STALE_KEYWORDS:
        if keyword in ds:
            delattr(ds, keyword)
    if rescale is not None:
        ds.RescaleSlope, ds.RescaleIntercept = _ds(rescale[0]), _ds(rescale[1])
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.Rows, ds.Columns = int(stored.shape[1]), int(stored.shape[2])
    ds.BitsAllocated, ds.BitsStored, ds.HighBit = 16, 16, 15
    ds.PixelRepresentation = int(stored.dtype == np.int16)
    if "NumberOfFrames" in ds or stored.shape[0] > 1:
        ds.NumberOfFrames = int(stored.shape[0])
    ds.PixelData = (stored[0] if stored.shape[0] == 1 else stored).astype(stored.dtype.newbyteorder("<")).tobytes()
    ds["PixelData"].VR = "OW"
    _label(ds, template, series_uid, description, kind)
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    if "SOPClassUID" in ds:
        ds.file_meta.MediaStorageSOPClassUID = ds.SOPClassUID
    return ds


def dicom_names(meta: dict, stem: str) -> list[str]:
    """Output file names: ``stem.dcm`` for one input file, ``stem_0001.dcm``... for a series."""
    n = len(meta["datasets"])
    return [f"{stem}.dcm"] if n == 1 else [f"{stem}_{i + 1:04d}.dcm" for i in range(n)]


def write_dicom(meta: dict, real: np.ndarray, paths: list[Path], description: str, kind: str = "image") -> None:
    """Write the (S, H, W) real-unit stack as one file per input dataset at ``paths``;
    ``kind`` is ``image`` (a reconstruction) or ``std`` (its posterior std map)."""
    series_uid = generate_uid()
    start = 0
    for template, file, path in zip(meta["datasets"], meta["files"], paths):
        n_frames = frames_of(template)
        write_dicom_file(template, file, real[start:start + n_frames], path, series_uid, description, kind)
        start += n_frames
    if start != real.shape[0]:
        raise ValueError(f"internal error: wrote {start} of {real.shape[0]} slices")


def frames_of(ds: pydicom.Dataset) -> int:
    """The number of frames (slices) a DICOM dataset holds."""
    return int(ds.get("NumberOfFrames", 1) or 1)


def write_dicom_file(template: pydicom.Dataset, file: Path, frames: np.ndarray, path: Path, series_uid: str,
                     description: str, kind: str = "image") -> None:
    """Write ``frames`` (F, H, W) in real units at ``path`` as the derived copy of ``template`` (read from the
    input ``file``), one file of the derived series ``series_uid``; ``kind`` as in :func:`write_dicom`."""
    if kind not in SERIES_OFFSETS:
        raise ValueError(f"unknown kind {kind!r}; expected one of {', '.join(SERIES_OFFSETS)}")
    pydicom.dcmwrite(path, _derived(template, file, frames, series_uid, description, kind), enforce_file_format=True)
