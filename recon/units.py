"""Intensity conventions, defined in this one place.

CT: model units are linear attenuation relative to four times water,
``x = (HU + 1000) / 4000``; air is 0, water 0.25, dense bone about 0.5.

MRI: model units are the magnitude divided by a robust maximum, the
``percentile``-th percentile of the magnitude (99.5 by default), so the image
lies in about [0, 1]; the scale is kept so that ``magnitude = x * scale``.

Every function accepts numpy arrays and torch tensors (and Python floats) and
returns the same kind; the inverses are exact up to floating-point rounding.
"""
from __future__ import annotations

from typing import TypeVar

import numpy as np
import torch

HU_OFFSET = 1000.0
HU_PER_UNIT = 4000.0

ArrayLike = TypeVar("ArrayLike", np.ndarray, torch.Tensor, float)


def hu_to_model(hu: ArrayLike) -> ArrayLike:
    """Hounsfield units -> model units, ``(HU + 1000) / 4000``."""
    return (hu + HU_OFFSET) / HU_PER_UNIT


def model_to_hu(x: ArrayLike) -> ArrayLike:
    """Model units -> Hounsfield units, ``4000 x - 1000``."""
    return x * HU_PER_UNIT - HU_OFFSET


def robust_max(magnitude: np.ndarray | torch.Tensor, percentile: float = 99.5) -> float:
    """The ``percentile``-th percentile of ``|magnitude|``, falling back to the maximum
    (then to 1.0) when it is zero so that the scale is always positive."""
    if isinstance(magnitude, torch.Tensor):
        values = magnitude.detach().abs().flatten().double().cpu().numpy()
    else:
        values = np.abs(np.asarray(magnitude, dtype=np.float64)).ravel()
    if values.size == 0:
        return 1.0
    scale = float(np.percentile(values, percentile))
    if not scale > 0:
        scale = float(values.max())
    return scale if scale > 0 else 1.0


def robust_scale(magnitude: np.ndarray | torch.Tensor,
                 percentile: float = 99.5) -> tuple[np.ndarray | torch.Tensor, float]:
    """MR magnitude -> ``(magnitude / scale, scale)`` with ``scale`` the robust maximum."""
    scale = robust_max(magnitude, percentile)
    return magnitude / scale, scale


def robust_unscale(x: ArrayLike, scale: float) -> ArrayLike:
    """Inverse of :func:`robust_scale`: model units -> magnitude, ``x * scale``."""
    return x * scale
