"""The proximal data-consistency step (Theorem 8.1) and the exact final projection.

For A = P(Lambda) T and a noisy measurement path y_t = y + sigma A z
(z ~ N(0, I) in image space, the VE SDE's alpha = 1, beta = sigma), the step
with weight 0 <= lam <= 1 is

* ``"projection"``: x' = T^-1[lam Lambda P^-1(y_t) + (1 - lam) Lambda T x + (I - Lambda) T x]
* ``"residual"``:   x' = x + T^-1[lam Lambda (P^-1(y_t) - T x)] = x + lam T^-1 P^-1(y_t - A x)

They agree whenever T^-1 T = I (the Fourier transform). With filtered
back-projection as T^-1 of the Radon transform they differ:

* the projection form passes the whole image through FBP(R x) at every
  step. That is stable only when FBP R is non-expansive, which holds for the
  hann window (largest gain 0.99 at 32-128 px) but not for ram-lak (1.7-2.1),
  shepp-logan (1.4-1.6) or cosine (up to 1.16): the unmeasured part of the
  sinogram is amplified step after step and the sampler diverges;
* the residual form is always stable but weak for sparse views: FBP
  normalises by the full view count, so one step moves A x only a fraction
  (about n_views / n_full) of the way to y_t.

``benchmarks/dc_forms.py`` measured the projection form with the hann window
best by far (64 px, 8 views: 27.9 dB against 22.2 dB for the residual form);
:func:`default_form` picks it whenever it is stable.
"""
from __future__ import annotations

import torch

from operators.solvers import cgls, per_image_dot
from recon.errors import InputError
from recon.samplers.streams import SliceStreams, randn_like

FORMS = ("projection", "residual")
# FBP windows for which FBP R is non-expansive (measured by benchmarks/dc_forms.py).
STABLE_FBP_WINDOWS = ("hann",)


def projection_form_is_stable(measurement) -> bool:
    """True when T^-1 T is non-expansive: the Fourier transform, or FBP with a stable window."""
    window = getattr(measurement.transform, "window", None)
    return window is None or window in STABLE_FBP_WINDOWS


def proximal_measurement(measurement, form: str | None):
    """The measurement whose T^-1 the proximal step and the final projection use.

    With no ``form`` chosen, a CT measurement whose FBP window would make the projection form diverge
    gets the hann window (T^-1 only; A is unchanged), so the stable projection form can run. An explicit
    ``"projection"`` form with such a window raises an InputError.
    """
    if projection_form_is_stable(measurement):
        return measurement
    if form is None:
        return measurement.with_window(STABLE_FBP_WINDOWS[0])
    if form == "projection":
        raise InputError(f"the projection form diverges with the {measurement.transform.window} FBP window "
                         "(FBP R amplifies); build the CT measurement with window='hann' or use form='residual'")
    return measurement


def default_form(measurement) -> str:
    """``"projection"`` when it is stable (see the module notes), else ``"residual"``."""
    return "projection" if projection_form_is_stable(measurement) else "residual"


def noisy_measurement(measurement, y: torch.Tensor, sigma: float, like: torch.Tensor,
                      generator: SliceStreams | torch.Generator | None = None) -> torch.Tensor:
    """y_t = y + sigma A z with z ~ N(0, I) shaped like the images ``like`` (B, 1, H, W)."""
    z = randn_like(like, generator)
    return y + sigma * measurement.A(z)


def proximal_step(measurement, x: torch.Tensor, y_t: torch.Tensor, lam: float, form: str = "residual"
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

    def __init__(self, measurement, y: torch.Tensor, lam: float, form: str = "residual"):
        if form not in FORMS:
            raise ValueError(f"unknown data-consistency form {form!r}; choose one of {', '.join(FORMS)}")
        self.measurement, self.y, self.lam, self.form = measurement, y, lam, form

    def __call__(self, x: torch.Tensor, sigma: float, generator: SliceStreams | torch.Generator | None = None
                 ) -> torch.Tensor:
        if self.lam == 0:
            return x
        y_t = noisy_measurement(self.measurement, self.y, sigma, x, generator)
        return proximal_step(self.measurement, x, y_t, self.lam, self.form)


def project(measurement, x: torch.Tensor, y: torch.Tensor, tol: float = 1e-4, max_iter: int = 1000
            ) -> tuple[torch.Tensor, dict]:
    """Move x onto {x : A x = y} by a minimum-norm correction.

    Starts from the lam = 1 residual-form step (exact for a Fourier T where
    conjugate k-space partners are both measured) and finishes with CGLS from
    there (:func:`operators.solvers.cgls`; its correction d starts at 0, so it
    converges to the minimum-norm d, and ||A x - y|| decreases monotonically),
    each image until its ||A x - y|| / ||y|| is below ``tol``, for at most
    ``max_iter`` iterations.
    Runs in float64 (except on MPS): sparse-view CT's A has a condition
    number near 1e4.

    Returns:
        the corrected images (B, 1, H, W) in x's dtype and
        ``{"iterations", "relative_residual"}`` (the largest over the batch).
    """
    dtype = x.dtype
    if x.device.type != "mps":
        x, y = x.to(torch.float64), y.to(torch.complex128 if y.is_complex() else torch.float64)
    x = proximal_step(measurement, x, y, 1.0, "residual")
    x, info = cgls(measurement.A, measurement.A_adjoint, y, x, max_iter, tol)
    r = y - measurement.A(x)  # the true residual, not CGLS's recurred one
    final = (per_image_dot(r, r) / per_image_dot(y, y).clamp_min(1e-300)).sqrt()
    return x.to(dtype), {"iterations": info["iterations"], "relative_residual": float(final.max())}
