"""Compressed-sensing MRI: FISTA with a TV or a wavelet-sparsity prior.

Both minimise 1/(2L) ||A x - y||^2 + lam R(x) over real images (the
project's MRI model: magnitude images, ``Fourier(real=True)``), with L the
largest eigenvalue of A^H A (1 for a unitary FFT and a 0/1 mask), so
``lam`` is in image units. They accept any :class:`operators.Measurement`;
images of two channels (the real and imaginary parts of complex MR images,
:class:`operators.coils.CoilFourier`) are regularised channel by channel
and not kept non-negative.
"""
from __future__ import annotations

import numpy as np
import torch

from operators import Measurement
from recon.baselines.fista_tv import fista, fista_tv, image_channels
from recon.baselines.wavelets import detail_mask, dwt2, idwt2


def cs_tv(measurement: Measurement, y: torch.Tensor, lam: float = 3e-4, n_iter: int = 200,
          inner_iter: int = 10) -> torch.Tensor:
    """CS-MRI with isotropic TV (R = TV, x >= 0), (B, 1, N, N).

    Args:
        lam: TV weight in image units. The default is the best of a grid
            (1e-4 .. 1e-2) by mean PSNR over 4x / 8x / 24x on 8 validation
            slices of ``mri128.h5``:
            ``python benchmarks/classical.py --tune --n 8 --methods cs-tv``
            (8x and 24x alone prefer 1e-3 to 1e-2).
        n_iter: FISTA iterations.
        inner_iter: FGP iterations per TV proximal step.
    """
    lo = 0.0 if image_channels(measurement) == 1 else None
    return fista_tv(measurement, y, lam=lam, n_iter=n_iter, inner_iter=inner_iter, lo=lo, hi=None)


def soft_threshold(v: torch.Tensor, threshold: float) -> torch.Tensor:
    """Elementwise soft thresholding sign(v) max(|v| - threshold, 0)."""
    return torch.sign(v) * (v.abs() - threshold).clamp(min=0.0)


def cs_wavelet(measurement: Measurement, y: torch.Tensor, lam: float = 3e-4, n_iter: int = 200,
               wavelet: str = "haar", levels: int = 3, cycle_spin: bool = True, nonneg: bool = True,
               seed: int = 0) -> torch.Tensor:
    """CS-MRI with an l1 penalty on orthonormal wavelet details, (B, 1, N, N).

    R(x) = ||detail coefficients of W x||_1 (the coarsest approximation is not
    penalised); the proximal step is soft thresholding in the wavelet domain.
    Two standard heuristics on top (both on by default, both measured to help
    against the coherent aliasing of equispaced masks): cycle spinning, i.e.
    each iteration thresholds the image circularly shifted by a random
    offset in [0, 2^levels) (Figueiredo & Nowak style translation
    invariance; offsets drawn from ``seed``, so the result is deterministic),
    and clipping to x >= 0 after each step.

    Args:
        lam: l1 weight in image units. Default: the best of 1e-4 .. 3e-3 by
            mean PSNR over 4x / 8x / 24x on 8 validation slices of
            ``mri128.h5`` (``python benchmarks/classical.py --tune --n 8
            --methods cs-wavelet``).
        n_iter: FISTA iterations.
        wavelet: an orthogonal PyWavelets name. On those slices Haar beat
            db2, db4 and sym4 at every acceleration (4x: 30.3 dB against
            28.2-28.7 at the best weight of each).
        levels: decomposition levels (image sides must be divisible by 2^levels;
            4 levels scored the same as 3).
        cycle_spin: random circular shifts per iteration.
        nonneg: clip to x >= 0 after each step (magnitude images only).
        seed: seed of the shifts.
    """
    rng = np.random.default_rng(seed)
    nonneg = nonneg and image_channels(measurement) == 1

    def prox(v: torch.Tensor) -> torch.Tensor:
        shift = tuple(int(s) for s in rng.integers(0, 2 ** levels, size=2)) if cycle_spin else (0, 0)
        c = dwt2(torch.roll(v, shift, dims=(-2, -1)), levels, wavelet)
        details = detail_mask(c.shape, levels, c.device)
        x = idwt2(torch.where(details, soft_threshold(c, lam), c), levels, wavelet)
        x = torch.roll(x, (-shift[0], -shift[1]), dims=(-2, -1))
        return x.clamp(min=0.0) if nonneg else x

    return fista(measurement, y, prox, n_iter)
