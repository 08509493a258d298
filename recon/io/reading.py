"""How an input file becomes slices: the reading flags of the reconstruction verbs, as one value."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from recon.errors import InputError
from recon.io.arrays import SUFFIXES as UNITLESS_SUFFIXES
from recon.io.nifti import is_nifti_name


@dataclass(frozen=True)
class ReadOptions:
    """The reading flags (:func:`recon.io.read_volume` takes them as keywords of the same names).

    Attributes:
        square: non-square slices: "pad" (zeros around, cut off the output), "crop" or "refuse".
        force: read a DICOM input whose Modality tag is not the task's (PT, NM, ...) as the task's.
        volume: the volume of a 4-D NIfTI input (required there, refused elsewhere).
        rescale: (slope, intercept): CT numbers HU = slope * stored value + intercept of a .npy, .npz, PNG or
            TIFF file (None: the unit rules of :mod:`recon.io.arrays`).
    """

    square: str = "refuse"
    force: bool = False
    volume: int | None = None
    rescale: tuple[float, float] | None = None

    def check(self, path: Path) -> None:
        """InputError for a flag that does not apply to ``path`` (by its name; measured k-space and sinograms are
        read without :func:`recon.io.read_volume`, so this runs before any reader)."""
        path = Path(path)
        if self.volume is not None and not is_nifti_name(path):
            raise InputError(f"{path}: --volume {self.volume} picks a volume of a 4-D NIfTI file, and this is not one")
        if self.rescale is not None and path.suffix.lower() not in UNITLESS_SUFFIXES:
            raise InputError(f"{path}: --rescale gives the HU scale of a .npy, .npz, PNG or TIFF file; "
                             f"this file carries its own")
