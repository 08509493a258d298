"""Unregularised iterative reconstructions: SIRT and CGLS.

Both are regularised only by stopping early; the iteration count is the
tuning parameter. Batched over images on the device of ``y``.
"""
from __future__ import annotations

from typing import Callable

import torch

from operators import Measurement
from recon.baselines.fista_tv import zeros_like_image


def sirt(measurement: Measurement, y: torch.Tensor, n_iter: int = 1000, relaxation: float = 1.0,
         nonneg: bool = True, callback: Callable[[int, torch.Tensor], None] | None = None) -> torch.Tensor:
    """Simultaneous iterative reconstruction technique, (B, 1, N, N).

    ``x <- x + relaxation * C A^T R (y - A x)`` with R = 1 / row sums (A 1)
    and C = 1 / column sums (A^T 1) of the non-negative system matrix, from
    x = 0 (entries with zero sums are left out). Meant for CT.

    Args:
        n_iter: iterations (the regulariser). On noiseless sparse-view data
            of ``ct128.h5`` (8 validation slices, 10 / 20 / 23 views) PSNR
            still rises slowly with iterations (mean 31.7 dB at 400, 32.1 at
            1600: ``python benchmarks/classical.py --tune --n 8 --methods sirt``);
            1000 gives up the last ~0.2 dB for run time. Use fewer for noisy data.
        relaxation: step factor in (0, 2).
        nonneg: clip to x >= 0 after each step.
        callback: ``callback(k, x_k)`` after each iteration.
    """
    x = zeros_like_image(measurement, y)
    row = measurement.A(torch.ones_like(x)).real
    col = measurement.A_adjoint(torch.ones_like(y)).real
    inv_row = torch.where(row > 1e-8, 1.0 / row.clamp(min=1e-8), torch.zeros_like(row))
    inv_col = torch.where(col > 1e-8, 1.0 / col.clamp(min=1e-8), torch.zeros_like(col))
    for k in range(n_iter):
        x = x + relaxation * inv_col * measurement.A_adjoint(inv_row * (y - measurement.A(x)))
        if nonneg:
            x = x.clamp(min=0.0)
        if callback is not None:
            callback(k, x)
    return x


def cgls(measurement: Measurement, y: torch.Tensor, n_iter: int = 80,
         callback: Callable[[int, torch.Tensor], None] | None = None) -> torch.Tensor:
    """Conjugate gradients on the normal equations A^H A x = A^H y (CGLS), from x = 0.

    Minimises ||A x - y||^2 over real images by :meth:`operators.Measurement.A_dagger`;
    each image of the batch has its own step sizes and stops on its own once
    converged to roundoff. Works for CT and MRI.

    Args:
        n_iter: iterations (the regulariser). On noiseless sparse-view data of
            ``ct128.h5`` PSNR plateaus by 40-80 iterations (8 validation slices,
            ``python benchmarks/classical.py --tune --n 8 --methods cgls``).
            Use fewer for noisy data.
        callback: ``callback(k, x_k)`` after each iteration (x_k stays put once converged).
    """
    return measurement.A_dagger(y, n_iter, callback=callback)
