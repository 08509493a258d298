"""Shape and value checks shared by the readers, and squaring of slices.

Images must be finite, with sides in [``MIN_SIDE``, ``MAX_SIDE``] and at most
``MAX_SLICES`` slices. Non-square slices are refused unless the caller asks
to ``pad`` (with zeros, i.e. air for CT and background for MR) or ``crop``
(centred). The writers undo the squaring with :func:`restore_grid`.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from recon.errors import InputError
from recon.io.lazy_stack import LazyStack

MIN_SIDE = 8
MAX_SIDE = 4096
MAX_SLICES = 4096
SQUARE_MODES = ("refuse", "pad", "crop")


def check_shape(shape: tuple[int, ...], source: Path) -> None:
    """Refuse stacks that are not (S, H, W) or whose number or size of slices is absurd."""
    if len(shape) != 3:
        raise InputError(f"{source}: expected a 2-D image or a stack of 2-D slices, got shape {tuple(shape)}")
    n, h, w = shape
    if n < 1 or n > MAX_SLICES:
        raise InputError(f"{source}: {n} slices is out of range (1..{MAX_SLICES})")
    if min(h, w) < MIN_SIDE or max(h, w) > MAX_SIDE:
        raise InputError(f"{source}: image size {h}x{w} is out of range (sides {MIN_SIDE}..{MAX_SIDE} pixels)")


def check_values(stack: np.ndarray, source: Path) -> None:
    """Refuse absurd sizes and non-finite values in an (S, H, W) stack."""
    check_shape(stack.shape, source)
    if np.iscomplexobj(stack):
        raise InputError(f"{source}: complex values; give the magnitude image")
    if not np.isfinite(stack).all():
        raise InputError(f"{source}: contains NaN or Inf values")


def make_square(stack, source: Path, square: str) -> tuple[np.ndarray, dict | None]:
    """Return the (S, N, N) stack and a record of what was done (None when square already).

    ``stack`` is an (S, H, W) array or a :class:`recon.io.lazy_stack.LazyStack` (squared slice by slice as
    it is read). The record has ``mode``, ``offset`` (row, column of the result's pixel (0, 0) in the
    original grid; negative for padding), ``shape`` (H, W) and, for ``crop``, the ``original`` stack so
    that writers can restore the full grid.
    """
    if square not in SQUARE_MODES:
        raise InputError(f"square must be one of {', '.join(SQUARE_MODES)}, got {square!r}")
    _, h, w = stack.shape
    if h == w:
        return stack, None
    if square == "refuse":
        raise InputError(f"{source}: slices are {h}x{w}, not square; ask for padding or cropping "
                         f"(--square pad|crop)")
    side = max(h, w) if square == "pad" else min(h, w)
    record: dict = {"mode": square, "offset": ((h - side) // 2, (w - side) // 2), "shape": (h, w)}
    if square == "crop":
        record["original"] = stack
    if isinstance(stack, LazyStack):
        return stack.mapped(lambda image: _squared(image[None], record, side)[0], (side, side)), record
    return _squared(stack, record, side), record


def _squared(stack: np.ndarray, record: dict, side: int) -> np.ndarray:
    """(S, H, W) -> (S, side, side) as ``record`` says: zeros around, or the centred crop."""
    (r0, c0), (h, w) = record["offset"], record["shape"]
    if record["mode"] == "crop":
        return stack[:, r0:r0 + side, c0:c0 + side].copy()
    out = np.zeros((stack.shape[0], side, side), dtype=stack.dtype)
    out[:, -r0:-r0 + h, -c0:-c0 + w] = stack
    return out


def restore_grid(data: np.ndarray, record: dict | None, start: int = 0) -> np.ndarray:
    """Undo :func:`make_square` on an (S, N, N) result holding slices ``start:start + S``: cut the padding
    away, or paste a cropped result back into the original slices."""
    if record is None:
        return data
    (r0, c0), (h, w) = record["offset"], record["shape"]
    side = data.shape[-1]
    if record["mode"] == "pad":
        return data[:, -r0:-r0 + h, -c0:-c0 + w]
    out = np.array(record["original"][start:start + data.shape[0]], dtype=data.dtype, copy=True)
    out[:, r0:r0 + side, c0:c0 + side] = data
    return out
