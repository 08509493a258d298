"""Limited-angle CT: the views cover only an arc of the half turn, as on C-arms and in tomosynthesis
(`recon ct --arc DEGREES`)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from operators import Measurement, ViewMask, arc_view_indices
from recon.errors import InputError
from recon.tasks.base import Task, radon
from recon.tasks.sparse_view import CT_METHODS


@dataclass(frozen=True)
class LimitedAngleCT(Task):
    """The views of the ``full_views`` (0: the image side) over [0, 180) degrees whose angle lies below
    ``arc`` degrees, all of them or ``projections`` evenly spread; Gaussian sinogram noise of std ``noise``.
    Until a prior is tuned for it, the sampler uses the options tuned for sparse-view CT."""

    arc: float = 90.0
    projections: int | None = None
    full_views: int = 0
    noise: float = 0.0

    name: ClassVar[str] = "ct-limited-angle"
    modality: ClassVar[str] = "ct"
    baseline: ClassVar[str] = "fbp"
    methods: ClassVar[tuple[str, ...]] = CT_METHODS
    profile: ClassVar[str] = "ct-sparse-view"

    def measurement(self, size: int) -> Measurement:
        full = self.full_views or size
        try:
            indices = arc_view_indices(full, self.arc, self.projections)
        except ValueError as error:
            raise InputError(f"--arc {self.arc:g}: {error}") from None
        if len(indices) == 0:
            raise InputError(f"--arc {self.arc:g}: no view of the {full} full views lies within the arc")
        return Measurement(radon(size, full), ViewMask(full, indices), self.noise)

    @property
    def label(self) -> str:
        return f"{self.arc:g} degree arc"

    @property
    def setting(self) -> float:
        return self.arc

    def describe(self) -> str:
        views = "all views" if self.projections is None else f"{self.projections} views"
        full = f"{self.full_views}" if self.full_views else "N (the image side)"
        return f"limited-angle CT, {views} within a {self.arc:g} degree arc of {full} parallel-beam views"
