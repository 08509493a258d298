"""fastMRI HDF5 files in and out.

A fastMRI file holds ``kspace`` (slices, [coils,] H, W) complex64 (centred orthonormal FFT
convention, readout along H), in challenge/test files a column ``mask`` (W,) saying which columns
of the already undersampled k-space were measured, a reference ``reconstruction_esc`` (single-coil)
or ``reconstruction_rss`` (multi-coil) of shape (slices, 320, 320) in the training and validation
sets, and attributes (``acquisition``, ``max``, ``norm``, ``patient_id``, ...).

``recon mri`` reconstructs from the raw k-space itself (:func:`read_kspace`; coils, phase and the
file's own undersampling included, see :mod:`recon.tasks.mri_raw`). :func:`read_fastmri` reads the
magnitude image instead, for the image readers (:func:`recon.io.read_volume`): the reference
reconstruction stored in the file, or without one the magnitude of the centred unitary inverse 2-D
FFT of the k-space (root-sum-of-squares over coils). Outputs are written as fastMRI submission
files: a ``reconstruction`` dataset (slices, H, W) float32 in the file's magnitude units, centre
cropped to ``meta["crop"]`` when given (the reference's 320 x 320), with the input's attributes.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np

from recon.errors import InputError
from recon.io.spacing import ismrmrd_spacing

RECONSTRUCTION_KEYS = ("reconstruction_esc", "reconstruction_rss")


def is_hdf5_name(path: Path) -> bool:
    return path.suffix.lower() in (".h5", ".hdf5")


def centred_fft(a: np.ndarray, axis: int, inverse: bool = False) -> np.ndarray:
    """The centred orthonormal (inverse) FFT of ``a`` along ``axis``: fastMRI's k-space convention."""
    transform = np.fft.ifft if inverse else np.fft.fft
    return np.fft.fftshift(transform(np.fft.ifftshift(a, axes=axis), axis=axis, norm="ortho"), axes=axis)


def fft2c(images: np.ndarray) -> np.ndarray:
    """Centred orthonormal 2-D FFT over the last two axes."""
    return centred_fft(centred_fft(images, -1), -2)


def ifft2c(kspace: np.ndarray) -> np.ndarray:
    """Centred orthonormal inverse 2-D FFT over the last two axes."""
    return centred_fft(centred_fft(kspace, -1, inverse=True), -2, inverse=True)


def kspace_to_magnitude(kspace: np.ndarray) -> np.ndarray:
    """|centred unitary inverse FFT| over the last two axes; RSS over coils for (S, C, H, W)."""
    magnitude = np.abs(ifft2c(kspace))
    return np.sqrt((magnitude ** 2).sum(axis=1)) if kspace.ndim == 4 else magnitude


def _open(path: Path) -> h5py.File:
    try:
        return h5py.File(path, "r")
    except OSError:
        raise InputError(f"{path}: not an HDF5 file") from None


def _attrs(handle: h5py.File) -> dict:
    """The root attributes, byte strings decoded."""
    return {k: (v.decode() if isinstance(v, bytes) else v) for k, v in handle.attrs.items()}


def _header(handle: h5py.File) -> bytes | str | None:
    """The ``ismrmrd_header`` XML, or None."""
    return handle["ismrmrd_header"][()] if "ismrmrd_header" in handle else None


def _reference(handle: h5py.File, path: Path) -> tuple[np.ndarray | None, str | None]:
    """The file's reference reconstruction (S, h, w) float64 and its dataset name, or (None, None)."""
    keys = [k for k in RECONSTRUCTION_KEYS if k in handle]
    if not keys:
        return None, None
    reference = _real_image(handle[keys[0]], path)
    return (reference[None] if reference.ndim == 2 else reference), keys[0]


def _real_image(dataset: h5py.Dataset, path: Path) -> np.ndarray:
    """A reference reconstruction dataset as float64; refused unless it holds real numbers."""
    if dataset.dtype.kind not in "fiu":
        raise InputError(f"{path}: '{dataset.name.lstrip('/')}' must hold real numbers (a magnitude image), "
                         f"got {dataset.dtype} {dataset.shape}")
    return np.asarray(dataset, dtype=np.float64)


