"""Procedural 2-D head CT phantom, seeded and deterministic: the thorax phantom's counterpart for the head.

One call draws one axial slice in Hounsfield units, anterior at the top, in a field of view of 22 to 30 cm
(random: scanners reconstruct heads at several). The head (random width, depth, tilt and position, a
wobbly outline) has a scalp (skin and fat) and a skull of outer table, diploe and inner table whose
thickness varies around the head. By level:

* ``vertex``: brain only, cortex folded into gyri with CSF in the sulci, white matter inside;
* ``ventricles``: as vertex, plus the lateral ventricles (CSF), septum, and calcified choroid plexus or
  pineal gland;
* ``skull base``: the orbits (globes, lenses, orbital fat) in front, the ethmoid or maxillary sinuses
  (air, thin bony septa), the dense petrous bones with mastoid air cells at the sides, the brain stem and
  temporal lobes behind.

Random lesions (a haemorrhage, about 65 HU; an infarct, about 15 HU), a head rest under some heads,
mild texture, a blurred point spread and correlated noise finish it. Drawn on a 2x supersampled grid
with :mod:`recon.data.phantom_geometry`'s soft shapes and averaged down.
"""
from __future__ import annotations

import numpy as np
from scipy import ndimage

from recon.data.phantom_geometry import FOV_MM, Frame, radial_factor, random_wobble, soft_edge

HEAD_PHANTOM_VERSION = 2  # bump when the images a seed gives change
SUPERSAMPLE = 2
HEAD_LEVELS = ("vertex", "ventricles", "skull base")
FOV_RANGE_MM = (220.0, 300.0)


def _ring(f: Frame, a: float, b: float, angle: float, wobble: np.ndarray, depth: np.ndarray | float) -> np.ndarray:
    """Soft mask of the ellipse (a, b) with ``wobble``, shrunk inwards by ``depth`` (frame units, per pixel), over
    the whole grid (:meth:`Frame.ellipse` draws inside a bounding box with one edge depth)."""
    cos, sin = np.cos(angle), np.sin(angle)
    p, q = (f.x * cos + f.y * sin) / a, (-f.x * sin + f.y * cos) / b
    theta = np.arctan2(q, p)
    radius = np.sqrt(p * p + q * q) / radial_factor(theta, wobble)
    return soft_edge((radius - 1.0) * min(a, b) + depth, f.pixel)


class _Head:
    """The canvas (HU, supersampled), the head's outline and the random draws shared by the painters."""

    def __init__(self, size: int, seed: int) -> None:
        self.rng = rng = np.random.default_rng(seed)
        self.n = n = size * SUPERSAMPLE
        zoom = rng.uniform(*FOV_RANGE_MM) / FOV_MM  # the frame's units: a 380 mm field spans [-1, 1]
        self.f = Frame(n, (rng.uniform(-0.02, 0.02), rng.uniform(-0.03, 0.03)), rng.uniform(-0.1, 0.1), zoom)
        self.mm = mm = self.f.mm
        self.level = HEAD_LEVELS[rng.choice(3, p=[0.3, 0.4, 0.3])]
        self.a, self.b = rng.uniform(68, 82) * mm, rng.uniform(85, 100) * mm  # half-width, half-depth
        if self.level == "vertex":
            self.a, self.b = self.a * rng.uniform(0.7, 0.9), self.b * rng.uniform(0.7, 0.9)
        self.angle, self.wobble = rng.uniform(-0.05, 0.05), random_wobble(rng, 0.025)
        fine = ndimage.gaussian_filter(rng.standard_normal((n, n)), 1.0)
        coarse = ndimage.gaussian_filter(rng.standard_normal((n, n)), 6.0 * SUPERSAMPLE)
        self.fine, self.coarse = fine / fine.std(), coarse / coarse.std()
        self.hu = np.full((n, n), -1000.0)
        self.scalp = rng.uniform(3.5, 7.0) * mm
        theta = np.arctan2(self.f.y, self.f.x)
        self.skull = (rng.uniform(4.5, 8.5) + rng.uniform(0.5, 2.5) * np.cos(2 * theta + rng.uniform(0, 6.3))) * mm
        self.inner = self.scalp + self.skull  # depth of the inner table, per pixel
        self.grey, self.white = rng.uniform(36, 44), rng.uniform(24, 31)

    def paint(self, mask: np.ndarray, value) -> None:
        """Alpha-composite ``value`` (scalar or array) with coverage ``mask``."""
        self.hu += mask * (value - self.hu)

    def inside(self, depth, a: float | None = None, b: float | None = None, wobble=None) -> np.ndarray:
        """Soft mask of the head outline (or another ellipse) shrunk inwards by ``depth``."""
        return _ring(self.f, a or self.a, b or self.b, self.angle, self.wobble if wobble is None else wobble, depth)


