"""Measured MRI: a fastMRI file's raw k-space, reconstructed from its own data (`recon mri file.h5`).

:func:`read_raw` reads ``kspace`` (single-coil (S, H, W) or multi-coil (S, C, H, W)), brings the
readout field of view to the W columns' (fastMRI's 2x readout oversampling removed,
:func:`recon.tasks.kspace.square_readout`), and undersamples it with the task's column mask, or
keeps the file's own ``mask`` (challenge and test files, whose k-space is already undersampled; an
``--accel`` that disagrees with it is refused). Each slice batch's :class:`Problem` is then

    y = P(Lambda) k / scale (+ ``--noise``),   A = P(Lambda) F S e^{i phi},

with S the coil maps, estimated from the fully sampled centre by ESPIRiT (sigpy), or ones for a
single coil, and phi the phase of the low-resolution image of the fully sampled centre. The real-valued
prior meets the complex image z through the real images of :class:`operators.coils.CoilFourier`, by
``complex_prior``:

* "demodulated" (the default): the real and imaginary parts of e^{-i phi} z, each a prior image; the
  output is the in-phase part (at least 0), the quadrature part absorbing what phi misses;
* "magnitude": the magnitude m of z = e^{i phi} m (the quadrature part forced to zero);
* "parts": the real and imaginary parts of z itself (Chung & Ye 2022); the output is |z|.

``benchmarks/mri_raw.py`` measured them (4x, 4 test slices with a smooth phase, fastMRI PSNR, score =
dds at 50 levels): demodulated 33.0 dB single-coil and 41.1 with 8 coils (31.9 / 40.5 at 25 levels, the
50 network evaluations of the others), magnitude 23.5 / 32.5 (the phase's errors cannot be absorbed),
parts 19.6 / 22.8, below CS-TV (the prior, trained on magnitudes, does not know signed images). Every
method runs on the same images and is finished the same way, so the baselines share the model.

Measured data are never noiseless: the measurement's ``noise_std`` is the noise estimated from the
outer k-space (:func:`recon.tasks.kspace.noise_std`), so the samplers do not end with the exact
projection onto A x = y, which fits the noise and the model's errors (in a 10-level single-coil trial
with the magnitude prior it took the result from 25.6 to 9.8 dB).

Units: model = magnitude / scale, scale the 99.5th percentile of the volume's zero-filled
root-sum-of-squares image. The reference, when the file has ``reconstruction_esc`` / ``_rss``, is
its (h, w) crop placed at the centre of the N x N grid; ``Problem.keep`` marks that crop, so the
metrics count it alone (fastMRI's convention), and the written ``reconstruction`` is cropped to it
(to at most 320 x 320 without a reference).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from operators import BooleanMask, Measurement, kspace_column_mask
from operators.coils import CoilFourier
from recon.errors import InputError
from recon.io.fastmri import RawFile, centre_box, kspace_to_magnitude, read_kspace
from recon.io.volume import Volume
from recon.tasks import kspace as ks
from recon.tasks.base import Problem, Scan, Task, add_noise_to_slices
from recon.units import robust_scale

ACCEL_TOLERANCE = 0.1
"""Largest relative difference between ``--accel`` and the acceleration of a file's own mask."""
FASTMRI_CROP = 320
"""The side of fastMRI's reference crops: the written crop when a file has no reference."""
PRIOR_NOTES = {"demodulated": "prior on real/imaginary parts, centre phase removed",
               "magnitude": "prior on the magnitude, centre phase", "parts": "prior on real/imaginary parts"}
COMPLEX_PRIORS = tuple(PRIOR_NOTES)


def _metrics_note(crop: tuple[int, int]) -> str:
    return (f"on the centre {crop[0]}x{crop[1]} crop of the reference: fastmri_psnr/fastmri_ssim with fastMRI's data "
            "range (the reference's maximum), no clipping; psnr/ssim with data range 1 on model units, output "
            "clipped to [0, 1]")


def column_mask(task: Task, raw: RawFile, source: Path) -> tuple[np.ndarray, str]:
    """The measured columns (W,) and their description: the file's own mask (checked against an explicit
    ``--accel``), else the task's mask for the k-space width."""
    width = raw.kspace.shape[-1]
    if raw.mask is not None:
        rate, count = ks.acceleration(raw.mask), int(raw.mask.sum())
        if task.accel_given and abs(rate - task.accel) > ACCEL_TOLERANCE * task.accel:
            raise InputError(f"{source}: --accel {task.accel:g} disagrees with the file's mask ({rate:.2f}x: {count} "
                             f"of {width} columns measured)")
        return raw.mask, f"the file's mask ({rate:.2f}x, {count}/{width} columns)"
    if not task.accel >= 1:
        raise InputError(f"--accel must be >= 1, got {task.accel}")
    columns = kspace_column_mask(width, task.accel, task.center_fraction, task.mask, task.mask_seed).mask
    return columns.view(-1).numpy(), f"{task.accel:g}x {task.mask} mask, centre {task.centre:g}"


