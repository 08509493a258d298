"""fastMRI-layout files made from magnitude slices, for trying `recon mri` on raw k-space.

A slice m (N, N) becomes the complex image z = m e^{i phi} with a smooth random phase phi, seen by
C synthetic coils (smooth Gaussian sensitivities around the field of view with a linear phase each,
normalised so that sum_c |S_c|^2 = 1; single-coil: S = 1). The file holds, like fastMRI's:

* ``kspace`` (S, [C,] 2N, N) complex64: the centred orthonormal FFT of the coil images, with a 2x
  oversampled readout (the image rows zero-padded to 2N, as fastMRI's 640-row k-space is for a
  320-row field of interest), plus complex Gaussian noise of std ``noise`` (magnitude units);
* without ``accel``: ``reconstruction_esc`` / ``reconstruction_rss`` (S, N, N) float32, the magnitude of
  the fully sampled data cropped to the N x N centre (root sum of squares over coils);
* with ``accel`` (a challenge/test file): ``mask`` (N,) float32, fastMRI's equispaced column mask,
  k-space zero in the unmeasured columns, and no reference.
"""
from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np

from operators.masks import equispaced_columns
from recon.io.fastmri import fft2c, kspace_to_magnitude


def smooth_phase(side: int, rng: np.random.Generator) -> np.ndarray:
    """A smooth random phase (side, side) in radians: a quadratic in the normalised coordinates, up to about 2 pi."""
    y, x = np.mgrid[:side, :side] / side - 0.5
    terms = np.stack([x, y, x * x, y * y, x * y])
    return np.tensordot(rng.uniform(-1.0, 1.0, 5) * np.array([6.0, 6.0, 8.0, 8.0, 8.0]), terms, axes=1) \
        + rng.uniform(-np.pi, np.pi)


def coil_maps(side: int, coils: int) -> np.ndarray:
    """``coils`` smooth sensitivities (C, side, side) complex, centred around a ring, sum_c |S_c|^2 = 1."""
    y, x = np.mgrid[:side, :side] / side - 0.5
    angles = 2 * np.pi * np.arange(coils) / coils
    maps = np.stack([np.exp(-((x - 0.6 * np.cos(a)) ** 2 + (y - 0.6 * np.sin(a)) ** 2) / (2 * 0.35 ** 2))
                     * np.exp(1j * (a + 1.5 * (x * np.cos(a) + y * np.sin(a)))) for a in angles])
    return maps / np.sqrt((np.abs(maps) ** 2).sum(0))


def kspace_of(slices: np.ndarray, coils: int, rng: np.random.Generator, noise: float = 0.0) -> np.ndarray:
    """The oversampled k-space (S, C, 2N, N) complex64 of magnitude slices (S, N, N) (see the module notes)."""
    n = slices.shape[-1]
    maps = coil_maps(n, coils) if coils else np.ones((1, n, n))
    images = np.stack([m * np.exp(1j * smooth_phase(n, rng)) for m in slices])[:, None] * maps
    padded = np.zeros((*images.shape[:2], 2 * n, n), dtype=complex)
    padded[..., n // 2:n // 2 + n, :] = images
    kspace = fft2c(padded)
    if noise > 0:
        kspace = kspace + noise * (rng.standard_normal(kspace.shape) + 1j * rng.standard_normal(kspace.shape))
    return kspace.astype(np.complex64)


def write_kspace_file(path: Path | str, slices: np.ndarray, coils: int = 0, accel: float | None = None,
                      seed: int = 0, noise: float = 0.0) -> Path:
    """Write magnitude slices (S, N, N) as a fastMRI-layout file (see the module notes); returns the path.

    Args:
        coils: 0 for a single-coil file (S, 2N, N), else that many coils (S, C, 2N, N).
        accel: None for a fully sampled file with its reference; else a challenge-style file
            undersampled by fastMRI's equispaced mask at that acceleration, with ``mask`` and no reference.
        seed: seed of the phases and the noise.
        noise: std of the complex k-space noise per part, in the slices' units.
    """
    path = Path(path)
    rng = np.random.default_rng(seed)
    kspace = kspace_of(np.asarray(slices, dtype=np.float64), coils, rng, noise)
    n = kspace.shape[-1]
    with h5py.File(path, "w") as handle:
        if accel is None:
            magnitude = kspace_to_magnitude(kspace)[:, n // 2:n // 2 + n]  # root sum of squares over coils
            handle["reconstruction_rss" if coils else "reconstruction_esc"] = magnitude.astype(np.float32)
        else:
            mask = equispaced_columns(n, accel)
            kspace = kspace * mask
            handle["mask"] = mask.astype(np.float32)
        handle["kspace"] = kspace if coils else kspace[:, 0]
        handle.attrs["acquisition"] = "SYNTHETIC"
        handle.attrs["patient_id"] = f"kspace-files-seed-{seed}"
    return path
