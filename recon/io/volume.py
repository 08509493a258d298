"""The :class:`Volume` record that every reader returns and every writer takes."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np


@dataclass
class Volume:
    """A stack of 2-D slices in model units, with what is needed to write it back.

    ``data`` is (S, H, W) float32 in model units: CT ``(HU + 1000) / 4000``,
    MR ``magnitude / scale``. ``format`` is one of ``dicom``, ``nifti``,
    ``fastmri``, ``npy``, ``npz``, ``png``, ``tiff``. ``meta`` holds what the
    writer of that format needs (DICOM datasets, NIfTI affine and header,
    HDF5 attributes, how the slices were squared).
    """

    data: np.ndarray
    modality: str
    source: Path
    format: str
    scale: float = 1.0
    meta: dict = field(default_factory=dict)

    @property
    def n_slices(self) -> int:
        return int(self.data.shape[0])

    @property
    def pixel_spacing_mm(self) -> float | None:
        """The in-plane pixel spacing in mm: the mean of ``meta["pixel_spacing_mm"]`` (row, column), as the readers
        give it; None when the input does not say."""
        spacing = self.meta.get("pixel_spacing_mm")
        return None if spacing is None else (float(spacing[0]) + float(spacing[1])) / 2
