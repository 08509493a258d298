"""The symmetries of a parallel-beam scan that let a quarter of the views stand for all of them.

The pixel grid and the detector of :mod:`operators.geometry` are symmetric about
the origin, and the view angles ``k pi / M`` are closed under ``theta -> pi - theta``
(and, for even M, under ``theta -> theta +- pi/2`` and ``theta -> pi/2 - theta``).
For an orthogonal map Q of the plane that sends the pixel grid onto itself,
``P_theta'[I] = P_theta[I o Q]`` whenever ``Q n_theta = n_theta'`` (n the ray normal),
so view theta' of an image is view theta of a permuted image, bin for bin.
Every view therefore equals a *representative* view (theta in [0, pi/4], or
[0, pi/2] for odd M) of one of four pixel permutations of the image:

==========  ==========================  ========================  =========
name        view k from representative  image J (pixels [r, c])   Q
==========  ==========================  ========================  =========
identity    k' = k                      I[r, c]                   1
transpose   k' = M/2 - k                I[N-1-c, N-1-r]           (x,y)->(y,x)
rotate      k' = k - M/2                I[N-1-c, r]               90 degrees
flip        k' = M - k                  I[r, N-1-c]               x -> -x
==========  ==========================  ========================  =========

Joseph's kernel (astra's ``linear`` projector) is itself symmetric under these
maps, so a system matrix of the representative views reproduces astra's rows
of every view to float round-off (``tests/test_operators_radon.py``).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

PERMUTATIONS = ("identity", "transpose", "rotate", "flip")


def representative_views(n_angles: int) -> np.ndarray:
    """Indices of the representative views, (R,) int64: k with 4k <= M (M even), 2k <= M (M odd)."""
    limit = n_angles // 4 if n_angles % 2 == 0 else n_angles // 2
    return np.arange(limit + 1, dtype=np.int64)


@dataclass(frozen=True)
class ViewOrbits:
    """For each of some views: its representative (a position in :func:`representative_views`) and
    the permutation (an index into :data:`PERMUTATIONS`) of the image that it sees.

    Attributes:
        representative: (V,) int64 positions of the views' representatives.
        permutation: (V,) int64 indices into :data:`PERMUTATIONS`.
    """

    representative: np.ndarray
    permutation: np.ndarray


def view_orbits(n_angles: int, views: np.ndarray) -> ViewOrbits:
    """The representative and permutation of each view in ``views`` (V,) of a scan of ``n_angles``."""
    k = np.asarray(views, dtype=np.int64)
    if k.ndim != 1 or (k.size and (k.min() < 0 or k.max() >= n_angles)):
        raise ValueError(f"view indices must be a 1-D array in [0, {n_angles}), got {k!r}")
    rep, perm = k.copy(), np.zeros_like(k)
    if n_angles % 2 == 0:
        half = n_angles // 2
        cases = ((4 * k > n_angles) & (k <= half), half - k, 1), \
                ((k > half) & (4 * k <= 3 * n_angles), k - half, 2), \
                (4 * k > 3 * n_angles, n_angles - k, 3)
    else:
        cases = ((2 * k > n_angles, n_angles - k, 3),)
    for where, representative, permutation in cases:
        rep[where], perm[where] = representative[where], permutation
    return ViewOrbits(rep, perm)


def pixel_permutations(size: int) -> np.ndarray:
    """(4, N*N) int64: row g holds ``perm`` with ``vec(J_g) = vec(I)[perm]`` for :data:`PERMUTATIONS`[g]."""
    r, c = np.divmod(np.arange(size * size, dtype=np.int64), size)
    last = size - 1
    return np.stack([r * size + c, (last - c) * size + (last - r), (last - c) * size + r, r * size + (last - c)])
