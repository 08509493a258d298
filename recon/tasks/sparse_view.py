"""Sparse-view CT: a few evenly spread views of the full parallel-beam scan (`recon ct --projections V`)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from operators import Measurement, ViewMask, view_indices
from recon.errors import InputError
from recon.tasks.base import Task, radon

CT_METHODS = ("fbp", "fista-tv", "sirt", "cgls", "fbpconvnet")


@dataclass(frozen=True)
class SparseViewCT(Task):
    """``projections`` of the ``full_views`` parallel-beam views over [0, 180) degrees (0: the image side),
    evenly spread, with Gaussian noise of std ``noise`` on the sinogram (units of the Radon transform
    of model-unit images)."""

    projections: int = 23
    full_views: int = 0
    noise: float = 0.0

    name: ClassVar[str] = "ct-sparse-view"
    modality: ClassVar[str] = "ct"
    baseline: ClassVar[str] = "fbp"
    methods: ClassVar[tuple[str, ...]] = CT_METHODS

    def measurement(self, size: int) -> Measurement:
        full = self.full_views or size
        if not 1 <= self.projections <= full:
            raise InputError(f"--projections must be between 1 and the {full} full views, got {self.projections}")
        return Measurement(radon(size, full), ViewMask(full, view_indices(full, self.projections)), self.noise)

    @property
    def label(self) -> str:
        return f"{self.projections} views"

    @property
    def setting(self) -> float:
        return self.projections

    def describe(self) -> str:
        full = f"{self.full_views}" if self.full_views else "N (the image side)"
        return f"sparse-view CT, {self.projections} of {full} parallel-beam views"
