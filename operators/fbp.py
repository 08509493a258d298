"""Filtered back-projection: the approximate inverse T^-1 of the Radon transform.

The ramp filter is the band-limited discrete ramp of Kak & Slaney (spatial
kernel h[0] = 1/4, h[n] = -1/(pi n)^2 for odd n), applied by FFT with zero
padding to at least twice the detector count, optionally apodised by a
window. The transforms back-project the filtered views (:meth:`operators.transforms.CTTransform.fbp`).
"""
from __future__ import annotations

import math
import torch

WINDOWS = ("ram-lak", "shepp-logan", "cosine", "hann")


def ramp_filter(n_detectors: int, window: str = "ram-lak", device: torch.device | str = "cpu",
                dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """Frequency response of the windowed ramp, shape (P,) for padded length P."""
    if window not in WINDOWS:
        raise ValueError(f"unknown FBP window {window!r}; choose one of {', '.join(WINDOWS)}")
    padded = 1 << max(64, 2 * n_detectors - 1).bit_length()
    n = torch.arange(padded, dtype=torch.float64)
    n = torch.where(n > padded // 2, n - padded, n)  # signed offsets, wrapped
    kernel = torch.zeros(padded, dtype=torch.float64)
    kernel[0] = 0.25
    odd = (n.abs() % 2) == 1
    kernel[odd] = -1.0 / (math.pi * n[odd]) ** 2
    response = torch.fft.fft(kernel).real
    freq = torch.fft.fftfreq(padded, dtype=torch.float64)  # cycles per bin, in [-0.5, 0.5)
    if window == "shepp-logan":
        response = response * torch.sinc(freq)
    elif window == "cosine":
        response = response * torch.cos(math.pi * freq)
    elif window == "hann":
        response = response * 0.5 * (1 + torch.cos(2 * math.pi * freq))
    return response.to(device=device, dtype=dtype)


def filter_sinogram(sino: torch.Tensor, window: str = "ram-lak") -> torch.Tensor:
    """Ramp-filter each view of sinograms (..., n_detectors) along the last axis."""
    n_det = sino.shape[-1]
    response = ramp_filter(n_det, window, sino.device, sino.dtype)
    spectrum = torch.fft.fft(sino, n=response.shape[0], dim=-1)
    return torch.fft.ifft(spectrum * response, dim=-1).real[..., :n_det]
