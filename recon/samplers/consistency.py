"""The proximal data-consistency step (Theorem 8.1) and the exact final projection.

For A = P(Lambda) T and a noisy measurement path y_t = y + sigma A z
(z ~ N(0, I) in image space, the VE SDE's alpha = 1, beta = sigma), the step
with weight 0 <= lam <= 1 is

* ``"projection"``: x' = T^-1[lam Lambda P^-1(y_t) + (1 - lam) Lambda T x + (I - Lambda) T x]
* ``"residual"``:   x' = x + T^-1[lam Lambda (P^-1(y_t) - T x)] = x + lam T^-1 P^-1(y_t - A x)

They agree whenever T^-1 T = I (the Fourier transform); with the filtered
back-projection as T^-1 of the Radon transform, the projection form passes
the whole image through FBP(R x) != x at every step while the residual form
only back-projects the data mismatch. ``benchmarks/dc_forms.py`` measures
both; :data:`DEFAULT_FORM` is the better one.
"""
from __future__ import annotations

import torch

FORMS = ("projection", "residual")
# Chosen by benchmarks/dc_forms.py (see benchmarks/RESULTS.md); identical for MRI.
DEFAULT_FORM = "residual"


def noisy_measurement(measurement, y: torch.Tensor, sigma: float, like: torch.Tensor,
                      generator: torch.Generator | None = None) -> torch.Tensor:
    """y_t = y + sigma A z with z ~ N(0, I) shaped like the images ``like`` (B, 1, H, W)."""
    z = torch.randn(like.shape, generator=generator, device=like.device, dtype=like.dtype)
    return y + sigma * measurement.A(z)


def proximal_step(measurement, x: torch.Tensor, y_t: torch.Tensor, lam: float, form: str = DEFAULT_FORM
                  ) -> torch.Tensor:
    """Theorem 8.1's step in the given form: (B, 1, H, W) -> (B, 1, H, W)."""
    if form == "residual":
        return x + lam * measurement.T_inv(measurement.P_inv(y_t - measurement.A(x)))
    if form == "projection":
        full = measurement.T(x)
        measured = measurement.mask(full)
        mixed = torch.where(measured, lam * measurement.P_inv(y_t) + (1 - lam) * full, full)
        return measurement.T_inv(mixed)
    raise ValueError(f"unknown data-consistency form {form!r}; choose one of {', '.join(FORMS)}")


class DataConsistency:
    """The step applied before every predictor and corrector step.

    Args:
        measurement: an :class:`operators.Measurement`.
        y: (B, ...) measurements, batch matching the images the step is applied to.
        lam: weight in [0, 1]; 0 leaves x unchanged (unconditional sampling) and
            draws no noise.
        form: ``"projection"`` or ``"residual"``.
    """

    def __init__(self, measurement, y: torch.Tensor, lam: float, form: str = DEFAULT_FORM):
        if form not in FORMS:
            raise ValueError(f"unknown data-consistency form {form!r}; choose one of {', '.join(FORMS)}")
        self.measurement, self.y, self.lam, self.form = measurement, y, lam, form

    def __call__(self, x: torch.Tensor, sigma: float, generator: torch.Generator | None = None) -> torch.Tensor:
        if self.lam == 0:
            return x
        y_t = noisy_measurement(self.measurement, self.y, sigma, x, generator)
        return proximal_step(self.measurement, x, y_t, self.lam, self.form)


def _dot(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Real inner product Re<a, b> per batch item, (B,)."""
    return (a.conj() * b).real.reshape(a.shape[0], -1).sum(1) if a.is_complex() else \
        (a * b).reshape(a.shape[0], -1).sum(1)


def project(measurement, x: torch.Tensor, y: torch.Tensor, tol: float = 1e-6, max_iter: int = 500
            ) -> tuple[torch.Tensor, dict]:
    """Euclidean projection of x onto {x : A x = y}.

    Starts from the lam = 1 residual-form step (exact for a Fourier T with a
    conjugate-symmetric mask) and finishes with conjugate gradients on
    A A^H u = y - A x, x <- x + A^H u (per image), until ||A x - y|| / ||y||
    is below ``tol`` or ``max_iter`` iterations. Runs in float64 (except on
    MPS), since A A^H of sparse-view CT has a condition number near 1e8.

    Returns:
        the projected images (B, 1, H, W) and ``{"iterations", "relative_residual"}``
        (the largest over the batch).
    """
    dtype = x.dtype
    if x.device.type != "mps":  # float64 where the device has it: A A^H is badly conditioned for sparse-view CT
        x, y = x.to(torch.float64), y.to(torch.complex128 if y.is_complex() else torch.float64)
    view = (-1,) + (1,) * (y.dim() - 1)
    x = proximal_step(measurement, x, y, 1.0, "residual")
    r = y - measurement.A(x)
    y_norm = _dot(y, y).sqrt().clamp_min(1e-30)
    u = torch.zeros_like(r)
    p = r.clone()
    rr = _dot(r, r)
    iterations = 0
    while iterations < max_iter and bool(((rr.sqrt() / y_norm) > tol).any()):
        gp = measurement.A(measurement.A_adjoint(p))
        pgp = _dot(p, gp)
        alpha = torch.where(pgp > 0, rr / pgp.clamp_min(1e-30), torch.zeros_like(rr))
        u = u + alpha.reshape(view) * p
        r = r - alpha.reshape(view) * gp
        rr_new = _dot(r, r)
        beta = torch.where(rr > 0, rr_new / rr.clamp_min(1e-30), torch.zeros_like(rr))
        p = r + beta.reshape(view) * p
        rr = rr_new
        iterations += 1
    if iterations:
        x = x + measurement.A_adjoint(u)
    r = y - measurement.A(x)
    final = _dot(r, r).sqrt() / y_norm
    return x.to(dtype), {"iterations": iterations, "relative_residual": float(final.max())}
