"""Undersampled single-coil Cartesian MRI: whole k-space columns (`recon mri --accel R`)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from operators import Measurement, default_center_fraction, undersampled_mri
from recon.errors import InputError
from recon.tasks.base import Task

MRI_METHODS = ("zero-filled", "cs-tv", "cs-wavelet", "unet-mri")


@dataclass(frozen=True)
class UndersampledMRI(Task):
    """k-space columns at acceleration ``accel`` with a fully sampled centre (``center_fraction``, None: the
    project's default for the acceleration), fastMRI's ``mask`` kind and ``mask_seed``; complex Gaussian
    noise of std ``noise`` in each of the real and imaginary parts."""

    accel: float = 8.0
    center_fraction: float | None = None
    mask: str = "equispaced"
    mask_seed: int = 0
    noise: float = 0.0

    name: ClassVar[str] = "mri"
    modality: ClassVar[str] = "mri"
    baseline: ClassVar[str] = "zero-filled"
    methods: ClassVar[tuple[str, ...]] = MRI_METHODS

    @property
    def centre(self) -> float:
        """The fully sampled centre fraction in use."""
        return self.center_fraction if self.center_fraction is not None else default_center_fraction(self.accel)

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
