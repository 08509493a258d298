"""What every task is: a measurement process that turns images, or a measured file, into a problem.

A :class:`Task` is a frozen dataclass of the settings that define its measurement (views, acceleration,
metal threshold ...). It is the only place that builds a measurement A and measurements y:
the reconstruction verbs, ``recon tune``, ``recon bench``, the supervised training and the benchmark
scripts all ask a task for its :class:`Problem`.

A run reads its input through the task (:meth:`Task.read`), which returns a :class:`Scan`: the slices'
problems at any reconstruction size plus what the writers need. Image inputs give a :class:`SimulatedScan`
(the measurement simulated from each slice, the slice its reference); tasks on measured data (a sinogram
with its geometry, raw k-space) override :meth:`Task.read` and return their own :class:`Scan`.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, ClassVar, Iterable

import numpy as np
import torch

from operators import BooleanMask, Measurement, Radon

if TYPE_CHECKING:
    from recon.io.reading import ReadOptions

METRICS_NOTE = "PSNR/SSIM: data range 1 on model units, whole image, output clipped to [0, 1]"


SINOGRAM_VIEWS = (-2, 0)
"""The held-out layout of CT measurements: sinogram views (axis -2 of T's output), none protected."""


@dataclass
class Problem:
    """One slice batch's inverse problem.

    Attributes:
        measurement: A = P(Lambda) T for the batch.
        y: the measurements, as ``measurement.measure`` returns them.
        reference: (B, 1, N, N) ground truth in model units when the measurement was simulated from it;
            None for a real measured scan.
        keep: (B, 1, N, N) bool, the pixels PSNR/SSIM count (None: all).
        finish: post-processing of reconstructions (B, 1, N, N) -> (B, 1, N, N), applied to every
            method's output before it is written or scored (e.g. metal reinsertion).
        holdout: (axis of T's output along which measured lines may be held out, lines never held out):
            sinogram views (-2, 0) by default; k-space columns outside the fully sampled centre for MRI.
        settled: (B,) bool, slices with nothing to reconstruct, which ``finish`` returns as they are whatever the
            method gives (a measured MAR slice without metal); runs may skip them (None: none).
    """

    measurement: Measurement
    y: torch.Tensor
    reference: torch.Tensor | None
    keep: torch.Tensor | None = None
    finish: Callable[[torch.Tensor], torch.Tensor] | None = None
    holdout: tuple[int, int] = SINOGRAM_VIEWS
    settled: torch.Tensor | None = None

    def finished(self, images: torch.Tensor) -> torch.Tensor:
        """``images`` after the task's post-processing."""
        return images if self.finish is None else self.finish(images)

    def unsettled(self) -> tuple[torch.Tensor | None, "Problem"]:
        """(index of the slices to reconstruct, or None for all; the problem of those slices alone, without
        ``finish``). The transform must be shared by the batch (CT); a per-image mask is cut to the slices."""
        if self.settled is None or not self.settled.any():
            return None, self
        index = torch.nonzero(~self.settled.to(self.y.device)).flatten()
        sampling = self.measurement.sampling
        if isinstance(sampling, BooleanMask) and sampling.mask.shape[0] > 1:
            sampling = BooleanMask(sampling.mask[index.to(sampling.mask.device)])
        part = Measurement(self.measurement.transform, sampling, self.measurement.noise_std)

        def pick(t: torch.Tensor | None) -> torch.Tensor | None:
            return None if t is None else t[index.to(t.device)]

        return index, Problem(part, self.y[index], pick(self.reference), pick(self.keep), None, self.holdout)


@dataclass(frozen=True)
class Task:
    """A measurement process; subclasses add their settings as dataclass fields.

    Class attributes:
        name: the task's key in results and tuned profiles ("ct-sparse-view", "mri", ...).
        modality: "ct" or "mri": the prior it needs and the display window.
        baseline: the classical method shown beside every result.
        methods: the classical methods that make sense for it.
        profile: the key of the prior's tuned sampler options the task uses (default: ``name``).
        metrics_note: how PSNR/SSIM are computed, for ``metrics.json``.
    """

    name: ClassVar[str]
    modality: ClassVar[str]
    baseline: ClassVar[str]
    methods: ClassVar[tuple[str, ...]]
    profile: ClassVar[str | None] = None
    metrics_note: ClassVar[str] = METRICS_NOTE

    @property
    def defaults_key(self) -> str:
        """The key of the prior's tuned sampler options for this task."""
        return self.profile or self.name

    def measurement(self, size: int) -> Measurement:
        """A for (B, 1, size, size) images."""
        raise NotImplementedError

    def describe(self) -> str:
        """One line describing the measurement, for outputs."""
        raise NotImplementedError

    @property
    def label(self) -> str:
        """A short name of the setting for tables ("23 views", "8x", "metal")."""
        raise NotImplementedError

    @property
    def setting(self) -> float:
        """The number a benchmark sweeps (views, acceleration, arc; 0 when there is none)."""
        raise NotImplementedError

    def check(self, chunks: Iterable[torch.Tensor], source: str) -> None:
        """Validate a whole input, given in order as chunks (B, 1, H, W) in model units, before any work;
        raise InputError. Reading the chunks decodes and checks every slice, so it consumes them all."""
        for _ in chunks:
            pass

    def read(self, source: Path, reading: "ReadOptions | None" = None) -> "Scan":
        """The run's input as a :class:`Scan`, checked before any work (InputError names the problem).

        Image tasks read an image volume (``reading``: :class:`recon.io.ReadOptions`, None: its defaults; a CT
        DICOM series lazily, so that only the slices being reconstructed are held) and simulate their
        measurement from it; measured-data tasks override this.
        """
        from recon import io
        from recon.io.lazy_stack import chunks_of

        reading = reading or io.ReadOptions()
        images = io.read_volume(source, modality=self.modality, lazy=True, **dataclasses.asdict(reading))
        self.check((torch.from_numpy(chunk).unsqueeze(1) for chunk in chunks_of(images.data)), str(source))
        return SimulatedScan(self, images)

    def problem(self, x: torch.Tensor, seed: int) -> Problem:
        """The problem of images x (B, 1, N, N): y = A x, plus noise for slice i drawn with ``seed + i`` when
        the task has any (so a slice's data do not depend on the batch it is in)."""
        measurement = self.measurement(x.shape[-1])
        return Problem(measurement, measure_slices(measurement, x, seed), reference=x,
                       holdout=self.holdout_layout(x.shape[-1]))

    def holdout_layout(self, size: int) -> tuple[int, int]:
        """(axis of the measured lines, lines never held out) for ground-truth-free tuning: sinogram views."""
        return SINOGRAM_VIEWS

    def record(self) -> dict[str, Any]:
        """The task and its settings as JSON values."""
        return {"task": self.name, **dataclasses.asdict(self)}


class Scan:
    """A run's input: the problems of its slices, and the record the writers need.

    Attributes:
        task: the task that read it.
        volume: a :class:`recon.io.Volume` saying how results are written (format, real units, grid);
            its ``data`` (S, side, side) is the input image in model units (zeros for measured data, whose
            ``meta["measured"]`` names what was measured).
    """

    task: Task
    volume: Any

    def describe(self) -> str:
        """One line describing the measurement, for outputs (the task's; measured data may say more)."""
        return self.task.describe()

    @property
    def metrics_note(self) -> str:
        """How PSNR/SSIM against the reference are computed, for ``metrics.json``."""
        return self.task.metrics_note

    @property
    def n_slices(self) -> int:
        return int(self.volume.data.shape[0])

    @property
    def side(self) -> int:
        """The side of the native reconstruction grid (what is written)."""
        return int(self.volume.data.shape[-1])

    def reference_slices(self, start: int, stop: int) -> torch.Tensor | None:
        """Slices ``start:stop`` (B, 1, side, side) of the ground truth in model units, or None (measured
        data without one)."""
        return None

    def problem(self, start: int, stop: int, size: int, seed: int, device: torch.device) -> Problem:
        """The problem of slices ``start:stop`` reconstructed on a ``size`` grid (the native ``side`` or the
        prior's), on ``device``; simulated noise seeded by ``seed`` (see :meth:`Task.problem`)."""
        raise NotImplementedError


class SimulatedScan(Scan):
    """Image slices whose measurement ``task`` simulates (the images are the reference), read from the
    volume as each batch needs them."""

    def __init__(self, task: Task, volume):
        self.task, self.volume = task, volume

    def reference_slices(self, start: int, stop: int) -> torch.Tensor:
        return torch.from_numpy(np.asarray(self.volume.data[start:stop], dtype=np.float32)).unsqueeze(1)

    def problem(self, start: int, stop: int, size: int, seed: int, device: torch.device) -> Problem:
        from recon.resample import resize

        x = self.reference_slices(start, stop)
        return self.task.problem((x if size == self.side else resize(x, size)).to(device), seed)


def measure_slices(measurement: Measurement, x: torch.Tensor, seed: int) -> torch.Tensor:
    """y = A x (+ noise, slice i's from a generator seeded ``seed + i``) for images x (B, 1, N, N)."""
    if measurement.noise_std == 0:
        return measurement.measure(x)
    return torch.cat([measurement.measure(x[i:i + 1], _slice_generator(x.device, seed + i))
                      for i in range(x.shape[0])])


def add_noise_to_slices(measurement: Measurement, y: torch.Tensor, seed: int) -> torch.Tensor:
    """Measurements y (B, ...) plus ``measurement``'s noise, slice i's from a generator seeded ``seed + i``."""
    return torch.cat([measurement.add_noise(y[i:i + 1], _slice_generator(y.device, seed + i))
                      for i in range(y.shape[0])])


def _slice_generator(device: torch.device, seed: int) -> torch.Generator:
    return torch.Generator(device=device).manual_seed(seed)


@lru_cache(maxsize=16)
def radon(size: int, n_angles: int = 0, window: str = "ram-lak") -> Radon:
    """The parallel-beam Radon transform, built once per geometry (its system matrix is loaded once)."""
    return Radon(size, n_angles, window=window)
