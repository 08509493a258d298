"""Training sets from the user's own scans: ``recon data build --from DIR``.

Scans (:mod:`recon.data.scan_files`): DIR is walked recursively (hidden files
and folders left out). DICOM files are grouped into series by folder and
SeriesInstanceUID (headers only); a NIfTI (.nii, .nii.gz) or fastMRI (.h5)
file is one scan. Each scan has a patient: the DICOM PatientID (else the
series' folder relative to DIR), the fastMRI ``patient_id`` attribute (else
the file), the file for NIfTI. Patients, not slices, are split into
train/val/test (:func:`split_patients`), so no patient is in two splits.

Slices: each scan is read in model units by the project's readers (CT
``(HU + 1000) / 4000``; MR magnitude over the robust maximum of the volume)
and each slice is brought to one N x N grid (:func:`to_grid`): zero-padded to a
square (zero is air for CT, background for MR) and resized, or resampled to a
pixel spacing in mm (DICOM PixelSpacing, NIfTI voxel sizes) and then
centre-cropped or zero-padded. Near-empty slices, under ``MIN_CONTENT`` of
their pixels above ``AIR_LEVEL``, are left out.

Output: the layout of :mod:`recon.data.build` plus ``/{split}/source`` (the
file relative to DIR, ``#`` and the slice index in it: the frame of a DICOM
file, the axial slice of a NIfTI volume in RAS order, the slice of a fastMRI
file) and ``/{split}/patient``, UTF-8 strings, one per slice. The manifest
lists every skipped file with its reason. A file that cannot be used is
skipped, never fatal; no usable slice at all is an :class:`InputError`.
"""
from __future__ import annotations

import hashlib
import heapq
import json
import math
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path

import h5py
import numpy as np
import torch
from tqdm import tqdm

from recon.data.build import INTENSITY, MAX_SIZE, MIN_SIZE, SPLITS, create_images, read_manifest
from recon.data.scan_files import Scan, Skip, find_scans, read_scan, skip_summary, walk
from recon.errors import InputError
from recon.io.atomic import atomic_path
from recon.io.dicom_tags import MODALITY_TAGS
from recon.resample import resize_to
from recon.units import hu_to_model

FROM_SCANS_VERSION = 1
MIN_CONTENT = 0.02  # a slice with fewer of its pixels above the air level is left out
AIR_LEVEL = {"ct": (float(hu_to_model(-900.0)), "-900 HU"), "mri": (0.1, "0.1 (a tenth of the volume's robust max)")}
INTENSITY_OF_VOLUMES = {"ct": INTENSITY["ct"], "mri": "mri: magnitude / robust max (99.5th percentile of each volume)"}


@dataclass(frozen=True)
class Recipe:
    """How the set is made: ``modality``, grid side ``size``, ``pixel_spacing`` (mm; None: resize to
    ``size``), the fractions of patients for val and test, the ``seed`` and ``n``, a cap on the
    training slices (None: all)."""

    modality: str
    size: int = 128
    pixel_spacing: float | None = None
    val_fraction: float = 0.1
    test_fraction: float = 0.1
    seed: int = 0
    n: int | None = None

    def check(self) -> None:
        """Raise :class:`InputError` for an option out of range."""
        if self.modality not in INTENSITY:
            raise InputError(f"unknown modality {self.modality!r}; choose ct or mri")
        if not MIN_SIZE <= self.size <= MAX_SIZE:
            raise InputError(f"size {self.size} is out of range ({MIN_SIZE}..{MAX_SIZE})")
        if self.pixel_spacing is not None and not (math.isfinite(self.pixel_spacing) and self.pixel_spacing > 0):
            raise InputError(f"--pixel-spacing must be a positive number of mm, got {self.pixel_spacing}")
        for name, value in (("val", self.val_fraction), ("test", self.test_fraction)):
            if not 0 <= value < 1:
                raise InputError(f"--{name}-fraction must be in [0, 1), got {value}")
        if self.val_fraction + self.test_fraction >= 1:
            raise InputError("--val-fraction plus --test-fraction must be below 1: training needs patients too")
        if self.n is not None and self.n < 1:
            raise InputError(f"--n must be >= 1, got {self.n}")


