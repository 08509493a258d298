"""The PNG panel every reconstruction writes: reference | baseline | method | |error| [| std]."""
from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from recon.io import atomic_path  # noqa: E402

# Display windows in model units: CT soft tissue (W 400, L 40 HU) and MRI [0, 1].
CT_WINDOW = ((40 - 200 + 1000) / 4000, (40 + 200 + 1000) / 4000)
MRI_WINDOW = (0.0, 1.0)


def save_panel(path: Path, images: dict[str, np.ndarray], modality: str,
               error: np.ndarray | None = None, std: np.ndarray | None = None,
               unit: tuple[float, str] = (1.0, ""), title: str = "") -> Path:
    """Write a row of 2-D images (model units) with a shared window, then optional |error| and std maps (model
    units) with their own colour bars, shown times ``unit`` = (real units per model unit, their name: 4000 and
    "HU" for CT); atomic write."""
    lo, hi = CT_WINDOW if modality == "ct" else MRI_WINDOW
    panels = list(images.items())
    scale, name = unit
    suffix = f" {name}" if name else ""
    extra = [(label + suffix, img * scale) for label, img in (("|error|", error), ("std", std)) if img is not None]
    n = len(panels) + len(extra)
    fig, axes = plt.subplots(1, n, figsize=(3.2 * n, 3.6), squeeze=False)
    for ax, (name, img) in zip(axes[0], panels):
        ax.imshow(img, cmap="gray", vmin=lo, vmax=hi)
        ax.set_title(name, fontsize=9)
    for ax, (name, img) in zip(axes[0][len(panels):], extra):
        shown = ax.imshow(img, cmap="magma")
        fig.colorbar(shown, ax=ax, fraction=0.046, pad=0.02)
        ax.set_title(name, fontsize=9)
    for ax in axes[0]:
        ax.axis("off")
    if title:
        fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    plt.close(fig)
    return Path(path)
