"""Resampling slices to a prior's grid and back (``--resample``)."""
from __future__ import annotations

import torch


def resize(images: torch.Tensor, size: int) -> torch.Tensor:
    """(B, C, H, W) -> (B, C, size, size), bilinear (antialiased when shrinking)."""
    return torch.nn.functional.interpolate(images, size=(size, size), mode="bilinear", align_corners=False,
                                           antialias=images.shape[-1] > size)