@dataclass
class Report:
    """A finished build: the file, slices and patients per split, files seen, skips, near-empty slices left out."""

    path: Path
    counts: dict[str, int]
    patients: dict[str, int]
    n_files: int
    skipped: list[Skip]
    dropped: int
    spacing: list[float] | None


def split_patients(patients: list[str], val_fraction: float, test_fraction: float, seed: int,
                   root: Path) -> dict[str, str]:
    """Patient -> split. ``numpy.random.default_rng(seed)`` permutes the sorted patients; the first
    ``round(test_fraction * P)`` (at least one when the fraction is above 0) go to test, as many for val
    next, the rest to train. Raises :class:`InputError` when val and test cannot have patients of their own."""
    order = sorted(set(patients))
    shares = {split: 0 if f == 0 else max(1, round(f * len(order)))
              for split, f in (("test", test_fraction), ("val", val_fraction))}
    if shares["test"] + shares["val"] >= len(order):
        wanted = " and ".join(s for s in ("val", "test") if shares[s])
        raise InputError(f"{root}: {len(order)} patient(s) found; {wanted} need patients of their own and training "
                         f"at least one ({1 + sum(map(bool, shares.values()))} or more in all at these fractions); "
                         f"pass --val-fraction 0 --test-fraction 0 to train on every patient")
    ranked = [order[i] for i in np.random.default_rng(seed).permutation(len(order))]
    first_train = shares["test"] + shares["val"]
    return {patient: "test" if rank < shares["test"] else "val" if rank < first_train else "train"
            for rank, patient in enumerate(ranked)}


def centre(image: np.ndarray, size: int) -> np.ndarray:
    """An (H, W) slice centre-cropped and/or zero-padded to (size, size) float32."""
    out = np.zeros((size, size), dtype=np.float32)
    (h, w), cut, put = image.shape, [], []
    for n in (h, w):
        start = abs(n - size) // 2
        cut.append(slice(start, start + size) if n >= size else slice(0, n))
        put.append(slice(0, size) if n >= size else slice(start, start + n))
    out[tuple(put)] = image[tuple(cut)]
    return out


def to_grid(image: np.ndarray, spacing: tuple[float, float] | None, size: int,
            pixel_spacing: float | None) -> np.ndarray:
    """One (H, W) slice in model units on the (size, size) float32 grid: zero-padded to a square and
    resized; or, with ``pixel_spacing`` (mm), resampled from ``spacing`` ((row, column) mm) to it and
    centre-cropped or zero-padded. Resampling is bilinear, antialiased when shrinking."""
    if pixel_spacing is None:
        image, shape = centre(image, max(image.shape)), (size, size)
    else:
        shape = tuple(max(1, round(n * d / pixel_spacing)) for n, d in zip(image.shape, spacing))
    if tuple(image.shape) != shape:
        image = resize_to(torch.from_numpy(np.ascontiguousarray(image, dtype=np.float32))[None, None], shape)[0, 0]
        image = image.numpy()
    return centre(image, size)


def near_empty(image: np.ndarray, modality: str) -> bool:
    """Whether under ``MIN_CONTENT`` of the slice's pixels are above the air level of ``modality``."""
    return float((image > AIR_LEVEL[modality][0]).mean()) < MIN_CONTENT


def _key(seed: int, source: str) -> int:
    """The rank of a training slice when the slices are capped: a 64-bit hash of (seed, source)."""
    return int.from_bytes(hashlib.blake2b(f"{seed}\0{source}".encode(), digest_size=8).digest(), "big")