def _scalp_and_skull(h: _Head) -> None:
    rng, mm, fine = h.rng, h.mm, h.fine
    h.paint(h.inside(0.0), rng.uniform(-90, -60))  # subcutaneous fat under the skin
    h.paint(h.inside(1.2 * mm), rng.uniform(30, 50) + 4 * fine)  # scalp soft tissue
    h.paint(h.inside(h.scalp), rng.uniform(1200, 1700) + 60 * fine)  # outer table
    h.paint(h.inside(h.scalp + 0.3 * h.skull), rng.uniform(350, 750) + 80 * fine)  # diploe
    h.paint(h.inside(h.scalp + 0.7 * h.skull), rng.uniform(1100, 1600) + 60 * fine)  # inner table


def _brain(h: _Head) -> np.ndarray:
    """Cortex with sulci, white matter; returns the brain's mask."""
    rng, mm, n = h.rng, h.mm, h.n
    brain = h.inside(h.inner)
    h.paint(brain, rng.uniform(2, 8))  # CSF over the brain surface
    cortex = h.inside(h.inner + rng.uniform(1.0, 2.5) * mm)
    gyri = ndimage.gaussian_filter(rng.standard_normal((n, n)), rng.uniform(1.5, 2.5) * SUPERSAMPLE)
    sulci = (gyri > np.quantile(gyri, rng.uniform(0.75, 0.88))).astype(float)
    white_matter = h.inside(h.inner + rng.uniform(9, 15) * mm, h.a * 0.95, h.b * 0.95, random_wobble(rng, 0.06))
    h.paint(cortex, h.grey + 2.5 * h.fine + 1.5 * h.coarse)
    h.paint(white_matter, h.white + 2.0 * h.fine + 1.5 * h.coarse)
    edge = cortex * (1 - h.inside(h.inner + rng.uniform(8, 14) * mm))
    h.paint(edge * sulci, rng.uniform(2, 8))  # CSF in the sulci near the surface
    return brain


def _ventricles(h: _Head) -> None:
    rng, mm, f = h.rng, h.mm, h.f
    spread, height = rng.uniform(6, 12) * mm, rng.uniform(18, 30) * mm
    for side in (-1, 1):
        h.paint(f.ellipse(side * spread, -rng.uniform(0, 8) * mm, rng.uniform(3, 7) * mm, height,
                          side * rng.uniform(0.1, 0.35)), rng.uniform(2, 8))
    if rng.random() < 0.6:  # choroid plexus calcifications or the pineal gland
        for side in (-1, 1):
            h.paint(f.ellipse(side * spread, height * 0.5, 2.2 * mm, 1.8 * mm), rng.uniform(120, 300))


