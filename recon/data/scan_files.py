"""Finding and reading the user's scans for :mod:`recon.data.from_scans`.

:func:`find_scans` groups the files under a folder into scans (a DICOM series
by folder and SeriesInstanceUID, from the headers alone; a NIfTI or fastMRI
file) with a patient each; :func:`read_scan` reads one in model units with the
project's readers. Files that cannot be used become :class:`Skip` records
with a reason, never errors.
"""
from __future__ import annotations

import os
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np
import pydicom
from tqdm import tqdm

from recon.errors import InputError
from recon.io import DICOM_SUFFIXES, model_units, read_volume
from recon.io.dicom import is_dicom_file, read_dicom_files, read_header
from recon.io.dicom_tags import MODALITY_TAGS, modality_of
from recon.io.fastmri import is_hdf5_name
from recon.io.nifti import is_nifti_name
from recon.io.shape import check_values
from recon.io.spacing import dicom_spacing, nifti_spacing

# What a reader may raise on a damaged file; the file is then skipped, never fatal.
READ_ERRORS = (ValueError, OSError, EOFError, KeyError, IndexError, AttributeError, TypeError, RuntimeError)
UNSUPPORTED = ("not a DICOM file", "not a fastMRI file", "not an HDF5 file", "holds no image")
SKIP_LABELS = {"unsupported": "not DICOM/NIfTI/fastMRI", "unreadable": "unreadable", "modality": "not {tag}",
               "spacing": "without pixel spacing", "empty": "with only near-empty slices"}


@dataclass
class Scan:
    """What is read at once: a DICOM series (``kind`` dicom, its files) or one NIfTI / fastMRI file;
    ``label`` is the file or the series' folder relative to DIR."""

    kind: str
    files: list[Path]
    label: str
    patient: str


@dataclass
class Skip:
    """Files left out: ``path`` (relative to DIR: a file or a series' folder), how many ``files``, the
    ``kind`` (a key of ``SKIP_LABELS``) and the ``reason``."""

    path: str
    files: int
    kind: str
    reason: str


@dataclass
class Stack:
    """A scan's slices: ``images`` (S, H, W) float32 in model units, each slice's ``spacing``
    ((row, column) mm, or None) and ``sources`` (``file#index``)."""

    images: np.ndarray
    spacing: list[tuple[float, float] | None]
    sources: list[str]


def rel_path(path: Path, root: Path) -> str:
    """``path`` relative to ``root``, with forward slashes."""
    return path.relative_to(root).as_posix()


def walk(root: Path, exclude: set[Path]) -> list[Path]:
    """Every file under ``root``, sorted, hidden files and folders and the paths in ``exclude`` left out."""
    found = []
    for folder, dirs, files in os.walk(root):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        found += [Path(folder) / name for name in sorted(files) if not name.startswith(".")]
    return [path for path in found if path.resolve() not in exclude]


def _skip(path: str, files: int, exc: Exception, root: Path) -> Skip:
    """A skip for a reader's error: its first line with paths relative to ``root`` (less ``path: ``)."""
    message = str(exc).splitlines()[0] if str(exc) else ""
    if not isinstance(exc, InputError):
        message = f"{type(exc).__name__}: {message}"
    message = message.replace(f"{root}{os.sep}", "")
    if message.startswith(f"{path}: "):
        message = message[len(path) + 2:]
    kind = "unsupported" if any(text in message for text in UNSUPPORTED) else "unreadable"
    return Skip(path, files, kind, message)


def _dicom_header(path: Path, root: Path, modality: str,
                  need_spacing: bool) -> tuple[pydicom.Dataset | None, Skip | None]:
    """The header of a usable DICOM file, or the skip saying why it is not one."""
    rel = rel_path(path, root)
    try:
        header = read_header(path)
    except READ_ERRORS as exc:
        return None, _skip(rel, 1, exc, root)
    if "Rows" not in header:
        return None, Skip(rel, 1, "unsupported", "DICOM file holds no image")
    if modality_of(header) != modality:
        tag = str(header.get("Modality") or "").strip() or "missing"
        return None, Skip(rel, 1, "modality", f"DICOM Modality {tag}, not {MODALITY_TAGS[modality]}")
    if need_spacing and dicom_spacing(header) is None:
        return None, Skip(rel, 1, "spacing", "no PixelSpacing")
    return header, None


def _hdf5_attrs(path: Path) -> dict:
    """The root attributes of an HDF5 file ({} when it cannot be opened)."""
    try:
        with h5py.File(path, "r") as handle:
            return dict(handle.attrs)
    except OSError:
        return {}


def _patient_id(value) -> str | None:
    """A fastMRI ``patient_id`` attribute as text, None when absent or empty."""
    if value is None:
        return None
    text = value.decode(errors="replace") if isinstance(value, bytes) else str(value)
    return text.strip() or None


def _file_scan(path: Path, root: Path, modality: str, need_spacing: bool) -> Scan | Skip:
    """A NIfTI or fastMRI file as a scan, or a skip (fastMRI holds MR only, and no pixel spacing)."""
    rel = rel_path(path, root)
    if is_nifti_name(path):
        return Scan("nifti", [path], rel, rel)
    attrs = _hdf5_attrs(path)
    if "manifest" in attrs:  # a dataset of recon.data.build
        return Skip(rel, 1, "unsupported", "a slice dataset (recon data build), not a scan")
    if modality == "ct":
        return Skip(rel, 1, "modality", "a fastMRI file holds MR data, not CT")
    if need_spacing:
        return Skip(rel, 1, "spacing", "fastMRI files record no pixel spacing")
    return Scan("fastmri", [path], rel, _patient_id(attrs.get("patient_id")) or rel)