class SplitWriter:
    """Appends (N, N) slices of one split to ``/{split}/images`` with their source and patient. With
    ``cap``, keeps the ``cap`` slices of smallest :func:`_key`, whatever the order they come in."""

    def __init__(self, handle: h5py.File, split: str, size: int, seed: int, cap: int | None = None) -> None:
        self.handle, self.split, self.seed, self.cap = handle, split, seed, cap
        self.images = create_images(handle, split, 0, size, growable=True)
        self.sources: list[str] = []
        self.patients: list[str] = []
        self._largest: list[tuple[int, int]] = []  # heap of (-key, slot): the kept slice of largest key first

    def add(self, image: np.ndarray, source: str, patient: str) -> None:
        slot = len(self.sources)
        if self.cap is not None:
            key = _key(self.seed, source)
            if slot < self.cap:
                heapq.heappush(self._largest, (-key, slot))
            elif key < -self._largest[0][0]:
                slot = heapq.heapreplace(self._largest, (-key, self._largest[0][1]))[1]
            else:
                return
        if slot == len(self.sources):
            self.images.resize(slot + 1, axis=0)
            self.sources.append(source)
            self.patients.append(patient)
        else:
            self.sources[slot], self.patients[slot] = source, patient
        self.images[slot, 0] = image

    def finish(self) -> int:
        """Write ``/{split}/source`` and ``/{split}/patient``; returns the number of slices."""
        for name, values in (("source", self.sources), ("patient", self.patients)):
            self.handle.create_dataset(f"{self.split}/{name}", data=np.array(values, dtype=object),
                                       dtype=h5py.string_dtype())
        return len(self.sources)


def grid_spacing(image_shape: tuple[int, int], spacing: tuple[float, float] | None, size: int,
                 pixel_spacing: float | None) -> float | None:
    """The pixel spacing in mm of a slice of ``image_shape`` and ``spacing`` on :func:`to_grid`'s grid (None:
    the slice's spacing is not known)."""
    if pixel_spacing is not None or spacing is None:
        return pixel_spacing
    return float(np.mean(spacing)) * max(image_shape) / size


def _fill(writers: dict[str, SplitWriter], scans: list[Scan], split_of: dict[str, str], root: Path,
          recipe: Recipe, skipped: list[Skip], progress: bool) -> tuple[int, list[float] | None]:
    """Read every scan into its patient's split, appending to ``skipped``; returns the near-empty slices left out
    and [smallest, largest] pixel spacing (mm) of the kept slices on the grid (None: none known)."""
    dropped, spacings = 0, []
    with tqdm(total=sum(len(s.files) for s in scans), desc=f"{recipe.modality} scans", unit="file",
              disable=not progress) as bar:
        for scan in scans:
            stack, skips = read_scan(scan, root, recipe.modality)
            skipped += skips
            if stack is not None:
                kept = 0
                for image, spacing, source in zip(stack.images, stack.spacing, stack.sources):
                    grid = to_grid(image, spacing, recipe.size, recipe.pixel_spacing)
                    if not near_empty(grid, recipe.modality):
                        writers[split_of[scan.patient]].add(grid, source, scan.patient)
                        kept += 1
                        spacings.append(grid_spacing(image.shape, spacing, recipe.size, recipe.pixel_spacing))
                dropped += len(stack.sources) - kept
                if kept == 0:
                    read = len(scan.files) - sum(s.files for s in skips)
                    skipped.append(Skip(scan.label, read, "empty", "every slice is near-empty"))
            bar.update(len(scan.files))
    known = [s for s in spacings if s is not None]
    return dropped, [round(min(known), 4), round(max(known), 4)] if known else None