def read_raw(task: Task, source: Path) -> "RawKspaceScan":
    """The :class:`RawKspaceScan` of a fastMRI file, checked before any work (InputError)."""
    if task.complex_prior not in COMPLEX_PRIORS:
        raise InputError(f"--complex-prior must be one of {', '.join(COMPLEX_PRIORS)}, got {task.complex_prior!r}")
    raw = read_kspace(source)
    if not np.isfinite(raw.kspace).all():
        raise InputError(f"{source}: 'kspace' contains NaN or Inf values")
    if raw.kspace.shape[-1] < 8:
        raise InputError(f"{source}: k-space {raw.kspace.shape} has fewer than 8 columns")
    columns, described = column_mask(task, raw, source)
    if raw.kspace.shape[1] > 1 or task.complex_prior != "parts":
        ks.check_centre(columns, str(source), raw.kspace.shape[1])
    kspace = ks.square_readout(raw.kspace) * columns  # (S, C, N, N), unmeasured columns zero
    zero_filled, scale = robust_scale(kspace_to_magnitude(kspace))
    side = kspace.shape[-1]
    reference, crop = None, (min(FASTMRI_CROP, side),) * 2
    if raw.reference is not None:
        crop = tuple(int(n) for n in raw.reference.shape[-2:])
        if max(crop) > side:
            raise InputError(f"{source}: the reference {crop[0]}x{crop[1]} is larger than the {side}x{side} image "
                             "of the k-space")
        reference = torch.zeros(kspace.shape[0], 1, side, side)
        reference[(slice(None), 0, *centre_box((side, side), crop))] = torch.from_numpy(raw.reference / scale).float()
    coils = kspace.shape[1]
    measurement = (f"MRI raw k-space ({coils} coil{'s, ESPIRiT maps' if coils > 1 else ''}), {described}, "
                   f"{PRIOR_NOTES[task.complex_prior]}")
    meta = {"attrs": raw.attrs, "reference": raw.reference_key, "coils": coils, "measured": "k-space",
            "files": [source], "square": None, "crop": crop, "pixel_spacing_mm": raw.spacing}
    volume = Volume(data=zero_filled.astype(np.float32), modality="mri", source=source, format="fastmri",
                    scale=float(scale), meta=meta)
    return RawKspaceScan(task, volume, kspace / scale, columns, reference, measurement)


def magnitude(transform: CoilFourier, x: torch.Tensor) -> torch.Tensor:
    """The magnitude (B, 1, N, N) that images x (B, 1 | 2, N, N) give: |z| without a known phase; with one,
    the part of z in phase with it, Re(e^{-i phase} z) = x_0, at least 0 (as homodyne detection; the
    quadrature part x_1 holds what the phase misses, and its noise would bias |z| upwards)."""
    return transform.image(x).abs() if transform.phase is None else x[:, :1].clamp(min=0)


class RawKspaceScan(Scan):
    """A fastMRI file's measured k-space (see the module notes).

    Args:
        task: the :class:`recon.tasks.UndersampledMRI` run (``complex_prior``, ``noise``).
        volume: what the writer needs, ``data`` the zero-filled magnitude (S, N, N) in model units.
        kspace: (S, C, N, N) complex64 measured k-space in model units, zero where unmeasured.
        columns: (N,) bool measured columns.
        reference: (S, 1, N, N) the file's reference in model units at the centre of the grid, or None.
        measurement: one line describing the measurement (coils, mask, how the prior meets the phase).
    """

    def __init__(self, task: Task, volume: Volume, kspace: np.ndarray, columns: np.ndarray,
                 reference: torch.Tensor | None, measurement: str):
        self.task, self.volume, self.kspace, self.columns, self.reference = task, volume, kspace, columns, reference
        self.measurement = measurement

    def reference_slices(self, start: int, stop: int) -> torch.Tensor | None:
        return None if self.reference is None else self.reference[start:stop]

    def describe(self) -> str:
        return self.measurement

    @property
    def metrics_note(self) -> str:
        return _metrics_note(self.volume.meta["crop"])

    def problem(self, start: int, stop: int, size: int, seed: int, device: torch.device) -> Problem:
        from recon.resample import resize

        kspace = ks.resize_kspace(self.kspace[start:stop], size)
        columns = ks.resize_columns(self.columns, size)
        transform = self.transform(kspace, columns, device)
        mask = BooleanMask(torch.from_numpy(columns).view(1, 1, 1, size).to(device))
        y = mask.select(torch.from_numpy(kspace).to(device))
        if self.task.noise > 0:
            y = add_noise_to_slices(Measurement(transform, mask, self.task.noise), y, seed)
        noise = max(ks.noise_std(y.cpu().numpy(), columns), np.finfo(np.float32).tiny)  # never noiseless
        measurement = Measurement(transform, mask, noise)
        reference, keep = None, None
        if self.reference is not None:
            part = self.reference[start:stop]
            reference = (part if size == self.side else resize(part, size)).to(device)
            crop = tuple(round(n * size / self.side) for n in self.volume.meta["crop"])
            keep = torch.zeros(stop - start, 1, size, size, dtype=torch.bool, device=device)
            keep[(slice(None), slice(None), *centre_box((size, size), crop))] = True
        return Problem(measurement, y, reference, keep, finish=lambda x: magnitude(transform, x),
                       holdout=self.task.holdout_layout(size))

    def transform(self, kspace: np.ndarray, columns: np.ndarray, device: torch.device) -> CoilFourier:
        """T = F S e^{i phi} for a batch of k-space (B, C, n, n): ESPIRiT maps (ones for one coil) and, unless
        ``complex_prior`` is "parts", phi the phase of each slice's low-resolution centre image."""
        centre = ks.centre_width(columns)
        n = kspace.shape[-1]
        if kspace.shape[1] == 1:
            maps = np.ones((kspace.shape[0], 1, n, n), dtype=np.complex64)
        else:
            maps = np.stack([ks.espirit_maps(k, centre) for k in kspace])
        phase = None
        if self.task.complex_prior != "parts":
            phase = np.stack([np.angle(ks.centre_image(k, m, centre)) for k, m in zip(kspace, maps)])[:, None]
            phase = torch.from_numpy(phase.astype(np.float32)).to(device)
        return CoilFourier(torch.from_numpy(maps).to(device), phase, parts=self.task.complex_prior != "magnitude")
