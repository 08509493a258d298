"""Image quality metrics: PSNR and SSIM, per image.

Project convention (the README's Conventions): images in model units, the
reconstruction clipped to [0, 1] first, data range 1, whole image.
:func:`fastmri_psnr` / :func:`fastmri_ssim` give the fastMRI convention
alongside (data range = the reference's maximum, no clipping).

Inputs are (H, W) numpy arrays / tensors, returning a float, or batches
(B, 1, H, W) (or (B, H, W)), returning a numpy array of B values. SSIM is
scikit-image's ``structural_similarity`` with its defaults (7x7 uniform
window, the map averaged without its 3-pixel border as scikit-image does).
An optional boolean ``mask`` (same shape as the images) restricts
both metrics to the pixels where it is True; for metal artifact removal
pass :func:`metal_excluded_mask` so that metal pixels are left out. A mask
that is a rectangle (fastMRI's centre crop of a larger grid) crops the
images to it, so that SSIM is that of the cropped images.
"""
from __future__ import annotations

import numpy as np
import torch
from scipy import ndimage
from skimage.metrics import structural_similarity

Array = np.ndarray | torch.Tensor
SSIM_WINDOW = 7  # scikit-image's default uniform window


def _as_batch(x: Array) -> tuple[np.ndarray, bool]:
    """(B, H, W) float64 numpy, and whether the input was a single (H, W) image."""
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu().numpy()
    x = np.asarray(x)
    if x.ndim == 2:
        return x[None].astype(np.float64), True
    if x.ndim == 4 and x.shape[1] == 1:
        return x[:, 0].astype(np.float64), False
    if x.ndim == 3:
        return x.astype(np.float64), False
    raise ValueError(f"expected (H, W), (B, H, W) or (B, 1, H, W) images, got shape {x.shape}")


def _prepare(x: Array, ref: Array, mask: Array | None):
    xs, single = _as_batch(x)
    refs, _ = _as_batch(ref)
    if xs.shape != refs.shape:
        raise ValueError(f"image shape {xs.shape} does not match reference shape {refs.shape}")
    if mask is None:
        masks = np.ones(xs.shape, dtype=bool)
    else:
        masks, _ = _as_batch(mask)
        masks = np.broadcast_to(masks.astype(bool), xs.shape)
        if not masks.reshape(len(xs), -1).any(axis=1).all():
            raise ValueError("the mask leaves no pixel to evaluate in some image")
    return xs, refs, masks, single


def _finish(values: list[float], single: bool) -> float | np.ndarray:
    return float(values[0]) if single else np.asarray(values, dtype=np.float64)


def _psnr(xs, refs, masks, ranges) -> list[float]:
    out = []
    for x, ref, m, r in zip(xs, refs, masks, ranges):
        mse = float(np.mean((x[m] - ref[m]) ** 2))
        out.append(float("inf") if mse == 0 else 10.0 * np.log10(r * r / mse))
    return out


def _rectangle(m: np.ndarray) -> tuple[slice, slice] | None:
    """The box a mask's True pixels fill, when they fill one (a crop) at least SSIM's window wide; else None."""
    rows, cols = np.flatnonzero(m.any(1)), np.flatnonzero(m.any(0))
    box = (slice(rows[0], rows[-1] + 1), slice(cols[0], cols[-1] + 1))
    wide = min(rows[-1] - rows[0], cols[-1] - cols[0]) + 1 >= SSIM_WINDOW
    return box if wide and m[box].all() else None


def _ssim(xs, refs, masks, ranges) -> list[float]:
    out = []
    for x, ref, m, r in zip(xs, refs, masks, ranges):
        box = None if m.all() else _rectangle(m)
        if box is not None:  # a crop: SSIM of the cropped images, whose windows see nothing outside it
            x, ref, m = x[box], ref[box], m[box]
        _, smap = structural_similarity(x, ref, data_range=r, full=True, win_size=SSIM_WINDOW)
        pad = (SSIM_WINDOW - 1) // 2  # scikit-image averages the map without this border
        inner, inner_mask = smap[pad:-pad, pad:-pad], m[pad:-pad, pad:-pad]
        out.append(float(inner[inner_mask].mean()) if inner_mask.any() else float(smap[m].mean()))
    return out


def psnr(x: Array, ref: Array, data_range: float = 1.0, mask: Array | None = None) -> float | np.ndarray:
    """Peak signal-to-noise ratio in dB of ``x`` clipped to [0, 1] against ``ref``.

    Args:
        x: reconstruction(s), (H, W) or (B, 1, H, W).
        ref: reference image(s) of the same shape (not clipped).
        data_range: the peak value (1 for model units).
        mask: optional boolean pixels to evaluate (True = counted).
    Returns:
        a float for one image, else a (B,) array.
    """
    xs, refs, masks, single = _prepare(x, ref, mask)
    return _finish(_psnr(np.clip(xs, 0.0, 1.0), refs, masks, [data_range] * len(xs)), single)


def ssim(x: Array, ref: Array, data_range: float = 1.0, mask: Array | None = None) -> float | np.ndarray:
    """Structural similarity of ``x`` clipped to [0, 1] against ``ref``; with a
    ``mask`` the SSIM map is averaged over the True pixels only. Shapes as :func:`psnr`."""
    xs, refs, masks, single = _prepare(x, ref, mask)
    return _finish(_ssim(np.clip(xs, 0.0, 1.0), refs, masks, [data_range] * len(xs)), single)


def fastmri_psnr(x: Array, ref: Array, mask: Array | None = None) -> float | np.ndarray:
    """PSNR with fastMRI's data range, the maximum of each reference image; no clipping."""
    xs, refs, masks, single = _prepare(x, ref, mask)
    return _finish(_psnr(xs, refs, masks, refs.reshape(len(refs), -1).max(axis=1)), single)


def fastmri_ssim(x: Array, ref: Array, mask: Array | None = None) -> float | np.ndarray:
    """SSIM with fastMRI's data range, the maximum of each reference image; no clipping."""
    xs, refs, masks, single = _prepare(x, ref, mask)
    return _finish(_ssim(xs, refs, masks, refs.reshape(len(refs), -1).max(axis=1)), single)


def metal_excluded_mask(metal: Array, dilate: int = 0) -> np.ndarray:
    """Pixels to evaluate for metal artifact removal: everything but the metal.

    Args:
        metal: boolean metal mask(s), (H, W) or (B, 1, H, W).
        dilate: also leave out this many pixels around the metal (3x3 steps).
    Returns:
        a boolean numpy array of the same shape, True outside the metal.
    """
    m = metal.detach().cpu().numpy() if isinstance(metal, torch.Tensor) else np.asarray(metal)
    m = m.astype(bool)
    if dilate > 0:
        structure = np.zeros((3,) * m.ndim, dtype=bool)
        structure[(1,) * (m.ndim - 2)] = ndimage.generate_binary_structure(2, 2)
        m = ndimage.binary_dilation(m, structure=structure, iterations=dilate)
    return ~m
