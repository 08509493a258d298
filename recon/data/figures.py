"""The README's data pictures: ``python -m recon.data.figures docs/images``.

* ``ct_phantoms.png``: eight thorax phantoms (128 px) beside the real AAPM
  slice (resized to 128 px), soft-tissue and lung windows;
* ``mri_slices.png``: augmented training slices and the held-out
  validation/test slices of the MNI152 template.

The real slice is read from ``$RECON_REAL_CT`` or the project's shared data
folder; without it the first tile is left out.
"""
from __future__ import annotations

import os
import sys
from itertools import islice
from pathlib import Path

import numpy as np

from recon.data.mri_slices import mri_slices
from recon.data.phantom_ct import thorax_phantom
from recon.io.atomic import atomic_path
from recon.io.preview import to_display
from recon.units import hu_to_model

REAL_CT = Path(os.environ.get("RECON_REAL_CT", "/work/shared/data/real/aapm_ldct_L506_000.tif"))
SIZE = 128
AAPM_RESCALE = (2000.0, 976.0)
"""HU = 2000 v + 976 for the AAPM slice's values v in [-1, 1] (its README: HU ~ (v + 1) / 2 * 4000 - 1024);
``recon ct --rescale 2000 976`` reads the file the same way."""


def real_ct_slice(path: Path = REAL_CT, size: int = SIZE) -> np.ndarray | None:
    """The AAPM L506 slice in approximate HU (:data:`AAPM_RESCALE`), resized to ``size``, or None if absent."""
    if not path.exists():
        return None
    import tifffile
    from skimage.transform import resize

    values = tifffile.imread(path).astype(np.float64)
    slope, intercept = AAPM_RESCALE
    return resize(slope * values + intercept, (size, size), anti_aliasing=True)


def _save(fig, path: Path) -> None:
    with atomic_path(path) as temp:
        fig.savefig(temp, format="png", dpi=100, bbox_inches="tight", facecolor="black")


def ct_figure(path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    real = real_ct_slice()
    tiles = ([("real: AAPM L506", real)] if real is not None else []) + \
            [(f"phantom seed {seed}", thorax_phantom(SIZE, seed)) for seed in range(8)]
    fig, axes = plt.subplots(2, len(tiles), figsize=(1.6 * len(tiles), 3.45))
    for col, (title, hu) in enumerate(tiles):
        for row, window in enumerate(("soft-tissue", "lung")):
            ax = axes[row, col]
            ax.imshow(to_display(hu_to_model(hu), "ct", window), cmap="gray", vmin=0, vmax=1)
            ax.set_xticks([]), ax.set_yticks([])
            if row == 0:
                ax.set_title(title, color="white", fontsize=9)
            if col == 0:
                ax.set_ylabel(window, color="white", fontsize=9)
    fig.subplots_adjust(wspace=0.03, hspace=0.03)
    _save(fig, path)
    plt.close(fig)
    return path


def mri_figure(path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [("train (augmented)", list(islice(mri_slices("train", SIZE, seed=0, augment=True), 8))),
            ("val (held out)", list(mri_slices("val", SIZE, seed=0, augment=False))[:8]),
            ("test (held out)", list(mri_slices("test", SIZE, seed=0, augment=False))[:8])]
    fig, axes = plt.subplots(len(rows), 8, figsize=(12.8, 1.65 * len(rows)))
    for r, (label, images) in enumerate(rows):
        for c, image in enumerate(images):
            ax = axes[r, c]
            ax.imshow(np.clip(image, 0, 1), cmap="gray", vmin=0, vmax=1)
            ax.set_xticks([]), ax.set_yticks([])
        axes[r, 0].set_ylabel(label, color="white", fontsize=9)
    fig.subplots_adjust(wspace=0.03, hspace=0.03)
    _save(fig, path)
    plt.close(fig)
    return path


def main(argv: list[str] | None = None) -> int:
    out = Path((argv if argv is not None else sys.argv[1:] or ["docs/images"])[0])
    out.mkdir(parents=True, exist_ok=True)
    for written in (ct_figure(out / "ct_phantoms.png"), mri_figure(out / "mri_slices.png")):
        print(f"wrote {written}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
