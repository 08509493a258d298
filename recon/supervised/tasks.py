"""The two supervised tasks: which measurement makes the network's input, and how.

* ``ct-sparse-view``: ``n_views`` of ``size`` parallel-beam views
  (:func:`operators.sparse_view_ct`, ram-lak window), input = sparse-view
  FBP (:func:`recon.baselines.fbp`);
* ``mri``: equispaced Cartesian columns at acceleration ``accel`` with the
  project's default centre fraction and mask seed 0
  (:func:`operators.undersampled_mri`), input = real part of the zero-filled
  inverse FFT (:func:`recon.baselines.zero_filled`).

Measurements are noiseless. Images are (B, 1, N, N) in model units.
"""
from __future__ import annotations

from typing import Any

import torch

from operators import Fourier, Measurement, Radon, default_center_fraction, sparse_view_ct, undersampled_mri
from recon.errors import InputError

TASKS = ("ct-sparse-view", "mri")
MODALITY = {"ct-sparse-view": "ct", "mri": "mri"}
MRI_MASK_SEED = 0
CT_WINDOW = "ram-lak"


def measurement_params(task: str, size: int, n_views: int | None = None, accel: float | None = None) -> dict[str, Any]:
    """The JSON record of a task's measurement, checked; what :func:`task_measurement` rebuilds."""
    if task == "ct-sparse-view":
        if n_views is None or not 1 <= n_views <= size:
            raise InputError(f"--views: give a view count between 1 and the image size {size}, got {n_views}")
        return {"task": task, "size": size, "n_views": int(n_views), "n_angles": size, "window": CT_WINDOW}
    if task == "mri":
        if accel is None or not accel >= 1:
            raise InputError(f"--accel: give an acceleration >= 1, got {accel}")
        return {"task": task, "size": size, "accel": float(accel), "kind": "equispaced",
                "center_fraction": default_center_fraction(accel), "mask_seed": MRI_MASK_SEED}
    raise InputError(f"--task {task!r}: choose one of {', '.join(TASKS)}")


def task_measurement(params: dict[str, Any]) -> Measurement:
    """The :class:`operators.Measurement` a :func:`measurement_params` record describes."""
    if params["task"] == "ct-sparse-view":
        return sparse_view_ct(params["size"], params["n_views"], params["n_angles"], window=params["window"])
    return undersampled_mri(params["size"], params["accel"], params["center_fraction"], params["kind"],
                            params["mask_seed"])


def direct_reconstruction(measurement: Measurement, y: torch.Tensor) -> torch.Tensor:
    """The network's input for measurements y: FBP (CT) or real zero-filled (MRI), (B, 1, N, N)."""
    # Imported here: recon.baselines lists this package's networks, so a top-level import would be circular.
    from recon.baselines.direct import fbp, zero_filled

    if isinstance(measurement.transform, Radon):
        return fbp(measurement, y)
    if isinstance(measurement.transform, Fourier):
        return zero_filled(measurement, y)
    raise ValueError(f"no direct reconstruction for a {type(measurement.transform).__name__} measurement")


def network_input(measurement: Measurement, x: torch.Tensor) -> torch.Tensor:
    """Simulate noiseless measurements of images x (B, 1, N, N) and reconstruct them directly."""
    return direct_reconstruction(measurement, measurement.A(x))
