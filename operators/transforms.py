"""Invertible transforms T shared by many measurement tasks.

Every transform maps image batches (B, 1, H, W) to its own domain and back:
``forward`` (T), ``adjoint`` (T^H, real-valued for real images) and
``inverse`` (T^-1; exact for the Fourier transform, filtered back-projection
for the Radon transform).
"""
from __future__ import annotations

import copy
import math
from typing import Any, Protocol

import torch

from operators.fbp import WINDOWS, filter_sinogram
from operators.geometry import ParallelBeamGeometry


class Transform(Protocol):
    """What a measurement needs from T."""

    def forward(self, x: torch.Tensor) -> torch.Tensor: ...

    def adjoint(self, y: torch.Tensor) -> torch.Tensor: ...

    def inverse(self, y: torch.Tensor) -> torch.Tensor: ...


def _check_image(x: torch.Tensor, size: int | None = None) -> None:
    if x.dim() != 4 or x.shape[1] != 1:
        raise ValueError(f"expected images of shape (B, 1, H, W), got {tuple(x.shape)}")
    if size is not None and (x.shape[-2] != size or x.shape[-1] != size):
        raise ValueError(f"expected {size}x{size} images, got {x.shape[-2]}x{x.shape[-1]}")


BACKENDS = ("auto", "matrix", "astra", "torch")
# Largest system matrix (forward plus transpose, bytes) the auto backend builds.
MATRIX_BUDGET_BYTES = 3 * 2**30


class _AstraOrTorch:
    """astra's projector for CPU tensors, the matrix-free torch projector for others (the large-image choice)."""

    def __init__(self, geometry: ParallelBeamGeometry):
        from operators.astra_backend import AstraProjector
        from operators.joseph import TorchProjector

        self._cpu, self._other = AstraProjector(geometry), TorchProjector(geometry)

    def forward(self, x: torch.Tensor, views: torch.Tensor | None = None) -> torch.Tensor:
        return (self._cpu if x.device.type == "cpu" else self._other).forward(x, views)

    def adjoint(self, y: torch.Tensor, views: torch.Tensor | None = None) -> torch.Tensor:
        return (self._cpu if y.device.type == "cpu" else self._other).adjoint(y, views)


class CTTransform:
    """What every CT transform shares: sinograms (B, 1, V, D) of square (B, 1, N, N) images and FBP as T^-1.

    Subclasses set ``geometry`` (with ``size``, ``n_angles``, ``n_detectors``), ``window`` and a projector
    with ``forward(x, views)`` / ``adjoint(y, views)`` on (B, N, N) / (B, V, D), and define :meth:`fbp`.
    """

    geometry: Any
    window: str
    _projector: Any
    takes_views = True  # forward / adjoint compute only the given views

    @property
    def size(self) -> int:
        return self.geometry.size

    def with_window(self, window: str) -> "CTTransform":
        """The same transform (sharing its projector) with another FBP window for :meth:`inverse`."""
        if window not in WINDOWS:
            raise ValueError(f"unknown FBP window {window!r}; choose one of {', '.join(WINDOWS)}")
        twin = copy.copy(self)
        twin.window = window
        return twin

    def forward(self, x: torch.Tensor, views: torch.Tensor | None = None) -> torch.Tensor:
        """(B, 1, N, N) -> (B, 1, V, n_detectors): all n_angles views, or only
        the view indices ``views`` (V,), computed without the others."""
        _check_image(x, self.size)
        return self._projector.forward(x[:, 0], views).unsqueeze(1)

    def adjoint(self, y: torch.Tensor, views: torch.Tensor | None = None) -> torch.Tensor:
        """(B, 1, V, n_detectors) -> (B, 1, N, N), the exact transpose of :meth:`forward`."""
        self._check_sino(y, self.geometry.n_angles if views is None else len(views))
        return self._projector.adjoint(y[:, 0], views).unsqueeze(1)

    def inverse(self, y: torch.Tensor) -> torch.Tensor:
        """Filtered back-projection of full sinograms, (B, 1, M, D) -> (B, 1, N, N)."""
        return self.fbp(y)

    def fbp(self, y: torch.Tensor, views: torch.Tensor | None = None, window: str | None = None) -> torch.Tensor:
        """Filtered back-projection of the views ``views`` (all by default), (B, 1, V, D) -> (B, 1, N, N)."""
        raise NotImplementedError

    def _check_sino(self, y: torch.Tensor, n_views: int | None = None) -> None:
        shape = (1, n_views or self.geometry.n_angles, self.geometry.n_detectors)
        if y.dim() != 4 or tuple(y.shape[1:]) != shape:
            raise ValueError(f"expected sinograms of shape (B, {', '.join(map(str, shape))}), got {tuple(y.shape)}")


