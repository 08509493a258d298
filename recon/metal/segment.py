"""Metal segmentation of CT images by a Hounsfield threshold."""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F


def segment_metal(image_hu: np.ndarray | torch.Tensor, threshold_hu: float = 3000.0,
                  dilate: int = 1) -> np.ndarray | torch.Tensor:
    """Boolean metal mask: pixels above ``threshold_hu``, grown by ``dilate`` pixels.

    Args:
        image_hu: (H, W) or (B, 1, H, W) image in HU (numpy or torch).
        threshold_hu: metal threshold (3000 HU by default; the paper's code
            used 3300 HU on real scans).
        dilate: 3x3 dilation steps (the partial-volume rim around the metal).
    Returns:
        a mask of the input's shape and kind (numpy bool array or bool tensor).
    """
    if dilate < 0:
        raise ValueError(f"dilate must be >= 0, got {dilate}")
    is_numpy = not isinstance(image_hu, torch.Tensor)
    image = torch.from_numpy(np.asarray(image_hu, dtype=np.float32)) if is_numpy else image_hu
    shape = image.shape
    if image.dim() == 2:
        image = image[None, None]
    if image.dim() != 4 or image.shape[1] != 1:
        raise ValueError(f"expected an (H, W) or (B, 1, H, W) image, got shape {tuple(shape)}")
    mask = (image > threshold_hu).float()
    if dilate:
        mask = F.max_pool2d(mask, kernel_size=2 * dilate + 1, stride=1, padding=dilate)
    mask = mask.bool().reshape(shape)
    return mask.numpy() if is_numpy else mask
