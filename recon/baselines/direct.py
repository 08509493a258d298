"""Direct (one-shot) reconstructions: FBP for CT, zero-filled inverse FFT for MRI."""
from __future__ import annotations

import torch

from operators import CTTransform, Fourier, Measurement, ViewMask, ifft2c
from recon.errors import InputError


def fbp(measurement: Measurement, y: torch.Tensor, window: str | None = None) -> torch.Tensor:
    """Filtered back-projection of the measured data, (B, 1, N, N).

    Sparse-view CT (a :class:`operators.ViewMask`): the standard sparse-view
    FBP, i.e. the ramp-filtered measured views back-projected over those views
    only and scaled by pi / n_measured_views (not the zero-filled full
    sinogram, whose missing views would simply darken the image). Any other
    mask (e.g. a metal trace): FBP of the zero-filled full sinogram,
    ``T^-1 P^-1 y``.

    Args:
        measurement: a CT measurement (its transform a :class:`operators.CTTransform`).
        y: measurements, (B, 1, n_views, n_detectors) for sparse views.
        window: ramp window (default: the Radon transform's own).
    """
    transform = measurement.transform
    if not isinstance(transform, CTTransform):
        raise InputError("fbp needs a CT measurement (a Radon or scan transform)")
    if isinstance(measurement.sampling, ViewMask):
        return transform.fbp(y, measurement.sampling.indices, window)
    return transform.fbp(measurement.P_inv(y), None, window)


def zero_filled(measurement: Measurement, y: torch.Tensor, magnitude: bool = False) -> torch.Tensor:
    """Zero-filled reconstruction ``T^-1 P^-1 y``, (B, 1, N, N) real.

    Args:
        magnitude: return |T^-1 P^-1 y| instead of its real part. The default,
            the real part, is the least-squares reconstruction under the
            project's real-image MRI model (and what ``Fourier(real=True)``
            returns); the magnitude is the usual clinical display.
    """
    if magnitude:
        if not isinstance(measurement.transform, Fourier):
            raise ValueError("magnitude=True needs an MRI measurement (a Fourier transform)")
        return ifft2c(measurement.P_inv(y)).abs()
    out = measurement.T_inv(measurement.P_inv(y))
    return out.real if out.is_complex() else out