def read_fastmri(path: Path) -> tuple[np.ndarray, dict]:
    """Return ``(magnitude (S, H, W) float64, meta)``.

    ``meta`` has ``attrs`` (the root attributes), ``reference`` (which dataset
    gave the image, or ``"kspace"``), ``coils`` (1 for single-coil) and
    ``pixel_spacing_mm`` (from the ISMRMRD header: its reconSpace for a reference
    reconstruction, its encodedSpace for the k-space's image; None without one).
    """
    with _open(path) as handle:
        if "kspace" not in handle and not any(k in handle for k in RECONSTRUCTION_KEYS):
            raise InputError(f"{path}: not a fastMRI file (no 'kspace' or 'reconstruction_esc/_rss' dataset)")
        attrs, header = _attrs(handle), _header(handle)
        kspace = np.asarray(handle["kspace"]) if "kspace" in handle else None
        reference, key = _reference(handle, path)
    if kspace is not None and (not np.iscomplexobj(kspace) or kspace.ndim not in (3, 4)):
        raise InputError(f"{path}: 'kspace' must be complex (slices, [coils,] H, W), got {kspace.dtype} {kspace.shape}")
    if reference is None:
        reference = kspace_to_magnitude(kspace)
    coils = 1 if kspace is None or kspace.ndim == 3 else int(kspace.shape[1])
    meta = {"attrs": attrs, "reference": key or "kspace", "coils": coils,
            "pixel_spacing_mm": ismrmrd_spacing(header, "reconSpace" if key else "encodedSpace")}
    return np.abs(reference), meta


@dataclass
class RawFile:
    """What :func:`read_kspace` reads from a fastMRI file.

    Attributes:
        kspace: (S, C, H, W) complex64 (C = 1 for single-coil files).
        mask: (W,) bool measured columns, or None when the file has no ``mask`` (fully sampled).
        reference: (S, h, w) float64 magnitude reference, or None.
        reference_key: the dataset it came from (None without one).
        attrs: the file's root attributes.
        spacing: (row, column) pixel spacing in mm of the k-space's image (the ISMRMRD header's encodedSpace),
            or None.
    """

    kspace: np.ndarray
    mask: np.ndarray | None
    reference: np.ndarray | None
    reference_key: str | None
    attrs: dict
    spacing: tuple[float, float] | None = None


def _kspace(handle: h5py.File, path: Path) -> np.ndarray:
    if "kspace" not in handle:
        raise InputError(f"{path}: no 'kspace' dataset (recon mri reconstructs a fastMRI file from its k-space)")
    dataset = handle["kspace"]
    if dataset.dtype.kind != "c" or dataset.ndim not in (3, 4):
        raise InputError(f"{path}: 'kspace' must be complex (slices, [coils,] H, W), got {dataset.dtype} "
                         f"{dataset.shape}")
    kspace = np.asarray(dataset, dtype=np.complex64)
    return kspace[:, None] if kspace.ndim == 3 else kspace


def _mask(handle: h5py.File, path: Path, width: int) -> np.ndarray | None:
    if "mask" not in handle:
        return None
    mask = np.asarray(handle["mask"])
    if mask.dtype.kind not in "biuf" or mask.size != width or not np.isin(mask, (0, 1)).all():
        raise InputError(f"{path}: 'mask' must hold {width} zeros and ones (one per k-space column), got "
                         f"{mask.dtype} {mask.shape}")
    return mask.reshape(-1).astype(bool)


def read_kspace(path: Path) -> RawFile:
    """The raw k-space of a fastMRI file with its mask, reference and attributes, checked (InputError)."""
    with _open(path) as handle:
        kspace = _kspace(handle, path)
        mask = _mask(handle, path, kspace.shape[-1])
        reference, key = _reference(handle, path)
        attrs, header = _attrs(handle), _header(handle)
    if reference is not None and (reference.ndim != 3 or reference.shape[0] != kspace.shape[0]):
        raise InputError(f"{path}: '{key}' {reference.shape} does not match the {kspace.shape[0]} k-space slices")
    return RawFile(kspace, mask, None if reference is None else np.abs(reference), key, attrs,
                   ismrmrd_spacing(header, "encodedSpace"))


def centre_box(grid: tuple[int, int], crop: tuple[int, int]) -> tuple[slice, slice]:
    """Rows and columns of the centred ``crop`` (h, w) of a ``grid`` (H, W) the way fastMRI crops:
    index ``H // 2 - h // 2`` of the grid is the crop's row 0."""
    return tuple(slice(n // 2 - m // 2, n // 2 - m // 2 + m) for n, m in zip(grid, crop))


def centre_crop(images: np.ndarray, shape: tuple[int, int] | None) -> np.ndarray:
    """(S, H, W) images centre-cropped to ``shape`` (h, w) the way fastMRI crops (None: unchanged)."""
    return images if shape is None else images[(..., *centre_box(images.shape[-2:], shape))]


def write_fastmri(meta: dict, magnitude: np.ndarray, path: Path, description: str) -> None:
    """Write a fastMRI-style ``reconstruction`` dataset (S, H, W) float32 plus attributes, centre-cropped
    to ``meta["crop"]`` (h, w) when given."""
    magnitude = centre_crop(magnitude, meta.get("crop"))
    with h5py.File(path, "w") as handle:
        handle.create_dataset("reconstruction", data=magnitude.astype(np.float32))
        for key, value in meta["attrs"].items():
            handle.attrs[key] = value
        handle.attrs["max"] = float(magnitude.max())
        handle.attrs["description"] = description
