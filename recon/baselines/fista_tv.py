"""FISTA with isotropic total variation (Beck & Teboulle 2009).

Solves, per image of a batch,

    min_x  F(x) = 1/(2 L) ||A x - y||^2 + lam * TV(x),   lo <= x <= hi,

where L is the largest eigenvalue of A^H A (estimated by power iteration),
so the gradient step is 1 and ``lam`` is in image units whatever the
operator's scale (view count, image size): a ramp of height h over a flat
region costs h per unit of edge length. TV is the isotropic total variation
with forward differences and Neumann boundary,
``TV(x) = sum_ij sqrt((x[i+1,j]-x[i,j])^2 + (x[i,j+1]-x[i,j])^2)``.

The proximal step (TV denoising with box constraints) is solved by the fast
gradient projection (FGP) on the dual, Beck & Teboulle (2009, "Fast
gradient-based algorithms for constrained total variation image denoising
and deblurring problems"), warm-started from the previous outer iteration.
Everything runs batched on the device of ``y``.
"""
from __future__ import annotations

import math
from typing import Callable

import torch

from operators import Measurement
from operators.solvers import per_image_dot

STEP_MARGIN = 1.02
"""Factor on the power iteration's ||A||^2 (which approaches it from below) for the step 1/L."""


def grad(x: torch.Tensor) -> torch.Tensor:
    """Forward differences of (B, 1, H, W) images -> (B, 2, H, W) (rows, columns);
    zero in the last row / column (Neumann boundary)."""
    g = torch.zeros(x.shape[0], 2, *x.shape[-2:], dtype=x.dtype, device=x.device)
    g[:, 0, :-1] = x[:, 0, 1:] - x[:, 0, :-1]
    g[:, 1, :, :-1] = x[:, 0, :, 1:] - x[:, 0, :, :-1]
    return g


def div(p: torch.Tensor) -> torch.Tensor:
    """Discrete divergence (B, 2, H, W) -> (B, 1, H, W), the negative adjoint of :func:`grad`."""
    rows, cols = p[:, 0], p[:, 1]
    d = torch.zeros_like(rows)
    d[:, :-1] += rows[:, :-1]
    d[:, 1:] -= rows[:, :-1]
    d[:, :, :-1] += cols[:, :, :-1]
    d[:, :, 1:] -= cols[:, :, :-1]
    return d.unsqueeze(1)


def tv(x: torch.Tensor) -> torch.Tensor:
    """Isotropic total variation of each image, (B, 1, H, W) -> (B,)."""
    return grad(x).pow(2).sum(1).sqrt().flatten(1).sum(1)


def _box(x: torch.Tensor, lo: float | None, hi: float | None) -> torch.Tensor:
    return x.clamp(min=lo, max=hi) if (lo is not None or hi is not None) else x


