"""Build an HDF5 slice dataset with train/val/test splits and a manifest.

Layout (other code reads exactly this):

* ``/{train,val,test}/images``: (N, 1, H, W) float32 in model units, one
  chunk per slice (gzip level 1 with byte shuffle);
* root attribute ``manifest``: a JSON string with ``modality``, ``size``,
  ``counts`` per split, ``seeds``, ``source``, ``splits`` (how each split
  was made), ``intensity``, ``generator`` (name and version),
  ``created`` (ISO time, UTC) and ``pixel_spacing_range_mm`` ([smallest,
  largest] pixel spacing of the slices, mm).

CT slices are :func:`recon.data.phantom_ct.thorax_phantom` images (``anatomy="thorax"``, the default),
:func:`recon.data.phantom_head.head_phantom` images (``"head"``) or both alternating (``"mixed"``), each
split from its own seeds. MR slices come from :mod:`recon.data.mri_slices`: the
training split augmented, val and test first the held-out template slices
as they are, then augmented copies of them; or (``anatomy="varied"``) from
:mod:`recon.data.mri_varied`, randomised contrasts of brains and bodies. Item i of a split is
determined by ``(seed, split, i)`` alone, so builds are reproducible
whatever the number of worker processes. The file is written atomically.
:mod:`recon.data.from_scans` writes the same layout from the user's own scans.
"""
from __future__ import annotations

import json
import multiprocessing
import os
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable

import h5py
import numpy as np
from tqdm import tqdm

from recon.data import mri_slices, mri_varied
from recon.data.mri_slices import (EXCLUDED_FROM_TRAIN, MRI_SLICES_VERSION, TEST_SLICES, VAL_SLICES, augmented_slice,
                                   plain_slice, split_indices)
from recon.data.mri_varied import MRI_VARIED_VERSION, varied_slice
from recon.data.phantom_ct import PHANTOM_VERSION, thorax_phantom
from recon.data.phantom_geometry import FOV_MM
from recon.data.phantom_head import FOV_RANGE_MM, HEAD_PHANTOM_VERSION, head_phantom
from recon.errors import InputError
from recon.io.atomic import atomic_path
from recon.units import hu_to_model

SPLITS = ("train", "val", "test")
SPLIT_CODES = {"train": 0, "val": 1, "test": 2}
MIN_SIZE, MAX_SIZE = 8, 1024
PARALLEL_FROM = 256  # below this many slices, build in this process

INTENSITY = {
    "ct": "ct: x = (HU + 1000) / 4000",
    "mri": "mri: magnitude / robust max (99.5th percentile of each slice)",
}
SOURCE = {
    "ct": "procedural thorax phantom (recon.data.phantom_ct.thorax_phantom), no patient data",
    "mri": "MNI152 2009 T1 template, 1 mm, bundled with nilearn "
           "(nilearn.datasets.load_mni152_template(resolution=1)), axial slices",
}


@dataclass(frozen=True)
class CTGenerator:
    """A CT phantom generator: ``make(size, seed)`` -> (size, size) HU; ``name`` and ``version`` go into the
    manifest; ``fov_mm`` is the (smallest, largest) side in mm of what its slices show."""
    make: Callable[[int, int], np.ndarray]
    name: str
    version: int
    fov_mm: tuple[float, float]


CT_PHANTOMS = {
    "thorax": CTGenerator(thorax_phantom, "recon.data.phantom_ct.thorax_phantom", PHANTOM_VERSION, (FOV_MM, FOV_MM)),
    "head": CTGenerator(head_phantom, "recon.data.phantom_head.head_phantom", HEAD_PHANTOM_VERSION, FOV_RANGE_MM),
}
"""The CT generators by anatomy."""
ANATOMIES = {"ct": (*CT_PHANTOMS, "mixed"), "mri": ("brain", "varied")}
"""``anatomy`` of a set, per modality. CT: one generator, or ``mixed`` (even items thorax, odd items head).
MRI: ``brain`` (the T1 template, :mod:`recon.data.mri_slices`) or ``varied`` (randomised contrasts, brain and
body, :mod:`recon.data.mri_varied`)."""
DEFAULT_ANATOMY = {"ct": "thorax", "mri": "brain"}


def ct_anatomy(anatomy: str, index: int) -> str:
    """The generator of CT item ``index`` in a set of ``anatomy``."""
    return ("thorax", "head")[index % 2] if anatomy == "mixed" else anatomy


