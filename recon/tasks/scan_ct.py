"""CT in a scan geometry of the user's (`recon ct --geometry GEOM.json`): parallel or fan beam, any angles.

The input is either a measured sinogram in that geometry (:mod:`recon.io.sinogram`: line integrals,
reconstructed as measured, with no reference) or an image whose sinogram is simulated in it (a fan-beam
study; the image is taken to cover the geometry's field of view, image_size x pixel_spacing_mm).
``projections`` keeps that many of the geometry's views, evenly spread (None: all of them).

On a reconstruction grid coarser than the geometry's own (a 256² scan reconstructed with a 128² prior),
adjacent bins are averaged so that a bin is about one pixel wide (:func:`detector_binning`): the data
then hold no detail finer than the grid can show, which data-consistency steps would otherwise fit
with pixel noise (23-view fan beam, real 256² slice on the 128² grid: score 24.1 dB against the
128² slice with the detector as measured, 32.1 binned by 2, 36.6 by 4, 29.3 by 8). On the native grid
the detector is used as measured (FISTA-TV there: 34.4 dB as measured, 33.0 binned by 2).

Units: the problems are in model units like every CT task, y = A x for x = (HU + 1000) / 4000 and A the
scan's projector in pixels of the reconstruction grid; a measured sinogram is divided by
:meth:`recon.io.ct_geometry.MeasuredGeometry.line_integral_per_model_unit` on the way in.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import ClassVar

import torch

from operators import Measurement, ScanGeometry, ScanTransform, ViewMask, view_indices
from recon.errors import InputError
from recon.io.ct_geometry import MeasuredGeometry, read_geometry
from recon.io.reading import ReadOptions
from recon.tasks.base import Problem, Scan, Task
from recon.tasks.sparse_view import CT_METHODS


def detector_binning(geometry: ScanGeometry) -> tuple[int, int]:
    """(bins trimmed off each end, bins averaged into one) so that a bin is about one pixel wide at the
    rotation centre: the factor is round(1 / bin width), lowered until the trimmed remainder is even."""
    factor = max(1, round(1.0 / geometry.iso_spacing))
    while factor > 1 and (geometry.detector_count % factor) % 2:
        factor -= 1
    return (geometry.detector_count % factor) // 2, factor


def bin_sinogram(sino: torch.Tensor, trim: int, factor: int) -> torch.Tensor:
    """Sinograms (..., D) with ``trim`` bins cut off each end and each ``factor`` bins averaged."""
    if trim:
        sino = sino[..., trim:sino.shape[-1] - trim]
    return sino if factor == 1 else sino.reshape(*sino.shape[:-1], -1, factor).mean(dim=-1)


@lru_cache(maxsize=4)
def scan_transform(geometry: ScanGeometry) -> ScanTransform:
    """The scan's transform, built once per geometry (its matrices are kept across batches)."""
    return ScanTransform(geometry)


@dataclass(frozen=True)
class ScanCT(Task):
    """CT in the geometry of the file ``geometry``; ``projections`` of its views (None: all); Gaussian noise
    of std ``noise`` on simulated sinograms (units of A x on model-unit images)."""

    geometry: str = ""
    projections: int | None = None
    noise: float = 0.0

    name: ClassVar[str] = "ct-scan"
    modality: ClassVar[str] = "ct"
    baseline: ClassVar[str] = "fbp"
    methods: ClassVar[tuple[str, ...]] = CT_METHODS
    profile: ClassVar[str | None] = "ct-sparse-view"

    @property
    def scan(self) -> MeasuredGeometry:
        return read_geometry(Path(self.geometry))

    def views(self) -> torch.Tensor:
        """The indices of the views used, among the geometry's."""
        full = self.scan.scan.n_angles
        if self.projections is None:
            return torch.arange(full)
        if not 1 <= self.projections <= full:
            raise InputError(f"--projections must be between 1 and the geometry's {full} views, "
                             f"got {self.projections}")
        return torch.from_numpy(view_indices(full, self.projections))

    def binning(self, size: int) -> tuple[int, int]:
        """(bins trimmed off each end, bins averaged) on a ``size`` grid: none on the native grid."""
        return (0, 1) if size >= self.scan.scan.size else detector_binning(self.scan.scan_at(size))

    def geometry_at(self, size: int) -> ScanGeometry:
        """The scan on a ``size`` grid, its detector binned there (:meth:`binning`)."""
        trim, factor = self.binning(size)
        return self.scan.scan_at(size).trimmed(trim).binned(factor)

    def measurement(self, size: int) -> Measurement:
        transform = scan_transform(self.geometry_at(size))
        return Measurement(transform, ViewMask(transform.geometry.n_angles, self.views()), self.noise)

    def read(self, source: Path, reading: ReadOptions | None = None) -> Scan:
        from recon.io.sinogram import looks_like_sinogram, read_sinogram, sinogram_volume

        scan = self.scan
        if not looks_like_sinogram(source, scan.scan.sino_shape):
            return super().read(source, reading)
        if self.noise:
            raise InputError(f"{source}: --noise simulates noise on a simulated sinogram; this one is measured")
        if reading is not None and reading.rescale is not None:
            raise InputError(f"{source}: --rescale gives the HU of an image; a measured sinogram holds line integrals")
        sino = torch.from_numpy(read_sinogram(source, scan.scan.sino_shape)).unsqueeze(1)  # (S, 1, M, D)
        volume = sinogram_volume(source, sino.shape[0], scan.scan.size, scan.pixel_spacing_mm,
                                 [source, Path(self.geometry)])
        return MeasuredSinogram(self, volume, sino)

    @property
    def label(self) -> str:
        return f"{self.projections or self.scan.scan.n_angles} views"

    @property
    def setting(self) -> float:
        return float(self.projections or self.scan.scan.n_angles)

    def describe(self) -> str:
        scan = self.scan.scan
        used = f"{self.projections} of " if self.projections else ""
        return f"{scan.beam}-beam CT, {used}{scan.n_angles} views of {Path(self.geometry).name}"


class MeasuredSinogram(Scan):
    """A measured sinogram (S, 1, M, D) of line integrals in ``task``'s geometry; no reference."""

    def __init__(self, task: ScanCT, volume, sinogram: torch.Tensor):
        self.task, self.volume, self.sinogram = task, volume, sinogram

    def problem(self, start: int, stop: int, size: int, seed: int, device: torch.device) -> Problem:
        measurement = self.task.measurement(size)
        scale = self.task.scan.line_integral_per_model_unit(size)
        sino = bin_sinogram(self.sinogram[start:stop].to(device), *self.task.binning(size))
        y = measurement.P(sino) / scale
        return Problem(measurement, y, reference=None)
