"""Drawing geometry of the thorax phantom (:mod:`recon.data.phantom_ct`): soft-edged shapes on a frame.

:class:`Frame` holds the supersampled pixel grid in the body's coordinates
(rotated and shifted with the body; the full field of view of ``FOV_MM``
spans [-1, 1]) and draws soft ellipses inside their bounding boxes;
:class:`Body` is the body outline (a superellipse with a wobbly radius and
its skin, fat and muscle layers); :func:`disc_mask` draws many small discs
at once. Masks are coverages in [0, 1], one pixel wide at the edges.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

FOV_MM = 380.0  # the grid spans [-1, 1] = 380 mm


def random_wobble(rng: np.random.Generator, amount: float, terms: int = 4) -> np.ndarray:
    """Fourier amplitudes and phases (terms, 2) for irregular outlines (harmonics 2, 3, ...)."""
    return np.stack([rng.uniform(0, amount, terms) / np.arange(1, terms + 1) ** 0.5,
                     rng.uniform(0, 2 * np.pi, terms)], axis=1)


def radial_factor(theta: np.ndarray, wobble: np.ndarray | None) -> np.ndarray | float:
    """Radius factor ``1 + sum a_k cos((k + 2) theta + phi_k)``."""
    if wobble is None:
        return 1.0
    return 1.0 + sum(amp * np.cos((k + 2) * theta + phase) for k, (amp, phase) in enumerate(wobble))


def soft_edge(distance: np.ndarray, width: float) -> np.ndarray:
    """Coverage in [0, 1] of the region ``distance < 0``, with an edge ``width`` wide."""
    return np.clip(0.5 - distance / width, 0.0, 1.0)


@dataclass
class Frame:
    """Pixel coordinates in the body's frame (centred on the body, rotated with it).

    Units are those of the full field of view, which spans [-1, 1]; the image
    shows the square of half-side ``zoom`` around ``view``. ``pixel`` is one
    supersampled pixel in these units.
    """

    n: int
    centre: tuple[float, float]
    angle: float
    zoom: float = 1.0
    view: tuple[float, float] = (0.0, 0.0)

    def __post_init__(self) -> None:
        coords = ((np.arange(self.n) + 0.5) / self.n * 2.0 - 1.0) * self.zoom
        gy, gx = np.meshgrid(coords + self.view[1], coords + self.view[0], indexing="ij")
        dx, dy = gx - self.centre[0], gy - self.centre[1]
        cos, sin = np.cos(self.angle), np.sin(self.angle)
        self.x, self.y = dx * cos + dy * sin, -dx * sin + dy * cos
        self.pixel = 2.0 * self.zoom / self.n
        self.mm = 2.0 / FOV_MM

    def to_pixel(self, x, y):
        """(row, column) pixel coordinates of frame points (x, y), as floats."""
        cos, sin = np.cos(self.angle), np.sin(self.angle)
        gx = self.centre[0] + x * cos - y * sin - self.view[0]
        gy = self.centre[1] + x * sin + y * cos - self.view[1]
        return (gy / self.zoom + 1) / 2 * self.n - 0.5, (gx / self.zoom + 1) / 2 * self.n - 0.5

    def window(self, cx: float, cy: float, radius: float) -> tuple[slice, slice]:
        """Index box of the grid holding the frame disc of ``radius`` around (cx, cy)."""
        row, col = self.to_pixel(cx, cy)
        half = radius / self.pixel + 2
        return (slice(int(max(0, np.floor(row - half))), int(max(0, np.ceil(row + half) + 1))),
                slice(int(max(0, np.floor(col - half))), int(max(0, np.ceil(col + half) + 1))))

    def ellipse(self, cx: float, cy: float, a: float, b: float, angle: float = 0.0,
                wobble: np.ndarray | None = None) -> np.ndarray:
        """Soft mask (n, n) of an ellipse with semi-axes (a, b) turned by ``angle``,
        its radius perturbed by ``wobble``."""
        out = np.zeros((self.n, self.n))
        reach = max(a, b) * (1.0 + (0.0 if wobble is None else wobble[:, 0].sum()))
        rows, cols = self.window(cx, cy, reach)
        dx, dy = self.x[rows, cols] - cx, self.y[rows, cols] - cy
        cos, sin = np.cos(angle), np.sin(angle)
        p, q = (dx * cos + dy * sin) / a, (-dx * sin + dy * cos) / b
        radius = np.sqrt(p * p + q * q)
        if wobble is not None:
            radius = radius / radial_factor(np.arctan2(q, p), wobble)
        out[rows, cols] = soft_edge((radius - 1.0) * min(a, b), self.pixel)
        return out


@dataclass
class Body:
    """Body outline: a superellipse, flatter at the back, with a wobbly radius.

    ``rho`` is the normalised radius (1 on the skin); layer depths are in
    units of ``rho``; ``theta`` is 0 to the image right, +pi/2 posterior.
    """

    half_width: float
    half_depth: float
    exponent_front: float
    exponent_back: float
    wobble: np.ndarray
    fat: float
    fat_phase: float
    muscle: float
    skin: float = 0.012

    @classmethod
    def random(cls, rng: np.random.Generator) -> "Body":
        half_width = rng.uniform(0.76, 0.94)
        return cls(half_width, half_width * rng.uniform(0.66, 0.86), rng.uniform(2.0, 2.4), rng.uniform(2.6, 3.4),
                   random_wobble(rng, 0.03), rng.uniform(0.02, 0.10), rng.uniform(0, 2 * np.pi),
                   rng.uniform(0.03, 0.05))

    @property
    def scale(self) -> float:
        """Frame units per unit of ``rho``, roughly."""
        return float(np.sqrt(self.half_width * self.half_depth))

    def rho_theta(self, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        u, v = x / self.half_width, y / self.half_depth
        p = np.where(v > 0, self.exponent_back, self.exponent_front)
        theta = np.arctan2(v, u)
        return (np.abs(u) ** p + np.abs(v) ** p) ** (1.0 / p) / radial_factor(theta, self.wobble), theta

    def fat_depth(self, theta):
        return self.fat * (1.0 + 0.4 * np.cos(2 * theta + self.fat_phase)) * (1.0 - 0.4 * np.sin(theta))

    def cavity_radius(self, theta):
        """``rho`` of the inner surface of the chest wall."""
        back = np.maximum(np.sin(theta), 0.0)
        return 1.0 - self.skin - self.fat_depth(theta) - self.muscle * (1.0 + 0.3 * np.sin(theta) ** 2 + 1.2 * back ** 4)

    def point(self, theta: float, rho: float) -> tuple[float, float]:
        """Frame coordinates of the point at angle ``theta`` and normalised radius ``rho``."""
        du, dv = np.cos(theta), np.sin(theta)
        p = self.exponent_back if dv > 0 else self.exponent_front
        t = rho * radial_factor(theta, self.wobble) / (abs(du) ** p + abs(dv) ** p) ** (1.0 / p)
        return float(t * du * self.half_width), float(t * dv * self.half_depth)


def disc_mask(f: Frame, points: np.ndarray) -> np.ndarray:
    """Soft mask of discs of the given radii at (x, y) frame points, via one distance transform."""
    radius_px = np.zeros((f.n, f.n))
    if len(points):
        rows, cols = f.to_pixel(points[:, 0], points[:, 1])
        r, c = np.rint(rows).astype(int), np.rint(cols).astype(int)
        ok = (r >= 0) & (r < f.n) & (c >= 0) & (c < f.n)
        np.maximum.at(radius_px, (r[ok], c[ok]), points[ok, 2] / f.pixel)
    if not radius_px.any():
        return radius_px
    distance, (ir, ic) = ndimage.distance_transform_edt(radius_px == 0, return_indices=True)
    return np.clip(radius_px[ir, ic] - distance + 0.5, 0.0, 1.0)