def tv_prox(b: torch.Tensor, lam: float, n_iter: int = 20, lo: float | None = None, hi: float | None = None,
            dual: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """argmin_x 1/2 ||x - b||^2 + lam TV(x) subject to lo <= x <= hi, by FGP.

    Args:
        b: (B, C, H, W) images to denoise, each channel on its own.
        lam: TV weight (>= 0).
        n_iter: dual iterations.
        lo, hi: box bounds (None: unbounded).
        dual: (B, 2C, H, W) starting dual field (warm start), zeros by default.
    Returns:
        the denoised images and the final dual field (for the next warm start).
    """
    if b.shape[1] > 1:  # channels (real and imaginary parts) are denoised as images of their own
        flat, p = tv_prox(b.reshape(-1, 1, *b.shape[-2:]), lam, n_iter, lo, hi,
                          None if dual is None else dual.reshape(-1, 2, *b.shape[-2:]))
        return flat.reshape(b.shape), p.reshape(b.shape[0], -1, *b.shape[-2:])
    if lam <= 0:
        return _box(b, lo, hi), torch.zeros(b.shape[0], 2, *b.shape[-2:], dtype=b.dtype, device=b.device)
    p = torch.zeros(b.shape[0], 2, *b.shape[-2:], dtype=b.dtype, device=b.device) if dual is None else dual
    r, t = p, 1.0
    step = 1.0 / (8.0 * lam)  # 8 bounds ||grad||^2
    for _ in range(n_iter):
        x = _box(b + lam * div(r), lo, hi)
        q = r + step * grad(x)
        p_next = q / q.pow(2).sum(1, keepdim=True).sqrt().clamp(min=1.0)
        t_next = (1 + math.sqrt(1 + 4 * t * t)) / 2
        r = p_next + ((t - 1) / t_next) * (p_next - p)
        p, t = p_next, t_next
    return _box(b + lam * div(p), lo, hi), p


def operator_norm_sq(measurement: Measurement, like: torch.Tensor, n_iter: int = 30) -> torch.Tensor:
    """L: the largest eigenvalue of A^H A per image, (B, 1, 1, 1), with a 2% margin for a safe step.

    ``like`` is a (B, 1, N, N) image batch giving shape, dtype and device; deterministic
    (:meth:`operators.Measurement.norm_squared`).
    """
    return measurement.norm_squared(like, n_iter) * STEP_MARGIN


def data_misfit(measurement: Measurement, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """||A x - y||^2 per image, (B,)."""
    residual = measurement.A(x) - y
    return per_image_dot(residual, residual).to(x.dtype)


def image_channels(measurement: Measurement) -> int:
    """Channels of A's input images: 1, or 2 for the real and imaginary parts of complex MR images."""
    return getattr(measurement.transform, "channels", 1)


def image_side(measurement: Measurement, y: torch.Tensor) -> int:
    """N, the side of A's input images, for measurements ``y``."""
    return getattr(measurement.transform, "size", y.shape[-1])  # Radon knows N; k-space is image-sized


def zeros_like_image(measurement: Measurement, y: torch.Tensor) -> torch.Tensor:
    """A (B, C, N, N) zero image (C: :func:`image_channels`) in the real dtype of ``y``, on its device."""
    size = image_side(measurement, y)
    dtype = y.real.dtype if y.is_complex() else y.dtype
    return torch.zeros(y.shape[0], image_channels(measurement), size, size, dtype=dtype, device=y.device)


def fista(measurement: Measurement, y: torch.Tensor, prox: Callable[[torch.Tensor], torch.Tensor],
          n_iter: int, x0: torch.Tensor | None = None,
          callback: Callable[[int, torch.Tensor], None] | None = None,
          lipschitz: torch.Tensor | None = None) -> torch.Tensor:
    """FISTA on 1/(2L) ||A x - y||^2 + g(x), with ``prox`` the proximal map of g (step 1).

    Args:
        measurement: A and its adjoint.
        y: measurements, as returned by ``measurement.A``.
        prox: maps a (B, 1, N, N) point to prox_g of it.
        n_iter: iterations.
        x0: start (zeros by default).
        callback: called as ``callback(k, x_k)`` after each iteration.
        lipschitz: L, (B, 1, 1, 1) from :func:`operator_norm_sq` (computed when not given).
    Returns:
        (B, 1, N, N) final iterate.
    """
    x = zeros_like_image(measurement, y) if x0 is None else x0
    lipschitz = operator_norm_sq(measurement, x) if lipschitz is None else lipschitz
    z, t = x, 1.0
    for k in range(n_iter):
        gradient = measurement.A_adjoint(measurement.A(z) - y) / lipschitz
        x_next = prox(z - gradient)
        t_next = (1 + math.sqrt(1 + 4 * t * t)) / 2
        z = x_next + ((t - 1) / t_next) * (x_next - x)
        x, t = x_next, t_next
        if callback is not None:
            callback(k, x)
    return x


def fista_tv(measurement: Measurement, y: torch.Tensor, lam: float = 1e-5, n_iter: int = 300,
             inner_iter: int = 10, lo: float | None = 0.0, hi: float | None = None,
             callback: Callable[[int, torch.Tensor], None] | None = None) -> torch.Tensor:
    """FISTA-TV reconstruction, (B, 1, N, N) in the units of A's input.

    Args:
        measurement, y: the problem (any :class:`operators.Measurement`).
        lam: TV weight in image units (see the module docstring). The default
            is the best of a grid (3e-6 .. 1e-3) by mean PSNR over 10 / 20 / 23
            views on 8 validation slices of ``ct128.h5`` (noiseless data):
            ``python benchmarks/classical.py --tune --n 8 --methods fista-tv``
            (10 views alone prefer 3e-5 to 1e-4). Raise it for noisy data.
        n_iter: outer FISTA iterations (the paper ran 300).
        inner_iter: FGP iterations per proximal step (warm-started).
        lo, hi: box constraint (default non-negative).
        callback: ``callback(k, x_k)`` after each iteration.
    """
    state = {"dual": None}

    def prox(v: torch.Tensor) -> torch.Tensor:
        x, state["dual"] = tv_prox(v, lam, inner_iter, lo, hi, state["dual"])
        return x

    return fista(measurement, y, prox, n_iter, callback=callback)


def tv_objective(measurement: Measurement, y: torch.Tensor, x: torch.Tensor, lam: float,
                 lipschitz: torch.Tensor | None = None) -> torch.Tensor:
    """F(x) = 1/(2L) ||A x - y||^2 + lam TV(x) per image, (B,), as minimised by :func:`fista_tv`.

    ``lipschitz`` is L from :func:`operator_norm_sq` (computed when not given).
    """
    lipschitz = operator_norm_sq(measurement, x) if lipschitz is None else lipschitz
    return data_misfit(measurement, x, y) / (2 * lipschitz.flatten()) + lam * tv(x)
