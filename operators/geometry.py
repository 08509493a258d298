"""Parallel-beam CT geometry shared by every Radon backend.

Conventions (identical to astra-toolbox's 2-D ``parallel`` geometry, so the
backends agree bin for bin):

* the image is ``size x size`` pixels of unit width, centred on the origin;
  pixel (row r, column c) sits at ``x = c - (size-1)/2``, ``y = (size-1)/2 - r``;
* view k looks along angle ``theta_k = k * pi / n_angles`` (k = 0..n_angles-1,
  no endpoint), and a pixel at (x, y) lands on detector coordinate
  ``s = x cos(theta) + y sin(theta)``;
* the detector has ``n_detectors`` bins of unit width centred on the origin,
  bin d at ``s = d - (n_detectors-1)/2``. The default count is the smallest
  number >= ceil(sqrt(2) * size) with the parity of ``size``, so the whole
  image (its diagonal) is always seen.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np


def default_detector_count(size: int) -> int:
    """Smallest bin count covering the image diagonal, same parity as ``size``."""
    n = math.ceil(math.sqrt(2.0) * size)
    return n + ((n - size) % 2)


@dataclass(frozen=True)
class ParallelBeamGeometry:
    """A full-view parallel-beam scan of a square image.

    Attributes:
        size: image side N in pixels.
        n_angles: number of full views M over [0, pi); defaults to N as in the paper.
        n_detectors: detector bins (unit spacing); defaults to
            :func:`default_detector_count`.
    """

    size: int
    n_angles: int = 0
    n_detectors: int = 0

    def __post_init__(self) -> None:
        if not isinstance(self.size, int) or self.size < 2:
            raise ValueError(f"image size must be an integer >= 2, got {self.size!r}")
        if self.size > 4096:
            raise ValueError(f"image size {self.size} is larger than the 4096 supported")
        if self.n_angles == 0:
            object.__setattr__(self, "n_angles", self.size)
        if self.n_detectors == 0:
            object.__setattr__(self, "n_detectors", default_detector_count(self.size))
        if self.n_angles < 1:
            raise ValueError(f"n_angles must be >= 1, got {self.n_angles}")
        if self.n_detectors < 1:
            raise ValueError(f"n_detectors must be >= 1, got {self.n_detectors}")

    def angles(self) -> np.ndarray:
        """View angles in radians, shape (n_angles,), float64."""
        return np.arange(self.n_angles, dtype=np.float64) * (np.pi / self.n_angles)

    def astra(self, views: np.ndarray | None = None) -> dict:
        """astra's projection geometry of all views, or of the view indices ``views``."""
        import astra

        angles = self.angles() if views is None else self.angles()[views]
        return astra.create_proj_geom("parallel", 1.0, self.n_detectors, angles)

    @property
    def sino_shape(self) -> tuple[int, int]:
        """(n_angles, n_detectors): the last two dimensions of a full sinogram."""
        return (self.n_angles, self.n_detectors)

    def key(self) -> str:
        """A short string naming the geometry, used for caches."""
        return f"par2d_n{self.size}_a{self.n_angles}_d{self.n_detectors}"
