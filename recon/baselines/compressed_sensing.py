"""Compressed-sensing MRI: FISTA with a TV or a wavelet-sparsity prior.

Both minimise 1/(2L) ||A x - y||^2 + lam R(x) over real images (the
project's MRI model: magnitude images, ``Fourier(real=True)``), with L the
largest eigenvalue of A^H A (1 for a unitary FFT and a 0/1 mask), so
``lam`` is in image units. They accept any :class:`operators.Measurement`.
"""
from __future__ import annotations

import torch

from operators import Measurement
from recon.baselines.fista_tv import fista, fista_tv
from recon.baselines.wavelets import detail_mask, dwt2, idwt2


def cs_tv(measurement: Measurement, y: torch.Tensor, lam: float = 0.002, n_iter: int = 200,
          inner_iter: int = 10) -> torch.Tensor:
    """CS-MRI with isotropic TV (R = TV, x >= 0), (B, 1, N, N).

    Args:
        lam: TV weight in image units (default tuned on MRI-like 128x128 images
            at 4x-24x, see ``benchmarks/classical.py``).
        n_iter: FISTA iterations.
        inner_iter: FGP iterations per TV proximal step.
    """
    return fista_tv(measurement, y, lam=lam, n_iter=n_iter, inner_iter=inner_iter, lo=0.0, hi=None)


def soft_threshold(v: torch.Tensor, threshold: float) -> torch.Tensor:
    """Elementwise soft thresholding sign(v) max(|v| - threshold, 0)."""
    return torch.sign(v) * (v.abs() - threshold).clamp(min=0.0)


def cs_wavelet(measurement: Measurement, y: torch.Tensor, lam: float = 0.002, n_iter: int = 200,
               wavelet: str = "db4", levels: int = 4) -> torch.Tensor:
    """CS-MRI with an l1 penalty on orthonormal wavelet details, (B, 1, N, N).

    R(x) = ||detail coefficients of W x||_1 (the coarsest approximation is not
    penalised); the proximal step is soft thresholding in the wavelet domain.

    Args:
        lam: l1 weight in image units (default tuned as for :func:`cs_tv`).
        n_iter: FISTA iterations.
        wavelet: an orthogonal PyWavelets name.
        levels: decomposition levels (image sides must be divisible by 2^levels).
    """

    def prox(v: torch.Tensor) -> torch.Tensor:
        c = dwt2(v, levels, wavelet)
        details = detail_mask(c.shape, levels, c.device)
        return idwt2(torch.where(details, soft_threshold(c, lam), c), levels, wavelet)

    return fista(measurement, y, prox, n_iter)