def find_scans(root: Path, files: list[Path], modality: str, need_spacing: bool,
               progress: bool) -> tuple[list[Scan], list[Skip]]:
    """Group ``files`` into scans (DICOM headers read, no pixels); the files that cannot be used are skips."""
    scans: list[Scan] = []
    skips: list[Skip] = []
    series: dict[tuple[Path, str], list[tuple[Path, str]]] = {}
    for path in tqdm(files, desc="scanning", unit="file", disable=not progress, leave=False):
        if is_nifti_name(path) or is_hdf5_name(path):
            found = _file_scan(path, root, modality, need_spacing)
            (scans if isinstance(found, Scan) else skips).append(found)
        elif path.suffix.lower() in DICOM_SUFFIXES or is_dicom_file(path):
            header, skip = _dicom_header(path, root, modality, need_spacing)
            if skip is not None:
                skips.append(skip)
                continue
            key = (path.parent, str(header.get("SeriesInstanceUID") or ""))
            series.setdefault(key, []).append((path, str(header.get("PatientID") or "").strip()))
        else:
            reason = "not DICOM, NIfTI (.nii, .nii.gz) or fastMRI (.h5)"
            skips.append(Skip(rel_path(path, root), 1, "unsupported", reason))
    per_folder = Counter(folder for folder, _ in series)
    for (folder, uid), members in series.items():
        where = rel_path(folder, root)
        label = where if per_folder[folder] == 1 else f"{where} (series {uid or 'without a UID'})"
        scans.append(Scan("dicom", [path for path, _ in members], label, members[0][1] or where))
    return scans, skips


def _dicom_stack(files: list[Path], root: Path, modality: str) -> Stack:
    """A DICOM series in model units, with each slice's spacing and source (``file#frame``)."""
    real, meta, _ = read_dicom_files(files, files[0].parent, modality)
    check_values(real, files[0].parent)
    images, _ = model_units(real, modality)
    spacing, sources = [], []
    for ds, path in zip(meta["datasets"], meta["files"]):
        frames = int(ds.get("NumberOfFrames", 1) or 1)
        spacing += [dicom_spacing(ds)] * frames
        sources += [f"{rel_path(path, root)}#{k}" for k in range(frames)]
    return Stack(images, spacing, sources)


def _file_stack(files: list[Path], root: Path, modality: str) -> Stack:
    """A NIfTI or fastMRI file in model units (padded to square slices), with spacing and sources."""
    volume = read_volume(files[0], modality=modality, square="pad")
    spacing = nifti_spacing(volume.meta) if volume.format == "nifti" else None
    rel = rel_path(files[0], root)
    return Stack(volume.data, [spacing] * volume.n_slices, [f"{rel}#{k}" for k in range(volume.n_slices)])


def _sift(files: list[Path], root: Path, modality: str) -> tuple[list[Path], list[Skip]]:
    """The files of a series that read on their own, and skips for the others."""
    good, skips = [], []
    for path in files:
        try:
            read_dicom_files([path], path.parent, modality)
            good.append(path)
        except READ_ERRORS as exc:
            skips.append(_skip(rel_path(path, root), 1, exc, root))
    return good, skips


def read_scan(scan: Scan, root: Path, modality: str) -> tuple[Stack | None, list[Skip]]:
    """A scan's slices and what was skipped: the whole scan, or the files of a series that failed
    (the series is then read again without them)."""
    reader = _dicom_stack if scan.kind == "dicom" else _file_stack
    try:
        return reader(scan.files, root, modality), []
    except READ_ERRORS as exc:
        if len(scan.files) == 1:
            return None, [_skip(rel_path(scan.files[0], root), 1, exc, root)]
        error = exc
    good, skips = _sift(scan.files, root, modality)
    if good and len(good) < len(scan.files):
        try:
            return _dicom_stack(good, root, modality), skips
        except READ_ERRORS as exc:
            error = exc
    if good:
        skips.append(_skip(scan.label, len(good), error, root))
    return None, skips


def skip_summary(skipped: list[Skip], n_files: int, modality: str) -> str:
    """One line: ``skipped K of N files (a not DICOM/NIfTI/fastMRI, b unreadable, ...)``, the first
    unreadable file's reason after it."""
    counts = Counter()
    for skip in skipped:
        counts[skip.kind] += skip.files
    parts = [f"{counts[kind]} {label.format(tag=MODALITY_TAGS[modality])}"
             for kind, label in SKIP_LABELS.items() if counts[kind]]
    line = f"skipped {sum(counts.values())} of {n_files} files" + (f" ({', '.join(parts)})" if parts else "")
    first = next((skip for skip in skipped if skip.kind == "unreadable"), None)
    if first is not None:
        reason = first.reason if len(first.reason) <= 160 else first.reason[:157] + "..."
        line += f"; first unreadable: {first.path}: {reason}"
    return line
