"""The supervised networks' tasks: which measurement makes a network's input, and how.

A network is trained for one task at one setting with noiseless measurements; its metadata records the
task (:meth:`recon.tasks.Task.record`) and the image size, and :func:`task_of` rebuilds it:

* ``ct-sparse-view``: ``projections`` of the full parallel-beam views, input = sparse-view FBP
  (ram-lak window, :func:`recon.baselines.fbp`);
* ``mri``: equispaced Cartesian columns at ``accel`` with the project's default centre fraction and mask
  seed 0, input = real part of the zero-filled inverse FFT (:func:`recon.baselines.zero_filled`).

Images are (B, 1, N, N) in model units.
"""
from __future__ import annotations

from typing import Any

import torch

from operators import CTTransform, Fourier, Measurement
from recon.baselines.direct import fbp, zero_filled
from recon.errors import InputError
from recon.tasks import SparseViewCT, Task, UndersampledMRI, task_from_record

TASKS = ("ct-sparse-view", "mri")


def training_task(task: str, size: int, n_views: int | None = None, accel: float | None = None) -> Task:
    """The task a network is trained for, checked against the image size."""
    if task == "ct-sparse-view":
        if n_views is None or not 1 <= n_views <= size:
            raise InputError(f"--views: give a view count between 1 and the image size {size}, got {n_views}")
        return SparseViewCT(projections=int(n_views))
    if task == "mri":
        if accel is None or not accel >= 1:
            raise InputError(f"--accel: give an acceleration >= 1, got {accel}")
        return UndersampledMRI(accel=float(accel))
    raise InputError(f"--task {task!r}: choose one of {', '.join(TASKS)}")


def task_record(task: Task, size: int) -> dict[str, Any]:
    """The JSON record of a network's task and image size (what :func:`task_of` reads back)."""
    return {**task.record(), "size": size}


def task_of(record: dict[str, Any]) -> tuple[Task, int]:
    """The task and image size of a :func:`task_record`."""
    return task_from_record({k: v for k, v in record.items() if k != "size"}), int(record["size"])


def direct_reconstruction(measurement: Measurement, y: torch.Tensor) -> torch.Tensor:
    """The network's input for measurements y: FBP (CT) or real zero-filled (MRI), (B, 1, N, N)."""
    if isinstance(measurement.transform, CTTransform):
        return fbp(measurement, y)
    if isinstance(measurement.transform, Fourier):
        return zero_filled(measurement, y)
    raise ValueError(f"no direct reconstruction for a {type(measurement.transform).__name__} measurement")


def network_input(measurement: Measurement, x: torch.Tensor) -> torch.Tensor:
    """Simulate noiseless measurements of images x (B, 1, N, N) and reconstruct them directly."""
    return direct_reconstruction(measurement, measurement.A(x))