class Radon(CTTransform):
    """Parallel-beam Radon transform of square (B, 1, N, N) images.

    Output sinograms are (B, 1, n_angles, n_detectors); see
    :mod:`operators.geometry` for angles, detector size and orientation.

    Backends (identical kernel, agreeing to float32 precision):
      * ``matrix``: astra-built sparse system matrix applied as torch CSR
        (CPU or CUDA), cached on disk;
      * ``astra``: astra-toolbox's own CPU/CUDA projector, via numpy;
      * ``torch``: matrix-free Joseph splatting in pure torch, any size.
    ``auto`` picks ``matrix`` while its stored matrix (the representative
    views, a quarter of the scan) fits ``MATRIX_BUDGET_BYTES``, that is up to
    about 600² at full views, and beyond that astra's projector for CPU tensors
    (3x faster than ``torch`` there) and ``torch`` for GPU tensors
    (``benchmarks/operators_speed.py``).

    Args:
        size: image side N.
        n_angles: full view count M (default N).
        n_detectors: detector bins (default ceil(sqrt 2 N), parity of N).
        backend: one of ``BACKENDS``.
        window: FBP window used by :meth:`inverse`.
    """

    def __init__(self, size: int, n_angles: int = 0, n_detectors: int = 0,
                 backend: str = "auto", window: str = "ram-lak"):
        from operators.astra_backend import AstraProjector
        from operators.sparse_matrix import SparseMatrixProjector, estimated_nonzeros
        from operators.joseph import TorchProjector

        self.geometry = ParallelBeamGeometry(size, n_angles, n_detectors)
        if backend not in BACKENDS:
            raise ValueError(f"unknown Radon backend {backend!r}; choose one of {', '.join(BACKENDS)}")
        if window not in WINDOWS:
            raise ValueError(f"unknown FBP window {window!r}; choose one of {', '.join(WINDOWS)}")
        auto = backend == "auto"
        if auto:
            fits = 2 * 8 * estimated_nonzeros(self.geometry) <= MATRIX_BUDGET_BYTES
            backend = "matrix" if fits else "astra"
        self.backend = backend
        self.window = window
        self._projector = {"matrix": SparseMatrixProjector, "astra": _AstraOrTorch if auto else AstraProjector,
                           "torch": TorchProjector}[backend](self.geometry)

    def fbp(self, y: torch.Tensor, views: torch.Tensor | None = None, window: str | None = None) -> torch.Tensor:
        """Ramp-filtered views back-projected by the matched adjoint over those views, scaled by pi / V:
        for a view subset the standard sparse-view FBP (not the zero-filled sinogram's, which darkens)."""
        self._check_sino(y, self.geometry.n_angles if views is None else len(views))
        filtered = filter_sinogram(y, self.window if window is None else window)
        return self.adjoint(filtered, views) * (math.pi / y.shape[-2])


def fft2c(x: torch.Tensor) -> torch.Tensor:
    """Centred orthonormal 2-D FFT over the last two axes (fastMRI convention)."""
    x = torch.fft.ifftshift(x, dim=(-2, -1))
    return torch.fft.fftshift(torch.fft.fft2(x, norm="ortho"), dim=(-2, -1))


def ifft2c(k: torch.Tensor) -> torch.Tensor:
    """Inverse of :func:`fft2c`."""
    k = torch.fft.ifftshift(k, dim=(-2, -1))
    return torch.fft.fftshift(torch.fft.ifft2(k, norm="ortho"), dim=(-2, -1))


class Fourier:
    """Unitary centred 2-D Fourier transform of (B, 1, H, W) images.

    Args:
        real: the images are real (magnitude MRI, as in the paper); then
            ``adjoint`` and ``inverse`` return the real part, which is the exact
            adjoint of F restricted to real images. With ``real=False``
            complex images go through unchanged.
    """

    def __init__(self, real: bool = True):
        self.real = real

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 1, H, W) real or complex -> (B, 1, H, W) complex k-space."""
        _check_image(x)
        return fft2c(x.to(torch.complex128 if x.dtype == torch.float64 else torch.complex64)
                     if not x.is_complex() else x)

    def adjoint(self, k: torch.Tensor) -> torch.Tensor:
        """(B, 1, H, W) k-space -> images (real part when ``real``)."""
        image = ifft2c(k)
        return image.real if self.real else image

    inverse = adjoint
