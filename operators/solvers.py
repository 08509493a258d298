"""Linear solvers beside the measurement: CG, CGLS and the power iteration.

Everything works per image: the first dimension is the batch, and each image
has its own step sizes and its own stop. Per-image sums accumulate in float64
(float32 on MPS, which has no float64), so an image's result depends on the
batch it is in only through the operator's own round-off.
"""
from __future__ import annotations

from typing import Callable

import torch

Operator = Callable[[torch.Tensor], torch.Tensor]


def per_image_dot(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Re<a, b> per image: (B, ...) and (B, ...) -> (B,), summed in float64 (float32 on MPS)."""
    product = (a.conj() * b).real if a.is_complex() else a * b
    total = torch.float32 if product.device.type == "mps" else torch.float64
    return product.reshape(product.shape[0], -1).sum(1, dtype=total)


def _per_image(values: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """(B,) per-image scalars as (B, 1, ..., 1) in the real dtype of ``like``."""
    dtype = like.real.dtype if like.is_complex() else like.dtype
    return values.to(dtype).reshape((-1,) + (1,) * (like.dim() - 1))


def _ratio(num: torch.Tensor, den: torch.Tensor, ok: torch.Tensor) -> torch.Tensor:
    """num / den where ``ok`` (which implies den > 0), else 0; all (B,)."""
    return torch.where(ok, num / torch.where(ok, den, torch.ones_like(den)), torch.zeros_like(num))


def conjugate_gradient(normal: Operator, rhs: torch.Tensor, x0: torch.Tensor, iterations: int,
                       rtol: float = 1e-4) -> torch.Tensor:
    """``iterations`` CG steps on normal(x) = rhs from x0, per image; (B, ...) -> (B, ...).

    ``normal`` must be symmetric positive semi-definite (e.g. A^H A + gamma I).
    An image stops once its residual is below ``rtol`` times the larger of
    ||rhs|| and its first residual: past that point the residual is round-off,
    largely in the null space of the operator (MRI's A^H A has no eigenvalues
    but 0, 1/2 and 1, solved in two steps), and a further step would divide
    round-off by round-off.
    """
    x, r = x0, rhs - normal(x0)
    p = r
    rr = per_image_dot(r, r)
    floor = torch.maximum(rr, per_image_dot(rhs, rhs)) * rtol ** 2
    for _ in range(iterations):
        q = normal(p)
        pq = per_image_dot(p, q)
        alpha = _ratio(rr, pq, (pq > 0) & (rr > floor))
        x = x + _per_image(alpha, x) * p
        r = r - _per_image(alpha, r) * q
        rr_next = per_image_dot(r, r)
        p = r + _per_image(_ratio(rr_next, rr, rr > 0), p) * p
        rr = rr_next
    return x


def cgls(A: Operator, A_adjoint: Operator, y: torch.Tensor, x0: torch.Tensor | None = None,
         iterations: int = 100, tol: float | None = None,
         callback: Callable[[int, torch.Tensor], None] | None = None) -> tuple[torch.Tensor, dict]:
    """CGLS (CG on A^H A x = A^H y) for min ||A x - y||^2, per image, from x0 (zeros when None).

    Each image stops on its own once ||A^H r||^2 falls to round-off (eps^2 of
    its start; past that CGLS loses conjugacy and drifts) or, when ``tol`` is
    given, once ||A x - y|| / ||y|| <= tol. The loop ends when no image is left.

    Args:
        A, A_adjoint: images (B, ...) -> measurements (B, ...) and back.
        y: (B, ...) measurements.
        x0: (B, ...) start; None starts from zero images shaped like A_adjoint(y).
        iterations: the most steps.
        tol: relative residual to stop at (None: only the round-off stop).
        callback: ``callback(k, x_k)`` for every k < ``iterations`` (once the
            loop has ended, with the final x).
    Returns:
        x (B, ...) and ``{"iterations": steps taken, "relative_residual": the largest
        ||A x - y|| / ||y|| over the batch}`` (from the recurred residual).
    """
    r = y if x0 is None else y - A(x0)
    s = A_adjoint(r)
    x = torch.zeros_like(s) if x0 is None else x0
    p, gamma = s, per_image_dot(s, s)
    floor = gamma * torch.finfo(s.dtype).eps ** 2
    y_norm = per_image_dot(y, y).sqrt()
    y_norm = torch.where(y_norm > 0, y_norm, torch.ones_like(y_norm))
    relative = per_image_dot(r, r).sqrt() / y_norm
    steps = 0
    while steps < iterations:
        active = gamma > floor
        if tol is not None:
            active &= relative > tol
        if not bool(active.any()):
            break
        q = A(p)
        qq = per_image_dot(q, q)
        alpha = _ratio(gamma, qq, active & (qq > 0))
        x = x + _per_image(alpha, x) * p
        r = r - _per_image(alpha, r) * q
        s = A_adjoint(r)
        gamma_next = per_image_dot(s, s)
        p = s + _per_image(_ratio(gamma_next, gamma, gamma > 0), p) * p
        gamma, relative = gamma_next, per_image_dot(r, r).sqrt() / y_norm
        if callback is not None:
            callback(steps, x)
        steps += 1
    if callback is not None:  # x stays put once every image has stopped
        for k in range(steps, iterations):
            callback(k, x)
    return x, {"iterations": steps, "relative_residual": float(relative.max())}


def operator_norm_squared(A: Operator, A_adjoint: Operator, like: torch.Tensor, iterations: int = 30
                          ) -> torch.Tensor:
    """Largest eigenvalue of A^H A per image, (B, 1, ..., 1), by power iteration.

    ``like`` (B, ...) gives the images' shape, dtype and device. The start is
    uniform in [0.5, 1.5) from a CPU generator seeded 0 (positive: close to the
    leading eigenvector of projection operators), so the estimate is deterministic.
    It approaches the eigenvalue from below.
    """
    generator = torch.Generator().manual_seed(0)
    v = torch.rand(like.shape, generator=generator, dtype=torch.float64).to(like.device, like.dtype) + 0.5
    value = torch.ones(like.shape[0], dtype=torch.float64, device=like.device)
    for _ in range(iterations):
        v = v / _per_image(per_image_dot(v, v).sqrt().clamp_min(1e-30), v)
        v = A_adjoint(A(v))
        value = per_image_dot(v, v).sqrt()
    return _per_image(value, like)
