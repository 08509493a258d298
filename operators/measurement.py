"""The measurement operator A = P(Lambda) T and the tasks built from it."""
from __future__ import annotations

from typing import Callable

import torch

from operators import solvers
from operators.masks import BooleanMask, ViewMask, kspace_column_mask, metal_trace, view_indices
from operators.transforms import Fourier, Radon, Transform


class Measurement:
    """A = P(Lambda) T: an invertible transform followed by a sampling mask.

    Args:
        transform: T (:class:`Radon` or :class:`Fourier`).
        sampling: a :class:`ViewMask` or :class:`BooleanMask` giving P, P^-1 and Lambda.
        noise_std: standard deviation of additive Gaussian noise used by
            :meth:`measure` (in the units of T's output; complex noise has this
            std in each of the real and imaginary parts).

    Shapes: images (B, 1, N, N); T's output (B, 1, M, D) for CT or complex
    (B, 1, H, W) for MRI; measurements y as returned by :meth:`P`.
    """

    def __init__(self, transform: Transform, sampling: ViewMask | BooleanMask, noise_std: float = 0.0):
        if noise_std < 0:
            raise ValueError(f"noise_std must be >= 0, got {noise_std}")
        self.transform = transform
        self.sampling = sampling
        self.noise_std = noise_std

    def with_window(self, window: str) -> "Measurement":
        """The same measurement with another FBP window in T^-1 (CT only)."""
        if not hasattr(self.transform, "window"):
            raise ValueError("with_window needs a CT measurement (a transform with an FBP window)")
        return Measurement(self.transform.with_window(window), self.sampling, self.noise_std)

    def T(self, x: torch.Tensor) -> torch.Tensor:
        return self.transform.forward(x)

    def T_adjoint(self, y_full: torch.Tensor) -> torch.Tensor:
        return self.transform.adjoint(y_full)

    def T_inv(self, y_full: torch.Tensor) -> torch.Tensor:
        return self.transform.inverse(y_full)

    def P(self, y_full: torch.Tensor) -> torch.Tensor:
        """Keep the measured entries of T's output."""
        return self.sampling.select(y_full)

    def P_inv(self, y: torch.Tensor) -> torch.Tensor:
        """Zero-fill measurements back to T's output shape (also P's adjoint)."""
        return self.sampling.fill(y)

    def mask(self, like: torch.Tensor) -> torch.Tensor:
        """Lambda as a boolean tensor broadcastable to ``like`` (T's output)."""
        return self.sampling.tensor(tuple(like.shape), like.device)

    def _views(self) -> torch.Tensor | None:
        """Measured view indices when A can skip unmeasured views (sparse-view CT)."""
        if isinstance(self.sampling, ViewMask) and getattr(self.transform, "takes_views", False):
            return self.sampling.indices
        return None

    def A(self, x: torch.Tensor) -> torch.Tensor:
        views = self._views()
        return self.P(self.T(x)) if views is None else self.transform.forward(x, views)

    def A_adjoint(self, y: torch.Tensor) -> torch.Tensor:
        views = self._views()
        return self.T_adjoint(self.P_inv(y)) if views is None else self.transform.adjoint(y, views)

    def measure(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """Simulate y = A x + noise (noise only when ``noise_std > 0``)."""
        return self.add_noise(self.A(x), generator)

    def add_noise(self, y: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """Measurements ``y`` plus Gaussian noise of std ``noise_std`` (in each part of complex data) in the
        measured entries; ``y`` itself when ``noise_std`` is 0."""
        if self.noise_std == 0:
            return y
        noise = torch.randn(y.shape, generator=generator, device=y.device,
                            dtype=y.real.dtype if y.is_complex() else y.dtype)
        if y.is_complex():
            noise = torch.complex(noise, torch.randn(y.shape, generator=generator, device=y.device,
                                                     dtype=noise.dtype))
        return self.P(self.P_inv(y + self.noise_std * noise))  # no noise in unmeasured entries

    def A_dagger(self, y: torch.Tensor, iterations: int = 100, tol: float | None = None,
                 callback: Callable[[int, torch.Tensor], None] | None = None) -> torch.Tensor:
        """Least-squares images argmin ||A x - y||^2 by CGLS from zero (:func:`operators.solvers.cgls`).

        ``y`` (B, ...) as returned by :meth:`A`; returns real images (B, 1, N, N).
        Each image stops on its own at round-off, at ``tol`` (relative residual
        ||A x - y|| / ||y||, when given) or after ``iterations`` steps; few steps
        regularise (early stopping). ``callback(k, x_k)`` runs for every k < iterations.
        """
        return solvers.cgls(self.A, self.A_adjoint, y, None, iterations, tol, callback)[0]

    def norm_squared(self, like: torch.Tensor, iterations: int = 30) -> torch.Tensor:
        """||A||_2^2 (largest eigenvalue of A^H A) per image, (B, 1, 1, 1), by power iteration.

        ``like`` (B, 1, N, N) gives the images' shape, dtype and device (per image, as a
        mask may differ per image); deterministic (:func:`operators.solvers.operator_norm_squared`).
        """
        return solvers.operator_norm_squared(self.A, self.A_adjoint, like, iterations)


def sparse_view_ct(size: int, n_views: int, n_angles: int = 0, backend: str = "auto",
                   window: str = "ram-lak", noise_std: float = 0.0) -> Measurement:
    """Sparse-view CT: ``n_views`` of the ``n_angles`` (default ``size``) full views."""
    radon = Radon(size, n_angles, backend=backend, window=window)
    n_full = radon.geometry.n_angles
    return Measurement(radon, ViewMask(n_full, view_indices(n_full, n_views)), noise_std)


def undersampled_mri(size: int, acceleration: float, center_fraction: float | None = None,
                     kind: str = "equispaced", seed: int | None = 0, noise_std: float = 0.0) -> Measurement:
    """Single-coil Cartesian MRI keeping whole k-space columns."""
    return Measurement(Fourier(real=True), kspace_column_mask(size, acceleration, center_fraction, kind, seed),
                       noise_std)


def metal_trace_ct(metal: torch.Tensor, n_angles: int = 0, threshold: float = 0.0, backend: str = "auto",
                   window: str = "ram-lak", noise_std: float = 0.0) -> Measurement:
    """Metal artifact removal: all views, minus the bins crossed by ``metal`` (B, 1, N, N)."""
    radon = Radon(metal.shape[-1], n_angles, backend=backend, window=window)
    trace = metal_trace(metal, radon, threshold)
    return Measurement(radon, BooleanMask(~trace), noise_std)
