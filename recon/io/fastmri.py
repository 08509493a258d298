"""fastMRI HDF5 files in and out.

A fastMRI file holds ``kspace`` (slices, [coils,] H, W) complex64, a
reference ``reconstruction_esc`` (single-coil) or ``reconstruction_rss``
(multi-coil) of shape (slices, 320, 320), and attributes (``acquisition``,
``max``, ``norm``, ``patient_id``, ...). The reference image used here is the
magnitude reconstruction stored in the file; without one, it is computed
from the k-space as the magnitude of the centred unitary inverse 2-D FFT
(root-sum-of-squares over coils). Outputs are written as fastMRI submission
files: a ``reconstruction`` dataset (slices, H, W) float32 in the file's
magnitude units, with the input's attributes.
"""
from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np

from recon.errors import InputError

RECONSTRUCTION_KEYS = ("reconstruction_esc", "reconstruction_rss")


def is_hdf5_name(path: Path) -> bool:
    return path.suffix.lower() in (".h5", ".hdf5")


def kspace_to_magnitude(kspace: np.ndarray) -> np.ndarray:
    """|centred unitary inverse FFT| over the last two axes; RSS over coils for (S, C, H, W)."""
    axes = (-2, -1)
    image = np.fft.fftshift(np.fft.ifft2(np.fft.ifftshift(kspace, axes=axes), axes=axes, norm="ortho"), axes=axes)
    magnitude = np.abs(image)
    return np.sqrt((magnitude ** 2).sum(axis=1)) if kspace.ndim == 4 else magnitude


def _real_image(dataset: h5py.Dataset, path: Path) -> np.ndarray:
    """A reference reconstruction dataset as float64; refused unless it holds real numbers."""
    if dataset.dtype.kind not in "fiu":
        raise InputError(f"{path}: '{dataset.name.lstrip('/')}' must hold real numbers (a magnitude image), "
                         f"got {dataset.dtype} {dataset.shape}")
    return np.asarray(dataset, dtype=np.float64)


def read_fastmri(path: Path) -> tuple[np.ndarray, dict]:
    """Return ``(magnitude (S, H, W) float64, meta)``.

    ``meta`` has ``attrs`` (the root attributes), ``reference`` (which dataset
    gave the image, or ``"kspace"``) and ``coils`` (1 for single-coil).
    """
    try:
        handle = h5py.File(path, "r")
    except OSError:
        raise InputError(f"{path}: not an HDF5 file") from None
    with handle:
        keys = [k for k in RECONSTRUCTION_KEYS if k in handle]
        if "kspace" not in handle and not keys:
            raise InputError(f"{path}: not a fastMRI file (no 'kspace' or 'reconstruction_esc/_rss' dataset)")
        attrs = {k: (v.decode() if isinstance(v, bytes) else v) for k, v in handle.attrs.items()}
        kspace = np.asarray(handle["kspace"]) if "kspace" in handle else None
        reference = _real_image(handle[keys[0]], path) if keys else None
    if kspace is not None and (not np.iscomplexobj(kspace) or kspace.ndim not in (3, 4)):
        raise InputError(f"{path}: 'kspace' must be complex (slices, [coils,] H, W), got {kspace.dtype} {kspace.shape}")
    if reference is None:
        reference = kspace_to_magnitude(kspace)
    elif reference.ndim == 2:
        reference = reference[None]
    coils = 1 if kspace is None or kspace.ndim == 3 else int(kspace.shape[1])
    meta = {"attrs": attrs, "reference": keys[0] if keys else "kspace", "coils": coils}
    return np.abs(reference), meta


def write_fastmri(meta: dict, magnitude: np.ndarray, path: Path, description: str) -> None:
    """Write a fastMRI-style ``reconstruction`` dataset (S, H, W) float32 plus attributes."""
    with h5py.File(path, "w") as handle:
        handle.create_dataset("reconstruction", data=magnitude.astype(np.float32))
        for key, value in meta["attrs"].items():
            handle.attrs[key] = value
        handle.attrs["max"] = float(magnitude.max())
        handle.attrs["description"] = description