def field_of_view_mm(modality: str, anatomy: str) -> tuple[float, float]:
    """(smallest, largest) side in mm of what the slices of a generated set show."""
    if modality == "ct":
        ranges = [CT_PHANTOMS[a].fov_mm for a in (("thorax", "head") if anatomy == "mixed" else (anatomy,))]
        return min(r[0] for r in ranges), max(r[1] for r in ranges)
    return mri_varied.field_of_view_mm() if anatomy == "varied" else mri_slices.field_of_view_mm()


def pixel_spacing_range(modality: str, anatomy: str, size: int) -> list[float]:
    """[smallest, largest] pixel spacing in mm of a generated set of ``size`` x ``size`` slices (the manifest's
    ``pixel_spacing_range_mm``: what a prior trained on it has seen)."""
    return [round(float(side) / size, 4) for side in field_of_view_mm(modality, anatomy)]


def item_seed(seed: int, split: str, index: int) -> int:
    """The seed of item ``index`` of ``split``: a hash of (seed, split, index)."""
    return int(np.random.SeedSequence([seed, SPLIT_CODES[split], index]).generate_state(1)[0])


def make_item(modality: str, size: int, seed: int, split: str, index: int, anatomy: str | None = None) -> np.ndarray:
    """Item ``index`` of ``split``: a (size, size) float32 slice in model units, of ``anatomy`` (None: the
    modality's default)."""
    anatomy = anatomy or DEFAULT_ANATOMY[modality]
    if modality == "ct":
        phantom = CT_PHANTOMS[ct_anatomy(anatomy, index)].make
        return hu_to_model(phantom(size, item_seed(seed, split, index))).astype(np.float32)
    if anatomy == "varied":
        return varied_slice(split, size, item_seed(seed, split, index), index)
    if split != "train":
        plain = plain_slice(split, size, index)
        if plain is not None:
            return plain
    return augmented_slice(split, size, item_seed(seed, split, index))


def _make_item_args(args: tuple) -> np.ndarray:
    return make_item(*args)


