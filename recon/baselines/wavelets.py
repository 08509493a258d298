"""Orthonormal 2-D discrete wavelet transform in torch (periodic boundary).

Filters are the orthogonal wavelets of PyWavelets (``haar``, ``db2``,
``db4``, ``sym4`` ...); only their coefficients are taken from it, the
transform itself runs in torch on any device. With periodic extension the
transform is exactly orthonormal (W^T W = I), so the inverse is the adjoint.

Coefficients are stored in one (B, 1, H, W) tensor in the usual pyramid
layout: the coarsest approximation in the top-left (H / 2^levels) x
(W / 2^levels) block, details elsewhere.
"""
from __future__ import annotations

import pywt
import torch
import torch.nn.functional as F


def _filters(name: str, like: torch.Tensor) -> torch.Tensor:
    wavelet = pywt.Wavelet(name)
    if not wavelet.orthogonal:
        raise ValueError(f"wavelet {name!r} is not orthogonal")
    bank = torch.tensor([wavelet.rec_lo, wavelet.rec_hi], dtype=like.dtype, device=like.device)
    return bank.unsqueeze(1)  # (2, 1, L): low-pass and high-pass


def _analysis_last(x: torch.Tensor, bank: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """One level along the last axis: (..., n) -> approximation and detail (..., n/2)."""
    shape, n, length = x.shape, x.shape[-1], bank.shape[-1]
    flat = x.reshape(-1, 1, n)
    flat = F.pad(flat, (0, length - 2), mode="circular") if length > 2 else flat
    out = F.conv1d(flat, bank, stride=2)  # (M, 2, n/2)
    return out[:, 0].reshape(*shape[:-1], n // 2), out[:, 1].reshape(*shape[:-1], n // 2)


def _synthesis_last(a: torch.Tensor, d: torch.Tensor, bank: torch.Tensor) -> torch.Tensor:
    """Adjoint (= inverse) of :func:`_analysis_last`."""
    shape, half, length = a.shape, a.shape[-1], bank.shape[-1]
    stacked = torch.stack([a.reshape(-1, half), d.reshape(-1, half)], dim=1)  # (M, 2, n/2)
    full = F.conv_transpose1d(stacked, bank, stride=2)  # (M, 1, n + L - 2)
    n = 2 * half
    out = full[..., :n].clone()
    wrap = full[..., n:]
    out[..., :wrap.shape[-1]] += wrap
    return out.reshape(*shape[:-1], n)


def _check(x: torch.Tensor, levels: int) -> None:
    h, w = x.shape[-2:]
    if levels < 1 or h % (2 ** levels) or w % (2 ** levels):
        raise ValueError(f"{levels} wavelet levels need image sides divisible by {2 ** levels}, got {h}x{w}")


def dwt2(x: torch.Tensor, levels: int = 3, wavelet: str = "db4") -> torch.Tensor:
    """Forward orthonormal DWT of (B, 1, H, W) real images, same-shape coefficients."""
    _check(x, levels)
    bank = _filters(wavelet, x)
    out = x.clone()
    h, w = x.shape[-2:]
    for _ in range(levels):
        block = out[..., :h, :w]
        lo, hi = _analysis_last(block, bank)
        rows = torch.cat([lo, hi], dim=-1)
        lo, hi = _analysis_last(rows.transpose(-1, -2), bank)
        out[..., :h, :w] = torch.cat([lo, hi], dim=-1).transpose(-1, -2)
        h, w = h // 2, w // 2
    return out


def idwt2(c: torch.Tensor, levels: int = 3, wavelet: str = "db4") -> torch.Tensor:
    """Inverse (and adjoint) of :func:`dwt2`."""
    _check(c, levels)
    bank = _filters(wavelet, c)
    out = c.clone()
    sizes = [(c.shape[-2] >> k, c.shape[-1] >> k) for k in range(levels)]
    for h, w in reversed(sizes):
        block = out[..., :h, :w].transpose(-1, -2)
        cols = _synthesis_last(block[..., :h // 2], block[..., h // 2:], bank).transpose(-1, -2)
        out[..., :h, :w] = _synthesis_last(cols[..., :w // 2], cols[..., w // 2:], bank)
    return out


def detail_mask(shape: tuple[int, ...], levels: int, device: torch.device | str = "cpu") -> torch.Tensor:
    """Boolean (1, 1, H, W): True on detail coefficients, False on the coarsest approximation."""
    h, w = shape[-2] >> levels, shape[-1] >> levels
    mask = torch.ones(1, 1, shape[-2], shape[-1], dtype=torch.bool, device=device)
    mask[..., :h, :w] = False
    return mask
