"""Every method a run can name besides the score prior: the classical baselines and the supervised networks.

Each has the signature ``fn(measurement, y, **params) -> (B, 1, N, N)`` real images in model units
(see :mod:`recon.baselines`).
"""
from __future__ import annotations

from typing import Callable

import torch

from recon.baselines import CLASSICAL
from recon.supervised.baseline import fbpconvnet, unet_mri

BASELINES: dict[str, Callable[..., torch.Tensor]] = {**CLASSICAL, "fbpconvnet": fbpconvnet, "unet-mri": unet_mri}