def _counts(n: int | dict) -> dict[str, int]:
    if isinstance(n, dict):
        unknown = set(n) - set(SPLITS)
        if unknown:
            raise InputError(f"unknown split(s) {sorted(unknown)}; use {', '.join(SPLITS)}")
        counts = {split: int(n.get(split, 0)) for split in SPLITS}
    else:
        counts = {"train": int(n), "val": max(1, min(64, int(n) // 10)), "test": max(1, min(64, int(n) // 10))}
    if any(c < 0 for c in counts.values()) or counts["train"] < 1:
        raise InputError(f"slice counts must be >= 0 with at least one training slice, got {counts}")
    return counts


def _manifest(modality: str, size: int, counts: dict, seed: int, anatomy: str) -> dict:
    source = SOURCE[modality]
    if modality == "ct" and anatomy == "mixed":
        splits = {s: f"i even: thorax_phantom, i odd: head_phantom (size, item_seed(seed, '{s}', i))" for s in SPLITS}
        generator = {"name": "recon.data.build.ct_anatomy (mixed)",
                     "generators": {a: {"name": g.name, "version": g.version} for a, g in CT_PHANTOMS.items()}}
        source = "procedural thorax and head phantoms, alternating, no patient data"
    elif modality == "ct":
        phantom = CT_PHANTOMS[anatomy]
        splits = {s: f"{phantom.name.rsplit('.', 1)[1]}(size, item_seed(seed, '{s}', i))" for s in SPLITS}
        generator = {"name": phantom.name, "version": phantom.version}
        source = f"procedural {anatomy} phantom ({phantom.name}), no patient data"
    elif anatomy == "varied":
        splits = {s: f"i even: brain_slice('{s}', size, item_seed(seed, '{s}', i)) (template slices of the split), "
                     f"i odd: body_slice(size, item_seed(seed, '{s}', i))" for s in SPLITS}
        generator = {"name": "recon.data.mri_varied", "version": MRI_VARIED_VERSION}
        source = ("MNI152 2009 T1 template (nilearn) and procedural thorax phantoms, alternating, with randomised "
                  "MR contrast, field of view, blur, bias field and noise; no patient data")
    else:
        splits = {
            "train": f"augmented template slices k in {split_indices('train')[0]}..{split_indices('train')[-1]} "
                     f"except {EXCLUDED_FROM_TRAIN.start}..{EXCLUDED_FROM_TRAIN.stop - 1}",
            "val": f"held-out slices k = {VAL_SLICES.start}..{VAL_SLICES.stop - 1} "
                   f"(MNI z = {VAL_SLICES.start - 72}..{VAL_SLICES.stop - 73} mm) as they are, "
                   f"then augmented copies",
            "test": f"held-out slices k = {TEST_SLICES.start}..{TEST_SLICES.stop - 1} "
                    f"(MNI z = {TEST_SLICES.start - 72}..{TEST_SLICES.stop - 73} mm) as they are, "
                    f"then augmented copies",
        }
        generator = {"name": "recon.data.mri_slices", "version": MRI_SLICES_VERSION}
    return {
        "modality": modality, "size": size, "counts": counts,
        "seeds": {"seed": seed, "item": "numpy SeedSequence([seed, split code (train 0, val 1, test 2), index])"},
        "source": source, "splits": splits, "intensity": INTENSITY[modality],
        "generator": generator, "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "pixel_spacing_range_mm": pixel_spacing_range(modality, anatomy, size),
    }


def create_images(handle: h5py.File, split: str, count: int, size: int, growable: bool = False) -> h5py.Dataset:
    """``/{split}/images`` (count, 1, size, size) float32, one gzip chunk per slice; ``growable``:
    resizable along the first axis (``dataset.resize``), for writers that do not know the count."""
    if count == 0 and not growable:
        return handle.create_dataset(f"{split}/images", shape=(0, 1, size, size), dtype="float32")
    return handle.create_dataset(f"{split}/images", shape=(count, 1, size, size), dtype="float32",
                                 maxshape=(None, 1, size, size) if growable else None, chunks=(1, 1, size, size),
                                 compression="gzip", compression_opts=1, shuffle=True)


def build_dataset(modality: str, size: int, n: int | dict, out: Path | str, seed: int = 0,
                  progress: bool = True, workers: int | None = None, anatomy: str | None = None) -> Path:
    """Write a slice dataset to ``out`` (HDF5) and return its path.

    ``n`` is the number of training slices (val and test then get
    ``min(64, n // 10)`` each, at least 1) or a dict of counts per split.
    ``workers`` processes generate slices in parallel (default: the CPU
    count for builds of ``PARALLEL_FROM`` slices or more, else 1).
    ``anatomy`` picks the generator (:data:`ANATOMIES`; None: the modality's default).
    """
    if modality not in INTENSITY:
        raise InputError(f"unknown modality {modality!r}; choose ct or mri")
    if not MIN_SIZE <= size <= MAX_SIZE:
        raise InputError(f"size {size} is out of range ({MIN_SIZE}..{MAX_SIZE})")
    anatomy = anatomy or DEFAULT_ANATOMY[modality]
    if anatomy not in ANATOMIES[modality]:
        raise InputError(f"--anatomy {anatomy}: a {modality} set is one of {', '.join(ANATOMIES[modality])}")
    counts = _counts(n)
    out = Path(out)
    jobs = [(modality, size, seed, split, i, anatomy) for split in SPLITS for i in range(counts[split])]
    if workers is None:
        workers = (os.cpu_count() or 1) if len(jobs) >= PARALLEL_FROM else 1
    manifest = _manifest(modality, size, counts, seed, anatomy)
    with atomic_path(out) as temp, h5py.File(temp, "w") as handle:
        datasets = {split: create_images(handle, split, counts[split], size) for split in SPLITS}
        bar = tqdm(total=len(jobs), desc=f"{modality} {size}px", unit="slice", disable=not progress)
        if workers > 1:
            with multiprocessing.get_context("spawn").Pool(workers) as pool:
                for job, image in zip(jobs, pool.imap(_make_item_args, jobs, chunksize=16)):
                    datasets[job[3]][job[4], 0] = image
                    bar.update()
        else:
            for job in jobs:
                datasets[job[3]][job[4], 0] = make_item(*job)
                bar.update()
        bar.close()
        handle.attrs["manifest"] = json.dumps(manifest)
    return out


def read_manifest(path: Path | str) -> dict:
    """The manifest of a dataset file as a dict."""
    path = Path(path)
    if not path.exists():
        raise InputError(f"{path}: no such file")
    try:
        with h5py.File(path, "r") as handle:
            return json.loads(handle.attrs["manifest"])
    except (OSError, KeyError, ValueError):
        raise InputError(f"{path}: not a recon slice dataset (no manifest)") from None
