"""Coil sensitivities and the image's phase in the MRI transform: T x = F(S z(x)).

Measured k-space is complex and comes from C receive coils: the coil images are S_c z, with z the
complex image and S_c the coils' sensitivity maps (one map of ones for single-coil data), and the
k-space is the centred unitary FFT F of each. The score priors are real-valued, so the real images x
that the samplers and baselines see stand for z = e^{i phase} w with a known phase (zero when none is
given; e.g. the phase of the low-resolution image of the fully sampled centre) and

* magnitude (``parts`` False): w = x, x (B, 1, H, W), a real magnitude; T is real-linear in x and its
  adjoint is Re(e^{-i phase} S^H F^H k);
* parts (``parts`` True): w = x_0 + i x_1, x (B, 2, H, W) the real and imaginary parts.

Either way T^H T x = (sum_c |S_c|^2) x, so dividing the adjoint by sum_c |S_c|^2 gives an exact left
inverse on the maps' support (ESPIRiT maps are zero outside the object; there T x = 0 and the
inverse returns 0).
"""
from __future__ import annotations

import torch

from operators.transforms import fft2c, ifft2c


def _complex_dtype(x: torch.Tensor) -> torch.dtype:
    return torch.complex128 if x.dtype in (torch.float64, torch.complex128) else torch.complex64


class CoilFourier:
    """T = F S e^{i phase} for Cartesian MRI with coil maps, on magnitude or real/imaginary-part images.

    Args:
        maps: (B or 1, C, H, W) complex coil sensitivities (single-coil data: ones (1, 1, H, W)).
        phase: (B or 1, 1, H, W) real phase in radians taken out of the images (None: zero).
        parts: the images are (B, 2, H, W) real and imaginary parts; else (B, 1, H, W) magnitudes.

    Shapes: images (B, 1, H, W) or (B, 2, H, W) real; k-space (B, C, H, W) complex.
    """

    def __init__(self, maps: torch.Tensor, phase: torch.Tensor | None = None, parts: bool = False):
        if maps.dim() != 4 or not maps.is_complex():
            raise ValueError(f"coil maps must be complex (B, C, H, W), got {maps.dtype} {tuple(maps.shape)}")
        if phase is not None and (phase.dim() != 4 or phase.shape[1] != 1 or phase.is_complex()):
            raise ValueError(f"the phase must be real (B, 1, H, W), got {phase.dtype} {tuple(phase.shape)}")
        self.maps = maps
        self.phase = phase
        self.rotation = None if phase is None else torch.polar(torch.ones_like(phase), phase)  # e^{i phase}
        self.channels = 2 if parts else 1
        self.weight = (maps.abs() ** 2).sum(1, keepdim=True)  # sum_c |S_c|^2, (B|1, 1, H, W)

    def _check(self, x: torch.Tensor) -> None:
        if x.dim() != 4 or x.shape[1] != self.channels or x.is_complex() or x.shape[-2:] != self.maps.shape[-2:]:
            raise ValueError(f"expected real images (B, {self.channels}, {self.maps.shape[-2]}, "
                             f"{self.maps.shape[-1]}), got {x.dtype} {tuple(x.shape)}")

    def image(self, x: torch.Tensor) -> torch.Tensor:
        """The complex image z (B, 1, H, W) that images x stand for."""
        self._check(x)
        w = torch.complex(x[:, :1], x[:, 1:]) if self.channels == 2 else x.to(_complex_dtype(x))
        return w if self.rotation is None else w * self.rotation.to(dtype=w.dtype, device=w.device)

    def images(self, z: torch.Tensor) -> torch.Tensor:
        """The real images standing for complex images z (B, 1, H, W): the adjoint of :meth:`image`."""
        w = z if self.rotation is None else z * self.rotation.to(dtype=z.dtype, device=z.device).conj()
        return torch.cat([w.real, w.imag], dim=1) if self.channels == 2 else w.real

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Images -> k-space (B, C, H, W): F(S_c z) for every coil."""
        z = self.image(x)
        return fft2c(self.maps.to(dtype=z.dtype, device=z.device) * z)

    def adjoint(self, k: torch.Tensor) -> torch.Tensor:
        """k-space (B, C, H, W) -> images: the real images of sum_c conj(S_c) F^H k_c."""
        coil_images = ifft2c(k)
        z = (self.maps.to(dtype=coil_images.dtype, device=k.device).conj() * coil_images).sum(1, keepdim=True)
        return self.images(z)

    def inverse(self, k: torch.Tensor) -> torch.Tensor:
        """A left inverse of :meth:`forward`: the adjoint divided by sum_c |S_c|^2 (0 where that is 0)."""
        x = self.adjoint(k)
        weight = self.weight.to(dtype=x.dtype, device=x.device)
        return torch.where(weight > 0, x / torch.where(weight > 0, weight, torch.ones_like(weight)),
                           torch.zeros_like(x))