def _manifest(report: Report, root: Path, recipe: Recipe) -> dict:
    """The root attribute ``manifest``: the keys of :mod:`recon.data.build` and what this build did."""
    level = AIR_LEVEL[recipe.modality][1]
    grid = (f"each slice zero-padded to a square and resized to {recipe.size}x{recipe.size}" if recipe.pixel_spacing
            is None else f"each slice resampled to {recipe.pixel_spacing:g} mm pixels from the DICOM PixelSpacing / "
            f"NIfTI voxel sizes, then centre-cropped or zero-padded to {recipe.size}x{recipe.size}")
    cap = f"; capped at {recipe.n} slices (seeds: cap)" if recipe.n else ""
    patient = "(DICOM PatientID, else the series' folder; fastMRI patient_id, else the file; NIfTI file)"
    return {
        "modality": recipe.modality, "size": recipe.size, "counts": report.counts,
        "seeds": {"seed": recipe.seed, "patients": "numpy default_rng(seed).permutation of the sorted patients: "
                  "test first, then val, the rest train",
                  "cap": "with n, the n training slices of smallest blake2b(f'{seed}\\0{source}', digest_size=8)"},
        "source": f"the user's scans under {root.resolve()} ({report.n_files} files, "
                  f"{sum(s.files for s in report.skipped)} skipped)",
        "splits": {split: f"every usable slice of {report.patients[split]} patient"
                   f"{'' if report.patients[split] == 1 else 's'} {patient}, no patient in two splits"
                   + (cap if split == "train" else "") for split in SPLITS},
        "intensity": INTENSITY_OF_VOLUMES[recipe.modality],
        "generator": {"name": "recon.data.from_scans", "version": FROM_SCANS_VERSION},
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "grid": grid + " (bilinear, antialiased when shrinking; zero is air for CT, background for MR)",
        "pixel_spacing_mm": recipe.pixel_spacing, "pixel_spacing_range_mm": report.spacing,
        "patients": report.patients,
        "fractions": {"val": recipe.val_fraction, "test": recipe.test_fraction},
        "empty_slices": f"left out: {report.dropped} slices with under {MIN_CONTENT:.0%} of their pixels above {level}",
        "skipped": [asdict(skip) for skip in report.skipped],
    }


def _own_output(out: Path) -> set[Path]:
    """``out`` when it is a slice dataset already (an earlier build into DIR): not an input, may be replaced."""
    try:
        read_manifest(out)
    except InputError:
        return set()
    return {out.resolve()}


def build_from_scans(root: Path | str, out: Path | str, recipe: Recipe, progress: bool = True) -> Report:
    """Write a slice dataset built from the scans under ``root`` to ``out`` (HDF5, atomically; an input
    is never replaced); see the module docstring. Raises :class:`InputError` when no slice is usable."""
    root, out = Path(root), Path(out)
    recipe.check()
    if not root.is_dir():
        raise InputError(f"{root}: no such folder" if not root.exists() else f"{root}: not a folder of scans")
    files = walk(root, _own_output(out))
    scans, skipped = find_scans(root, files, recipe.modality, recipe.pixel_spacing is not None, progress)
    tag = MODALITY_TAGS[recipe.modality]
    if not scans:
        raise InputError(f"{root}: no usable {tag} scans; {skip_summary(skipped, len(files), recipe.modality)}")
    split_of = split_patients([s.patient for s in scans], recipe.val_fraction, recipe.test_fraction, recipe.seed, root)
    with atomic_path(out, inputs=files) as temp, h5py.File(temp, "w") as handle:
        writers = {split: SplitWriter(handle, split, recipe.size, recipe.seed, recipe.n if split == "train" else None)
                   for split in SPLITS}
        dropped, spacing = _fill(writers, scans, split_of, root, recipe, skipped, progress)
        counts = {split: writer.finish() for split, writer in writers.items()}
        if counts["train"] == 0:
            what = "slices" if not sum(counts.values()) else "training slices"
            raise InputError(f"{root}: no usable {tag} {what}; {skip_summary(skipped, len(files), recipe.modality)}")
        patients = {split: len(set(writer.patients)) for split, writer in writers.items()}
        report = Report(out, counts, patients, len(files), skipped, dropped, spacing)
        handle.attrs["manifest"] = json.dumps(_manifest(report, root, recipe))
    return report
