"""Real CT and MR slices that ship with the installed packages and the shared data folder, with a fixed
validation / test split, for `recon bench real`.

Every slice is read by the project's readers into model units (CT ``(HU + 1000) / 4000``, CT numbers
below -1024 HU read as air; MR magnitude over the slice's robust maximum, :mod:`recon.units`) and squared
by zero padding (air / background) as ``recon.io.shape.make_square`` does; :func:`load` gives it at its
native side or resized to a requested side (:func:`recon.resample.resize`: bilinear, antialiased when
shrinking).

The split is fixed: VALIDATION slices are the only ones any tuning may see; TEST slices are only
reported. Each modality has both, from different files (different patients), except the EPI volume,
whose validation and test slices are at least 8 slices (17.6 mm) apart. The validation slices resemble the
test ones (a 512² head CT for the head and thorax CTs; the same EPI contrast) without being them; the two
small close-ups (CT_small, MR_small) keep the tuned weights from fitting one anatomy.

=====================  ====  ==========  ===============================================================
name                   mod.  split       source
=====================  ====  ==========  ===============================================================
aapm-l506-thorax       ct    test        AAPM LDCT L506 thorax, 512², about 0.7 mm (shared data folder)
j2k-skull-base         ct    test        pydicom ``J2K_pixelrep_mismatch.dcm``, head at the skull base, 512²
j2k-head               ct    validation  pydicom ``693_J2KI.dcm``, head, 512²
ct-small-spine         ct    validation  pydicom ``CT_small.dcm``, spine close-up, 128²
epi-brain-z14          mri   test        nibabel ``example4d.nii.gz``, volume 0, axial slice 14, 96x128
epi-brain-z20          mri   test        the same, axial slice 20
overlay-abdomen        mri   test        pydicom ``examples_overlay.dcm``, abdomen, 300x484
mr-small-head          mri   validation  pydicom ``MR_small.dcm``, head, 64²
epi-brain-z06          mri   validation  nibabel ``example4d.nii.gz``, volume 0, axial slice 6
=====================  ====  ==========  ===============================================================
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from recon.errors import InputError

SPLITS = ("validation", "test")
MODALITIES = ("ct", "mri")
EPI_FILE = "example4d.nii.gz"


@dataclass(frozen=True)
class RealSlice:
    """One named real slice.

    Attributes:
        name: its key ("aapm-l506-thorax", ...).
        modality: "ct" or "mri".
        split: "validation" (tuning may use it) or "test" (reported only).
        spacing_mm: native pixel spacing in mm (square pixels).
        side: native side in pixels after squaring (the longer side of a non-square slice).
        description: one line on what it shows and where it comes from.
        read: returns the native slice, (side, side) float32 in model units; raises InputError when the
            file is absent or unreadable.
    """

    name: str
    modality: str
    split: str
    spacing_mm: float
    side: int
    description: str
    read: Callable[[], np.ndarray]

    @property
    def fov_cm(self) -> float:
        """The field of view of the native (squared) slice in cm."""
        return self.side * self.spacing_mm / 10


def _pydicom_file(name: str) -> Path:
    """A test file bundled with pydicom (never downloaded); InputError when absent."""
    from pydicom.data import get_testdata_file

    path = get_testdata_file(name, download=False)
    if path is None:
        raise InputError(f"{name}: not among pydicom's bundled test files")
    return Path(path)


def _read_dicom(file: str, modality: str) -> np.ndarray:
    """A one-slice DICOM test file of pydicom through :func:`recon.io.read_volume`, squared by padding."""
    from recon.io import read_volume

    return read_volume(_pydicom_file(file), modality=modality, square="pad").data[0]


def _read_aapm() -> np.ndarray:
    """The AAPM slice (:func:`recon.data.figures.real_ct_slice`, approximate HU) in model units."""
    from recon.data.figures import REAL_CT, real_ct_slice
    from recon.io import model_units

    hu = real_ct_slice(size=512)
    if hu is None:
        raise InputError(f"{REAL_CT}: no such file (set RECON_REAL_CT to the AAPM slice)")
    return model_units(hu[None], "ct")[0][0]


def _read_epi(index: int) -> np.ndarray:
    """Axial slice ``index`` of volume 0 of nibabel's example EPI (anterior up, as
    :func:`recon.io.nifti.axial_stack`), scaled by its own robust maximum and squared by padding."""
    import nibabel as nib
    from nibabel.testing import data_path

    from recon.io import make_square, model_units
    from recon.io.nifti import axial_stack

    path = Path(data_path) / EPI_FILE
    if not path.is_file():
        raise InputError(f"{path}: no such file (nibabel's test data)")
    image = nib.load(str(path))
    stack = axial_stack(np.asarray(image.dataobj[..., 0], dtype=np.float64), image.affine)
    model, _ = model_units(stack[index:index + 1], "mri")
    return make_square(model, path, "pad")[0][0]


def _epi_slice(index: int, split_name: str) -> RealSlice:
    """Axial slice ``index`` of volume 0 of nibabel's example EPI as a registry entry."""
    return RealSlice(f"epi-brain-z{index:02d}", "mri", split_name, 2.0, 128,
                     f"nibabel {EPI_FILE} (EPI brain), volume 0, axial slice {index} of 24 (96x128, padded)",
                     partial(_read_epi, index))


