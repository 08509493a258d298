"""Resampling slices to a prior's grid and back (``--resample``), and to a dataset's grid."""
from __future__ import annotations

import torch


def resize(images: torch.Tensor, size: int) -> torch.Tensor:
    """(B, C, H, W) -> (B, C, size, size), bilinear (antialiased when shrinking)."""
    return torch.nn.functional.interpolate(images, size=(size, size), mode="bilinear", align_corners=False,
                                           antialias=images.shape[-1] > size)


def resize_to(images: torch.Tensor, shape: tuple[int, int]) -> torch.Tensor:
    """(B, C, H, W) -> (B, C, *shape), bilinear (antialiased when either side shrinks), as :func:`resize`."""
    shrink = images.shape[-2] > shape[0] or images.shape[-1] > shape[1]
    return torch.nn.functional.interpolate(images, size=tuple(shape), mode="bilinear", align_corners=False,
                                           antialias=shrink)


def resize_mask(mask: torch.Tensor, size: int) -> torch.Tensor:
    """A boolean pixel mask (B, C, H, W) on a (size, size) grid: the pixels the resized mask covers fully,
    so those next to an excluded pixel are left out as well."""
    return resize(mask.float(), size) > 0.999
