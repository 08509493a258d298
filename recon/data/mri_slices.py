"""Brain MR slices from the MNI152 T1 template that nilearn ships (no download).

The template (``nilearn.datasets.load_mni152_template(resolution=1)``:
MNI152 2009 T1, 1 mm, 197 x 233 x 189, skull-stripped) is cut into axial
slices (index k along the inferior-superior axis, MNI z = k - 72 mm),
anterior up, cut to a square around the brain with a 1 cm margin and
resized to ``size``.

Splits (a held-out block of axial slices, never used for training):

* ``val``: k = 86..93 (MNI z = +14..+21 mm, bodies of the lateral ventricles);
* ``test``: k = 96..103 (MNI z = +24..+31 mm);
* ``train``: every other slice whose brain covers at least 4 % of the
  image, leaving out k = 83..106 so that no training slice lies within
  3 mm of a held-out one.

Training slices are augmented, seeded: left-right flip, rotation (+-15 deg),
scaling (0.85-1.15, slightly anisotropic), shift, elastic deformation,
gamma (0.75-1.35), a smooth multiplicative bias field, a small monotone
grey/white contrast change and, sometimes, faint Rician noise. Every slice
is then divided by its robust maximum (99.5th percentile; model units).
"""
from __future__ import annotations

import functools
from collections.abc import Iterator

import numpy as np
from scipy import ndimage
from skimage.transform import resize

from recon.io.nifti import axial_stack
from recon.units import robust_scale

VAL_SLICES = range(86, 94)
TEST_SLICES = range(96, 104)
EXCLUDED_FROM_TRAIN = range(83, 107)
MIN_BRAIN_FRACTION = 0.04
MARGIN_VOXELS = 10
SPLITS = ("train", "val", "test")
MRI_SLICES_VERSION = 1
VOXEL_MM = 1.0
"""The template's voxel size."""
SCALE, ANISOTROPY = (0.85, 1.15), 0.05
"""Augmentation: the slice is scaled by a factor in SCALE times exp(+-ANISOTROPY) per axis."""


@functools.lru_cache(maxsize=1)
def template_image():
    """nilearn's bundled MNI152 T1 template (1 mm) as a nibabel image."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from nilearn.datasets import load_mni152_template

        return load_mni152_template(resolution=1)


@functools.lru_cache(maxsize=1)
def _axial() -> np.ndarray:
    image = template_image()
    return axial_stack(np.asarray(image.get_fdata(), dtype=np.float32), image.affine)


@functools.lru_cache(maxsize=1)
def brain_window() -> tuple[int, int, int]:
    """(first row, first column, side) of the square field of view around the brain
    (the union of all slices) with a ``MARGIN_VOXELS`` margin, in the axial slice frame."""
    rows, cols = np.nonzero((_axial() > 0.05).any(axis=0))
    half = max(rows.max() - rows.min(), cols.max() - cols.min()) // 2 + MARGIN_VOXELS
    return int((rows.min() + rows.max()) // 2 - half), int((cols.min() + cols.max()) // 2 - half), int(2 * half)


@functools.lru_cache(maxsize=1)
def template_slices() -> np.ndarray:
    """All axial slices of the template in the brain window, (189, N, N) float32 in [0, 1]."""
    stack = _axial()
    row, col, side = brain_window()
    padded = np.pad(stack, ((0, 0), (side, side), (side, side)))
    return np.ascontiguousarray(padded[:, row + side:row + 2 * side, col + side:col + 2 * side])


def field_of_view_mm(zoom: tuple[float, float] = (1.0, 1.0)) -> tuple[float, float]:
    """(smallest, largest) side in mm of what a slice shows: the brain window, scaled by the augmentation
    and by a further ``zoom`` range (below 1: a larger field of view)."""
    side = brain_window()[2] * VOXEL_MM
    return (side / (SCALE[1] * np.exp(ANISOTROPY) * zoom[1]), side / (SCALE[0] * np.exp(-ANISOTROPY) * zoom[0]))


def split_indices(split: str) -> list[int]:
    """Template slice indices k of a split (see the module docstring)."""
    if split == "val":
        return list(VAL_SLICES)
    if split == "test":
        return list(TEST_SLICES)
    if split != "train":
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    stack = template_slices()
    fraction = (stack > 0.05).mean(axis=(1, 2))
    return [k for k in range(len(stack)) if fraction[k] >= MIN_BRAIN_FRACTION and k not in EXCLUDED_FROM_TRAIN]


@functools.lru_cache(maxsize=4)
def base_slices(split: str, size: int) -> np.ndarray:
    """The split's template slices resized to (K, size, size) float32."""
    stack = template_slices()[split_indices(split)]
    return resize(stack, (len(stack), size, size), order=1, anti_aliasing=True, preserve_range=True).astype(np.float32)


