"""8-bit PNG previews with the usual display windows.

CT windows are (centre, width) in HU: ``soft-tissue`` (40, 400, the default),
``lung`` (-600, 1500) and ``bone`` (400, 1800). MR images use ``auto``:
0 to the 99.5th percentile of the image shown.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from recon.errors import InputError
from recon.io.atomic import atomic_path
from recon.units import model_to_hu, robust_max

CT_WINDOWS = {"soft-tissue": (40.0, 400.0), "lung": (-600.0, 1500.0), "bone": (400.0, 1800.0)}
MRI_WINDOWS = ("auto",)


def window_names(modality: str) -> tuple[str, ...]:
    return ("auto",) + tuple(CT_WINDOWS) if modality == "ct" else MRI_WINDOWS


def to_display(image: np.ndarray, modality: str, window: str = "auto") -> np.ndarray:
    """Model-unit image (any shape) -> display values in [0, 1] under ``window``."""
    image = np.asarray(image, dtype=np.float64)
    if modality == "ct":
        name = "soft-tissue" if window == "auto" else window
        if name not in CT_WINDOWS:
            raise InputError(f"unknown CT window {window!r}; choose one of {', '.join(window_names('ct'))}")
        centre, width = CT_WINDOWS[name]
        low, high = centre - width / 2, centre + width / 2
        return np.clip((model_to_hu(image) - low) / (high - low), 0.0, 1.0)
    if modality == "mri":
        if window not in MRI_WINDOWS:
            raise InputError(f"unknown MRI window {window!r}; choose one of {', '.join(MRI_WINDOWS)}")
        return np.clip(image / robust_max(image), 0.0, 1.0)
    raise InputError(f"unknown modality {modality!r}; choose ct or mri")


def to_uint8(image: np.ndarray, modality: str, window: str = "auto") -> np.ndarray:
    """Model-unit image -> uint8 grey levels under ``window``."""
    return np.rint(to_display(image, modality, window) * 255).astype(np.uint8)


def write_png(path: Path | str, image: np.ndarray, modality: str, window: str = "auto") -> Path:
    """Write a 2-D model-unit image as an 8-bit grey PNG, atomically; returns the path."""
    image = np.asarray(image)
    if image.ndim != 2:
        raise InputError(f"{path}: a PNG preview needs a 2-D image, got shape {image.shape}")
    pixels = to_uint8(image, modality, window)
    path = Path(path)
    with atomic_path(path) as temp:
        Image.fromarray(pixels).save(temp, format="PNG")
    return path