def _skull_base(h: _Head) -> None:
    rng, mm, f, fine, a = h.rng, h.mm, h.f, h.fine, h.a
    front = -h.b + h.scalp + float(h.skull.mean())
    for side in (-1, 1):
        cx, cy, r = side * rng.uniform(28, 36) * mm, front + rng.uniform(6, 14) * mm, rng.uniform(10, 13) * mm
        h.paint(f.ellipse(cx, cy, r * 1.5, r * 1.3), rng.uniform(-100, -70))  # orbital fat
        h.paint(f.ellipse(cx, cy, r, r), rng.uniform(5, 15))  # globe
        h.paint(f.ellipse(cx, cy - 0.75 * r, 3 * mm, 1.5 * mm), rng.uniform(80, 120))  # lens
        petrous = f.ellipse(side * a * rng.uniform(0.45, 0.6), rng.uniform(5, 25) * mm, rng.uniform(18, 26) * mm,
                            rng.uniform(5, 8) * mm, side * rng.uniform(0.5, 0.9))
        h.paint(petrous, rng.uniform(1300, 1900) + 80 * fine)
        mastoid = f.ellipse(side * a * rng.uniform(0.7, 0.8), rng.uniform(20, 35) * mm, 9 * mm, 12 * mm)
        h.paint(mastoid * (fine > rng.uniform(-0.3, 0.5)), -900.0)  # air cells between bony septa
    sinus = f.ellipse(0, front + rng.uniform(14, 24) * mm, rng.uniform(10, 18) * mm, rng.uniform(8, 14) * mm)
    septa = np.abs(ndimage.gaussian_filter(rng.standard_normal((h.n, h.n)), SUPERSAMPLE)) < 0.15
    h.paint(sinus, np.where(septa, rng.uniform(300, 700), rng.uniform(-1000, -900)))
    h.paint(f.ellipse(0, rng.uniform(15, 25) * mm, rng.uniform(11, 15) * mm, rng.uniform(9, 13) * mm),
            h.white + 4 + 2.0 * fine)  # brain stem


def _lesion_and_rest(h: _Head, brain: np.ndarray) -> None:
    rng, mm, f = h.rng, h.mm, h.f
    if rng.random() < 0.35:  # a lesion inside the brain: haemorrhage or infarct
        inside = np.argwhere(brain[::4, ::4] > 0.99) * 4
        if len(inside):
            r, c = inside[rng.integers(len(inside))]
            lesion = f.ellipse(float(f.x[r, c]), float(f.y[r, c]), rng.uniform(3, 14) * mm, rng.uniform(3, 10) * mm,
                               rng.uniform(0, 3), random_wobble(rng, 0.15)) * brain
            h.paint(lesion, rng.choice([rng.uniform(55, 80), rng.uniform(10, 20)]) + 2 * h.fine)
    if rng.random() < 0.5:  # the head rest under the occiput
        rest = f.ellipse(0, h.b + rng.uniform(10, 16) * mm, h.a * 1.4, rng.uniform(6, 10) * mm)
        h.paint(rest * (1 - h.inside(-1.0 * mm)), rng.uniform(-200, 100))


def head_phantom(size: int, seed: int) -> np.ndarray:
    """One random axial head slice, (size, size) float32 in HU.

    The same ``(size, seed)`` always gives the same image; seeds vary the field of view, the head's size
    and shape, the level (vertex / ventricles / skull base), skull thickness, gyri, ventricles, sinuses,
    lesions, texture and noise.
    """
    if size < 8:
        raise ValueError(f"phantom size must be >= 8, got {size}")
    h = _Head(size, seed)
    _scalp_and_skull(h)
    brain = _brain(h)
    if h.level == "ventricles":
        _ventricles(h)
    elif h.level == "skull base":
        _skull_base(h)
    _lesion_and_rest(h, brain)
    rng = h.rng
    hu = ndimage.gaussian_filter(h.hu, rng.uniform(0.5, 0.9))  # point spread, averaging down, noise
    hu = hu.reshape(size, SUPERSAMPLE, size, SUPERSAMPLE).mean(axis=(1, 3))
    noise = ndimage.gaussian_filter(rng.standard_normal((size, size)), 0.6)
    hu += noise * (rng.uniform(3, 10) / noise.std())
    return hu.astype(np.float32)
