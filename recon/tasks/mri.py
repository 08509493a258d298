"""Undersampled Cartesian MRI: whole k-space columns (`recon mri --accel R`).

Image inputs (NIfTI, DICOM, .npy, ...) are magnitudes whose single-coil k-space is simulated; a
fastMRI file is reconstructed from its own raw k-space (:mod:`recon.tasks.mri_raw`).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

from operators import Measurement, default_center_fraction, undersampled_mri
from recon.errors import InputError
from recon.tasks.base import Scan, Task

if TYPE_CHECKING:
    from recon.io.reading import ReadOptions

MRI_METHODS = ("zero-filled", "cs-tv", "cs-wavelet", "unet-mri")


@dataclass(frozen=True)
class UndersampledMRI(Task):
    """k-space columns at acceleration ``accel`` with a fully sampled centre (``center_fraction``, None: the
    project's default for the acceleration), fastMRI's ``mask`` kind and ``mask_seed``; complex Gaussian
    noise of std ``noise`` in each of the real and imaginary parts.

    For a fastMRI file's raw k-space: ``accel_given`` says whether ``accel`` was asked for (a file with its
    own ``mask`` is refused when they disagree; else its mask is used), ``complex_prior`` how the real
    prior meets complex images ("demodulated", "magnitude" or "parts", see :mod:`recon.tasks.mri_raw`)."""

    accel: float = 8.0
    center_fraction: float | None = None
    mask: str = "equispaced"
    mask_seed: int = 0
    noise: float = 0.0
    accel_given: bool = True
    complex_prior: str = "demodulated"

    name: ClassVar[str] = "mri"
    modality: ClassVar[str] = "mri"
    baseline: ClassVar[str] = "zero-filled"
    methods: ClassVar[tuple[str, ...]] = MRI_METHODS

    @property
    def centre(self) -> float:
        """The fully sampled centre fraction in use."""
        return self.center_fraction if self.center_fraction is not None else default_center_fraction(self.accel)

    def read(self, source: Path, reading: "ReadOptions | None" = None) -> Scan:
        """A fastMRI file's raw k-space (:func:`recon.tasks.mri_raw.read_raw`); other inputs are images."""
        from recon.io.fastmri import is_hdf5_name

        if is_hdf5_name(Path(source)):
            from recon.tasks.mri_raw import read_raw

            return read_raw(self, Path(source))
        return super().read(source, reading)

    def measurement(self, size: int) -> Measurement:
        if not self.accel >= 1:
            raise InputError(f"--accel must be >= 1, got {self.accel}")
        return undersampled_mri(size, self.accel, self.center_fraction, self.mask, self.mask_seed, self.noise)

    @property
    def label(self) -> str:
        return f"{self.accel:g}x"

    @property
    def setting(self) -> float:
        return self.accel

    def describe(self) -> str:
        return f"MRI {self.accel:g}x {self.mask} column mask, centre fraction {self.centre:g}"

    def holdout_layout(self, size: int) -> tuple[int, int]:
        """k-space columns; the fully sampled centre is never held out."""
        return -1, round(size * self.centre)