REAL_SLICES: tuple[RealSlice, ...] = (
    RealSlice("aapm-l506-thorax", "ct", "test", 0.7, 512,
              "AAPM LDCT L506 thorax (full dose, 1 mm, sharp kernel); HU and the 0.7 mm spacing approximate",
              _read_aapm),
    RealSlice("j2k-skull-base", "ct", "test", 0.431, 512,
              "pydicom J2K_pixelrep_mismatch.dcm: head CT at the skull base (JPEG 2000), -2000 outside the "
              "FOV read as air", partial(_read_dicom, "J2K_pixelrep_mismatch.dcm", "ct")),
    RealSlice("j2k-head", "ct", "validation", 0.4785, 512, "pydicom 693_J2KI.dcm: head CT (JPEG 2000)",
              partial(_read_dicom, "693_J2KI.dcm", "ct")),
    RealSlice("ct-small-spine", "ct", "validation", 0.661, 128, "pydicom CT_small.dcm: close-up of a vertebra",
              partial(_read_dicom, "CT_small.dcm", "ct")),
    _epi_slice(14, "test"),
    _epi_slice(20, "test"),
    RealSlice("overlay-abdomen", "mri", "test", 0.7231, 484,
              "pydicom examples_overlay.dcm: abdomen MR (300x484, padded)",
              partial(_read_dicom, "examples_overlay.dcm", "mri")),
    RealSlice("mr-small-head", "mri", "validation", 0.3125, 64, "pydicom MR_small.dcm: head MR (64x64)",
              partial(_read_dicom, "MR_small.dcm", "mri")),
    _epi_slice(6, "validation"),
)
BY_NAME = {s.name: s for s in REAL_SLICES}


def get(name: str) -> RealSlice:
    """The registered slice called ``name``; InputError for an unknown name."""
    if name not in BY_NAME:
        raise InputError(f"unknown real slice {name!r}; choose one of {', '.join(BY_NAME)}")
    return BY_NAME[name]


def split(name: str) -> str:
    """The split of slice ``name``: "validation" or "test"."""
    return get(name).split


def names(modality: str | None = None, split_name: str | None = None) -> list[str]:
    """Names of the registered slices of ``modality`` and ``split_name`` (None: any), in registry order."""
    if modality is not None and modality not in MODALITIES:
        raise InputError(f"unknown modality {modality!r}; choose ct or mri")
    if split_name is not None and split_name not in SPLITS:
        raise InputError(f"unknown split {split_name!r}; choose validation or test")
    return [s.name for s in REAL_SLICES if modality in (None, s.modality) and split_name in (None, s.split)]


def load(name: str, size: int | None = None) -> torch.Tensor:
    """Slice ``name`` as a (1, 1, N, N) float32 tensor in model units: N its native side when ``size`` is
    None, else ``size`` (resized, :func:`recon.resample.resize`). InputError when its file is absent."""
    from recon.resample import resize

    image = torch.from_numpy(np.ascontiguousarray(get(name).read(), dtype=np.float32))[None, None]
    return image if size is None or size == image.shape[-1] else resize(image, size)
