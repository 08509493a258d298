"""The geometry of a measured CT scan: parallel or fan beam, any angles, any flat detector.

Units are pixels of the reconstruction grid (the application converts millimetres by dividing by
the pixel spacing). The meanings are astra-toolbox's 2-D ``parallel`` and ``fanflat`` geometries:
the image is ``size x size`` unit pixels centred on the origin (pixel (r, c) at
``x = c - (size-1)/2``, ``y = (size-1)/2 - r``); view k has source angle ``angles[k]``; for fan beam
the source sits ``source_origin`` from the origin and the flat detector ``origin_detector`` beyond it;
the detector has ``detector_count`` bins ``detector_spacing`` apart, centred on the central ray.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

BEAMS = ("parallel", "fan")


@dataclass(frozen=True)
class ScanGeometry:
    """A 2-D CT scan of a square image.

    Attributes:
        size: image side N in pixels.
        angles: view angles in radians, (M,) as a tuple.
        detector_count: detector bins D.
        detector_spacing: bin width in pixels (at the detector).
        beam: "parallel" or "fan" (astra ``fanflat``).
        source_origin, origin_detector: fan beam distances in pixels (0 for parallel beam).
    """

    size: int
    angles: tuple[float, ...]
    detector_count: int
    detector_spacing: float = 1.0
    beam: str = "parallel"
    source_origin: float = 0.0
    origin_detector: float = 0.0

    def __post_init__(self) -> None:
        if self.beam not in BEAMS:
            raise ValueError(f"beam must be one of {BEAMS}, got {self.beam!r}")
        if not isinstance(self.size, int) or not 2 <= self.size <= 4096:
            raise ValueError(f"image size must be an integer in [2, 4096], got {self.size!r}")
        if len(self.angles) < 1 or not all(math.isfinite(a) for a in self.angles):
            raise ValueError("a scan needs at least one finite view angle")
        if self.detector_count < 1 or not self.detector_spacing > 0:
            raise ValueError(f"the detector needs >= 1 bins of positive width, got {self.detector_count} x "
                             f"{self.detector_spacing}")
        if self.beam == "fan" and not (self.source_origin > 0 and self.origin_detector >= 0):
            raise ValueError("a fan beam needs source_origin > 0 and origin_detector >= 0")
        if self.beam == "fan" and self.source_origin <= self.size / math.sqrt(2):
            raise ValueError(f"the source ({self.source_origin:g} px from the centre) lies inside the image "
                             f"(half diagonal {self.size / math.sqrt(2):.1f} px)")

    @property
    def n_angles(self) -> int:
        return len(self.angles)

    @property
    def n_detectors(self) -> int:
        return self.detector_count

    @property
    def sino_shape(self) -> tuple[int, int]:
        """(n_angles, n_detectors): the last two dimensions of a full sinogram."""
        return (self.n_angles, self.detector_count)

    @property
    def magnification(self) -> float:
        """(source-detector) / (source-origin) distance: 1 for parallel beam."""
        return 1.0 if self.beam == "parallel" else (self.source_origin + self.origin_detector) / self.source_origin

    @property
    def iso_spacing(self) -> float:
        """The detector spacing scaled to the rotation centre, in pixels."""
        return self.detector_spacing / self.magnification

    def rescaled(self, size: int) -> "ScanGeometry":
        """The same scan (same field of view) seen on a ``size x size`` grid: lengths scale by size / N."""
        factor = size / self.size
        return ScanGeometry(size, self.angles, self.detector_count, self.detector_spacing * factor, self.beam,
                            self.source_origin * factor, self.origin_detector * factor)

    def binned(self, factor: int) -> "ScanGeometry":
        """The detector with each ``factor`` adjacent bins read as one (the count must divide by it)."""
        if factor < 1 or self.detector_count % factor:
            raise ValueError(f"cannot bin {self.detector_count} detector bins by {factor}")
        return ScanGeometry(self.size, self.angles, self.detector_count // factor, self.detector_spacing * factor,
                            self.beam, self.source_origin, self.origin_detector)

    def trimmed(self, bins: int) -> "ScanGeometry":
        """The detector without ``bins`` bins at each end (its centre stays on the central ray)."""
        if not 0 <= 2 * bins < self.detector_count:
            raise ValueError(f"cannot trim {bins} bins off each end of {self.detector_count}")
        return ScanGeometry(self.size, self.angles, self.detector_count - 2 * bins, self.detector_spacing,
                            self.beam, self.source_origin, self.origin_detector)

    def astra(self, views: np.ndarray | None = None) -> dict:
        """astra's projection geometry of all views, or of the view indices ``views``."""
        import astra

        angles = np.asarray(self.angles, dtype=np.float64)
        angles = angles if views is None else angles[views]
        if self.beam == "parallel":
            return astra.create_proj_geom("parallel", self.detector_spacing, self.detector_count, angles)
        return astra.create_proj_geom("fanflat", self.detector_spacing, self.detector_count, angles,
                                      self.source_origin, self.origin_detector)

    def vectors(self, views: np.ndarray | None = None) -> np.ndarray:
        """astra's per-view vectors (V, 6): ray direction or source, detector centre, bin-to-bin vector."""
        from astra.functions import geom_2vec

        return np.asarray(geom_2vec(self.astra(views))["Vectors"], dtype=np.float64)