def smooth_field(rng: np.random.Generator, size: int, sigma: float) -> np.ndarray:
    """A (size, size) Gaussian random field of unit std, smoothed by a Gaussian of ``sigma`` pixels (bias fields,
    elastic displacements)."""
    field = ndimage.gaussian_filter(rng.standard_normal((size, size)), sigma, mode="reflect")
    return field / (field.std() + 1e-12)


def augment_slice(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Random geometric and intensity augmentation of one (N, N) slice in [0, ~1]."""
    n = image.shape[0]
    if rng.random() < 0.5:
        image = image[:, ::-1]
    # One backward warp: affine (rotation, scale, shift) plus a smooth elastic displacement.
    angle = np.deg2rad(rng.uniform(-15, 15))
    scale = rng.uniform(*SCALE) * np.exp(rng.uniform(-ANISOTROPY, ANISOTROPY, 2))
    shift = rng.uniform(-0.05, 0.05, 2) * n
    rows, cols = np.mgrid[0:n, 0:n].astype(np.float64) - (n - 1) / 2
    cos, sin = np.cos(angle), np.sin(angle)
    src_r = (cos * rows - sin * cols) / scale[0] + (n - 1) / 2 - shift[0]
    src_c = (sin * rows + cos * cols) / scale[1] + (n - 1) / 2 - shift[1]
    elastic = rng.uniform(0.0, 0.03) * n
    src_r += elastic * smooth_field(rng, n, n / 10)
    src_c += elastic * smooth_field(rng, n, n / 10)
    out = np.clip(ndimage.map_coordinates(image, [src_r, src_c], order=3, mode="constant"), 0.0, None)
    # Intensity: monotone contrast tweak, gamma, bias field, faint Rician noise.
    peak = max(float(out.max()), 1e-6)
    x = out / peak
    x = x + rng.uniform(-0.06, 0.06) * np.sin(np.pi * x)
    x = np.clip(x, 0.0, None) ** np.exp(rng.uniform(-0.3, 0.3))
    x = x * np.exp(rng.uniform(0.05, 0.25) * smooth_field(rng, n, n / 4))
    if rng.random() < 0.3:
        sigma = rng.uniform(0.003, 0.012)
        x = np.hypot(x + sigma * rng.standard_normal(x.shape), sigma * rng.standard_normal(x.shape))
    return (x * peak).astype(np.float32)


def plain_slice(split: str, size: int, index: int) -> np.ndarray | None:
    """Template slice ``index`` of ``split`` as it is (model units), or None past the end."""
    base = base_slices(split, size)
    return robust_scale(base[index])[0].astype(np.float32) if index < len(base) else None


def augmented_slice(split: str, size: int, seed: int) -> np.ndarray:
    """One augmented slice of ``split``, determined by ``seed``: a template slice drawn
    uniformly, augmented, in model units."""
    rng = np.random.default_rng(seed)
    base = base_slices(split, size)
    return robust_scale(augment_slice(base[rng.integers(len(base))], rng))[0].astype(np.float32)


def mri_slices(split: str, size: int, seed: int, augment: bool) -> Iterator[np.ndarray]:
    """Brain slices of ``split`` as (size, size) float32 in model units.

    Without ``augment``: the split's template slices in order, once each.
    With ``augment``: an endless seeded stream of augmented slices.
    """
    if not augment:
        for index in range(len(base_slices(split, size))):
            yield plain_slice(split, size, index)
        return
    rng = np.random.default_rng(seed)
    while True:
        yield augmented_slice(split, size, int(rng.integers(2 ** 63)))
