"""Writing a result volume in its input's family of formats, whole or batch by batch.

:class:`VolumeWriter` takes the result (S, H, W) in model units in batches of slices, in any order. A
DICOM series of single-frame files is written file by file as its slices arrive, so a long series is never
held whole; the other formats hold one file for the whole volume and are written when the writer closes.
Every file goes to a temporary name first and takes its final name only when all slices are in (all files
or none); inputs are never replaced.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from pydicom.uid import generate_uid

from recon.io.arrays import write_npy, write_tiff
from recon.io.atomic import TEMPORARY_PREFIX, refuse_overwriting_inputs, remove_leftovers, temporary_name
from recon.io.dicom import dicom_names, frames_of, write_dicom, write_dicom_file
from recon.io.fastmri import write_fastmri
from recon.io.nifti import write_nifti
from recon.io.preview import write_png
from recon.io.shape import restore_grid
from recon.io.volume import Volume
from recon.units import model_to_hu


def _output_names(like: Volume, stem: str) -> list[str]:
    if like.format == "dicom":
        return dicom_names(like.meta, stem)
    if like.format == "nifti":
        return [stem + (".nii.gz" if like.source.name.lower().endswith(".gz") else ".nii")]
    if like.format == "fastmri":
        return [f"{stem}.h5"]
    if like.format in ("npy", "npz"):
        return [f"{stem}.npy"]
    if like.format == "sinogram":
        return [f"{stem}.npy", f"{stem}.nii.gz"]
    return [f"{stem}.tiff", f"{stem}.png"]


def _stack_of(data, shape: tuple[int, ...]) -> np.ndarray:
    """Accept (H, W), (B, H, W) or (B, 1, H, W), numpy or torch, as float64 (B, H, W); check its shape."""
    if hasattr(data, "detach"):
        data = data.detach().cpu().numpy()
    data = np.asarray(data, dtype=np.float64)
    if data.ndim == 4 and data.shape[1] == 1:
        data = data[:, 0]
    if data.ndim == 2:
        data = data[None]
    if data.shape != tuple(shape):
        raise ValueError(f"result shape {data.shape} does not match the input volume {tuple(shape)}")
    if not np.isfinite(data).all():
        raise ValueError("result contains NaN or Inf values; nothing written")
    return data


class VolumeWriter:
    """Writes a result shaped like ``like.data`` into ``out_dir`` in ``like``'s format and real units.

    Use as a context manager: :meth:`add` the slices, and on leaving without an error every file takes its
    final name (``paths``); an error removes what was written. ``kind`` is ``image`` (a reconstruction) or
    ``std`` (a posterior std map: in DICOM, a derived series of its own).
    """

    def __init__(self, like: Volume, out_dir: Path | str, stem: str, description: str, kind: str = "image"):
        self.like, self.description, self.kind = like, description, kind
        self.paths = [Path(out_dir) / name for name in _output_names(like, stem)]
        refuse_overwriting_inputs(self.paths, like.meta.get("files", [like.source]))
        for folder in {path.parent for path in self.paths}:
            folder.mkdir(parents=True, exist_ok=True)
            remove_leftovers(folder, TEMPORARY_PREFIX)
        self._temps = [temporary_name(path) for path in self.paths]
        datasets = like.meta.get("datasets", [])
        self._per_file = like.format == "dicom" and all(frames_of(ds) == 1 for ds in datasets)
        self._series_uid = generate_uid()
        self._added = np.zeros(like.data.shape[0], dtype=bool)
        self._whole = None if self._per_file else np.zeros(like.data.shape, dtype=np.float32)

    def add(self, start: int, data) -> None:
        """Slices ``start:start + B`` of the result, ``data`` (B, H, W) or (B, 1, H, W) in model units."""
        n = 1 if np.ndim(data) == 2 else len(data)
        model = _stack_of(data, (n, *self.like.data.shape[1:]))
        if self._added[start:start + n].any() or start + n > self._added.size:
            raise ValueError(f"internal error: slices {start}..{start + n - 1} added twice or beyond the volume")
        self._added[start:start + n] = True
        if self._whole is not None:
            self._whole[start:start + n] = model
            return
        real = self._real(restore_grid(model, self.like.meta.get("square"), start))
        meta = self.like.meta
        for k in range(n):
            i = start + k
            write_dicom_file(meta["datasets"][i], meta["files"][i], real[k:k + 1], self._temps[i],
                             self._series_uid, self.description, self.kind)

    def _real(self, model: np.ndarray) -> np.ndarray:
        return model_to_hu(model) if self.like.modality == "ct" else model * self.like.scale

    def _write_whole(self) -> None:
        like, temps = self.like, self._temps
        model = restore_grid(self._whole.astype(np.float64), like.meta.get("square"))
        real = self._real(model)
        if like.format == "dicom":  # multi-frame files: one file holds several slices
            write_dicom(like.meta, real, temps, self.description, self.kind)
        elif like.format == "nifti":
            write_nifti(like.meta, real, temps[0], self.description)
        elif like.format == "fastmri":
            write_fastmri(like.meta, real, temps[0], self.description)
        elif like.format in ("npy", "npz"):
            write_npy(real, temps[0])
        elif like.format == "sinogram":  # a measured scan: HU as .npy and as NIfTI with its pixel spacing
            write_npy(real, temps[0])
            write_nifti(like.meta["nifti"], real, temps[1], self.description)
        else:
            write_tiff(real, temps[0], self.description)
            write_png(temps[1], model[model.shape[0] // 2], like.modality)

    def __enter__(self) -> "VolumeWriter":
        return self

    def __exit__(self, kind, error, trace) -> None:
        try:
            if error is None:
                if not self._added.all():
                    raise ValueError(f"internal error: {int((~self._added).sum())} slices were never added")
                if self._whole is not None:
                    self._write_whole()
                for temp, final in zip(self._temps, self.paths):
                    os.replace(temp, final)
                return
        except BaseException:
            self._remove_temporaries()
            raise
        self._remove_temporaries()

    def _remove_temporaries(self) -> None:
        for temp in self._temps:
            temp.unlink(missing_ok=True)


def write_volume(like: Volume, data, out_dir: Path | str, stem: str, description: str,
                 kind: str = "image") -> list[Path]:
    """Write ``data`` (S, H, W) in model units next to nothing else: into ``out_dir``,
    in ``like``'s family of formats and real units, atomically (all files or
    none). ``kind`` is ``image`` (a reconstruction) or ``std`` (a posterior
    std map: in DICOM, a derived series of its own). Refuses to replace any
    input file. Returns the written paths."""
    model = _stack_of(data, like.data.shape)  # checked before any folder is made
    with VolumeWriter(like, out_dir, stem, description, kind) as writer:
        writer.add(0, model)
    return writer.paths
