"""MR-like slices with randomised contrast, anatomy and acquisition (domain randomisation).

A prior trained on one template's T1 contrast pulls every MR image towards it: real EPI brains (bright CSF,
grey matter brighter than white, a small head in a large field of view, blur) and body slices lost to
CS-TV on the real validation slices (benchmarks/RESULTS.md). This generator keeps the template's anatomy
and the CT phantoms' bodies and randomises what an MR scanner makes of them:

* **brain** (even items): a slice of :mod:`recon.data.mri_slices`' split, geometrically augmented as there,
  its T1 intensity mapped through a random piecewise-linear curve with knots at the template's CSF, grey
  and white matter levels (:data:`BRAIN_KNOTS`): T1-, T2-, PD-like and arbitrary contrasts, partial volume
  kept; zoomed out to a field of view up to twice the head (:data:`ZOOM`);
* **body** (odd items): a :func:`recon.data.phantom_ct.thorax_phantom` (chest or upper abdomen, its own
  seeds per split), its HU mapped through a random curve with knots at air, lung, fat, water, soft tissue,
  contrast and bone (:data:`BODY_KNOTS`); air stays dark;
* then, for both: a Gaussian blur (0-1.2 px), a smooth multiplicative bias field, and Rician noise in
  half of the slices; divided by the robust maximum (model units, as every MR slice).

Splits follow the sources: brain items draw from the template slices of their split (val / test are the
held-out axial blocks), body items from the phantom seeds of their split.
"""
from __future__ import annotations

import numpy as np
from scipy import ndimage

from recon.data.mri_slices import augment_slice, base_slices, smooth_field
from recon.data.mri_slices import field_of_view_mm as brain_field_of_view
from recon.data.phantom_ct import thorax_phantom
from recon.data.phantom_geometry import FOV_MM
from recon.units import robust_scale

MRI_VARIED_VERSION = 1
BRAIN_KNOTS = (0.0, 0.08, 0.25, 0.62, 0.82, 1.0)
"""T1 template levels: background, the brain's edge, CSF, grey matter, white matter, the brightest."""
BODY_KNOTS = (-1000.0, -800.0, -400.0, -100.0, 0.0, 50.0, 200.0, 700.0, 1500.0)
"""HU levels: air, lung, dense lung, fat, water, soft tissue, contrast / cancellous bone, cortical bone."""
ZOOM = (0.5, 1.05)
"""Brain slices are scaled by a factor in this range (below 1: a larger field of view)."""


def field_of_view_mm() -> tuple[float, float]:
    """(smallest, largest) side in mm of what a slice shows: the zoomed brains and the bodies' FOV_MM."""
    low, high = brain_field_of_view(ZOOM)
    return min(low, FOV_MM), max(high, FOV_MM)


def _random_curve(rng: np.random.Generator, n_knots: int, dark_first: int) -> np.ndarray:
    """Values at the knots: the first ``dark_first`` near 0 (air, background), the rest uniform in [0.05, 1]."""
    values = rng.uniform(0.05, 1.0, n_knots)
    values[:dark_first] = rng.uniform(0.0, 0.03, dark_first)
    return values


def _zoom(image: np.ndarray, factor: float, rng: np.random.Generator) -> np.ndarray:
    """``image`` scaled by ``factor`` about the centre (plus a small shift), same shape, zero outside."""
    n = image.shape[0]
    shift = rng.uniform(-0.05, 0.05, 2) * n
    centre = (n - 1) / 2
    rows, cols = np.mgrid[0:n, 0:n].astype(np.float64)
    src = [(rows - centre - shift[0]) / factor + centre, (cols - centre - shift[1]) / factor + centre]
    return ndimage.map_coordinates(image, src, order=1, mode="constant")


def _acquisition(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Blur, bias field and (in half the slices) Rician noise on a slice scaled to [0, ~1]."""
    n = image.shape[0]
    x = ndimage.gaussian_filter(image, rng.uniform(0.0, 1.2))
    x = x * np.exp(rng.uniform(0.05, 0.3) * smooth_field(rng, n, n / 4))
    if rng.random() < 0.5:
        sigma = rng.uniform(0.003, 0.02) * max(float(x.max()), 1e-6)
        x = np.hypot(x + sigma * rng.standard_normal(x.shape), sigma * rng.standard_normal(x.shape))
    return x


def brain_slice(split: str, size: int, seed: int) -> np.ndarray:
    """One randomised-contrast brain slice of ``split`` (size, size) float32, model units."""
    rng = np.random.default_rng(seed)
    base = base_slices(split, size)
    t1 = augment_slice(base[rng.integers(len(base))], rng)
    t1 = t1 / max(float(np.percentile(t1[t1 > 0.05], 99.5)) if (t1 > 0.05).any() else 1.0, 1e-6)
    image = np.interp(t1, BRAIN_KNOTS, _random_curve(rng, len(BRAIN_KNOTS), 2))
    image = _zoom(image, rng.uniform(*ZOOM), rng)
    return robust_scale(_acquisition(image, rng))[0].astype(np.float32)


def body_slice(size: int, seed: int) -> np.ndarray:
    """One MR-like body slice (size, size) float32 from the thorax phantom of ``seed``, model units."""
    rng = np.random.default_rng(seed)
    hu = thorax_phantom(size, int(rng.integers(2 ** 63)))
    image = np.interp(hu, BODY_KNOTS, _random_curve(rng, len(BODY_KNOTS), 1))
    return robust_scale(_acquisition(image, rng))[0].astype(np.float32)


def varied_slice(split: str, size: int, seed: int, index: int) -> np.ndarray:
    """Item ``index`` of a varied MR set: a brain slice for even ``index``, a body slice for odd."""
    return brain_slice(split, size, seed) if index % 2 == 0 else body_slice(size, seed)
