"""Procedural 2-D thorax CT phantom, seeded and deterministic.

One call draws one axial slice in Hounsfield units, anterior at the top and
the patient's left on the image right, in a field of view of about 38 cm.
The body (random width, depth, position and tilt) has skin, subcutaneous
fat and a muscle layer around the rib cage. Inside: two
lungs (about -870 HU, denser posteriorly) holding the cross-section of a
random 3-D vessel tree and random nodules; a mediastinum of fat holding, by
level, the heart (myocardium, contrast-filled chambers, septum, pericardial
fat), ascending and descending aorta, pulmonary trunk, vena cava, trachea
and oesophagus; the spine (cortical shell, cancellous body, canal,
posterior arch, spinous and transverse processes) in paraspinal muscle;
ribs, costal cartilage and sternum; at the lowest level the liver dome,
spleen and stomach. Random lesions (lung nodules, liver and bone lesions,
lymph nodes, coronary calcium), mild tissue texture, a slightly blurred
point spread and correlated noise finish it; half of them lie on a table.

A smaller field of view around any point (``zoom``, ``view``) shows the
same anatomy at a finer pixel size, like a targeted reconstruction.

Everything is drawn on a 2x supersampled grid with array operations (shapes
are evaluated only inside their bounding boxes, :mod:`recon.data.phantom_geometry`)
and averaged down.
"""
from __future__ import annotations

import numpy as np
from scipy import ndimage

from recon.data.phantom_geometry import Body, Frame, disc_mask, random_wobble, soft_edge

PHANTOM_VERSION = 1  # bump when the images a seed gives change
SUPERSAMPLE = 2
LEVELS = ("upper", "mid", "lower")  # great vessels / heart / heart and liver dome


class _Scene:
    """The canvas (HU, supersampled) and the random draws shared by the anatomy painters."""

    def __init__(self, size: int, seed: int, zoom: float, view: tuple[float, float]) -> None:
        self.rng = rng = np.random.default_rng(seed)
        self.size, n = size, size * SUPERSAMPLE
        self.body = Body.random(rng)
        self.f = Frame(n, (rng.uniform(-0.04, 0.04), rng.uniform(-0.06, 0.03)), rng.uniform(-0.06, 0.06), zoom, view)
        self.s, self.mm = self.body.half_width, self.f.mm
        self.level = LEVELS[rng.choice(3, p=[0.25, 0.45, 0.30])]
        self.blood = rng.uniform(40, 220)  # contrast phase: plain (40) to arterial-ish (220)
        fine = ndimage.gaussian_filter(rng.standard_normal((n, n)), 1.0)
        coarse = ndimage.gaussian_filter(rng.standard_normal((n, n)), 5.0)
        # Tissues do not overlap, so one fine and one coarse texture field serve all of them.
        self.fine, self.coarse = fine / fine.std(), coarse / coarse.std()
        self.hu = np.full((n, n), -1000.0)
        self.rho, self.theta = self.body.rho_theta(self.f.x, self.f.y)
        self.fat_depth = self.body.fat_depth(self.theta)
        self.cavity_radius = self.body.cavity_radius(self.theta)

    def paint(self, mask: np.ndarray, value) -> None:
        """Alpha-composite ``value`` (scalar or array) with coverage ``mask``."""
        self.hu += mask * (value - self.hu)

    def texture(self, fine: float, coarse: float) -> np.ndarray:
        return fine * self.fine + coarse * self.coarse

    def shell(self, depth) -> np.ndarray:
        """Soft mask of the body shrunk by ``depth`` (in ``rho`` units, scalar or per pixel)."""
        return soft_edge((self.rho - 1.0 + depth) * self.body.scale, self.f.pixel)

    def random_point(self, mask: np.ndarray) -> tuple[float, float] | None:
        inside = np.argwhere(mask > 0.99)
        if len(inside) == 0:
            return None
        r, c = inside[self.rng.integers(len(inside))]
        return float(self.f.x[r, c]), float(self.f.y[r, c])


def _hilar_tree(rng: np.random.Generator, hilum: tuple[float, float], outward: int, mm: float,
                slab_z: float, slab_mm: float) -> np.ndarray:
    """Cross-section of the large vessels fanning out of a hilum.

    A random 3-D binary tree (4 roots spread over 6 cm in z, 4 generations,
    lengths x0.8 and radii x0.72 per generation, branching angles 17-43
    degrees) grows mostly away from the midline; the points of its centre
    lines inside the slab ``|z - slab_z| < slab_mm / 2`` come back as rows
    (x, y, radius) in frame units: vessels crossing the slice show as
    discs, vessels lying in it as branching segments.
    """
    roots = 4
    direction = rng.standard_normal((roots, 3))
    direction[:, 0] = (np.abs(direction[:, 0]) + 0.5) * outward
    direction /= np.linalg.norm(direction, axis=1, keepdims=True)
    start = np.zeros((roots, 3))
    start[:, 0], start[:, 1] = hilum
    start[:, 2] = rng.uniform(-30, 30, roots) * mm
    length, radius = rng.uniform(18, 26) * mm, rng.uniform(4.5, 6.5) * mm
    step = 0.5 * mm
    kept = []
    for _ in range(4):
        k = max(2, int(np.ceil(length / step)))
        pts = start[:, None, :] + np.linspace(0.0, 1.0, k)[None, :, None] * direction[:, None, :] * length
        inside = np.abs(pts[..., 2] - slab_z) < slab_mm * mm / 2
        sel = pts[inside]
        kept.append(np.column_stack([sel[:, 0], sel[:, 1], np.full(len(sel), radius)]))
        start = np.repeat(start + direction * length, 2, axis=0)
        parent = np.repeat(direction, 2, axis=0)
        perp = np.cross(parent, rng.standard_normal(parent.shape))
        perp /= np.linalg.norm(perp, axis=1, keepdims=True) + 1e-12
        perp[1::2] *= -1
        angle = rng.uniform(0.3, 0.75, len(parent))[:, None]
        direction = np.cos(angle) * parent + np.sin(angle) * perp
        direction /= np.linalg.norm(direction, axis=1, keepdims=True)
        length *= rng.uniform(0.74, 0.86)
        radius *= 0.72
    return np.concatenate(kept)


def _peripheral_vessels(sc: "_Scene", lung: np.ndarray, hila: list[tuple[float, float]]) -> np.ndarray:
    """Smaller vessels all over the lungs: one section per 1.3-2.2 cm^2 of lung, thinner away
    from the hila, some cut lengthwise (short segments pointing at the hilum).
    Returns rows (x, y, radius) in frame units."""
    rng, f, mm = sc.rng, sc.f, sc.mm
    inside = np.argwhere(lung > 0.99)
    if len(inside) == 0:
        return np.zeros((0, 3))
    area_mm2 = len(inside) * (f.pixel / mm) ** 2
    picks = inside[rng.integers(len(inside), size=rng.poisson(area_mm2 / rng.uniform(130, 220)))]
    x, y = f.x[picks[:, 0], picks[:, 1]], f.y[picks[:, 0], picks[:, 1]]
    hx, hy = np.array(hila).T
    d2 = (x[:, None] - hx) ** 2 + (y[:, None] - hy) ** 2
    nearest = d2.argmin(axis=1)
    distance = np.sqrt(d2.min(axis=1)) / mm
    radius = np.clip(rng.lognormal(np.log(2.0), 0.35, len(x)) * np.exp(-distance / 110.0), 0.5, 4.0) * mm
    length = radius * rng.exponential(1.2, len(x))
    heading = np.arctan2(y - hy[nearest], x - hx[nearest]) + rng.normal(0, 0.3, len(x))
    t = np.linspace(-0.5, 0.5, 8)[None, :]
    px = x[:, None] + t * (length * np.cos(heading))[:, None]
    py = y[:, None] + t * (length * np.sin(heading))[:, None]
    return np.column_stack([px.ravel(), py.ravel(), np.repeat(radius, t.shape[1])])


def _chest_wall(sc: _Scene) -> np.ndarray:
    """Table, skin, fat and muscle; returns the soft mask of the thoracic cavity."""
    rng, f, body, mm, s = sc.rng, sc.f, sc.body, sc.mm, sc.s
    if rng.random() < 0.5:  # patient table: two thin curved shells
        curve = f.y - (body.half_depth + rng.uniform(0.06, 0.12) - 0.12 * f.x ** 2)
        sc.paint(soft_edge(np.abs(curve) - 1.2 * mm, f.pixel), rng.uniform(150, 400))
        sc.paint(soft_edge(np.abs(curve - 0.1) - 1.0 * mm, f.pixel), rng.uniform(100, 300))
    sc.paint(sc.shell(0.0), rng.uniform(20, 50))
    fat = rng.uniform(-115, -85) + sc.texture(4, 6)
    sc.paint(sc.shell(body.skin), fat)
    muscle = rng.uniform(40, 60) + sc.texture(5, 4)
    sc.paint(sc.shell(body.skin + sc.fat_depth), muscle)
    sc.muscle = muscle
    return sc.shell(1.0 - sc.cavity_radius)


def _spine_geometry(sc: _Scene) -> dict:
    rng, s, body = sc.rng, sc.s, sc.body
    g = {"vb_y": body.half_depth * rng.uniform(0.36, 0.46), "vb_a": rng.uniform(0.11, 0.135) * s,
         "vb_b": rng.uniform(0.095, 0.115) * s, "canal_r": rng.uniform(0.042, 0.055) * s}
    g["canal_y"] = g["vb_y"] + g["vb_b"] + g["canal_r"] + 0.012 * s
    return g


def _spine_block(sc: _Scene, g: dict) -> np.ndarray:
    """Where the lungs cannot be: the vertebral body and the paraspinal muscles behind it,
    a wedge widening towards the back."""
    f, s = sc.f, sc.s
    wedge = np.maximum(np.abs(f.x) - (g["vb_a"] + 0.02 * s) - 0.3 * np.maximum(f.y - g["vb_y"], 0), g["vb_y"] - f.y)
    return np.maximum(f.ellipse(0, g["vb_y"], g["vb_a"] + 0.035 * s, g["vb_b"] + 0.04 * s),
                      soft_edge(wedge, f.pixel))


def _spine(sc: _Scene, g: dict) -> None:
    rng, f, s, mm = sc.rng, sc.f, sc.s, sc.mm
    cortical = rng.uniform(800, 1200)
    vb_y, vb_a, vb_b, canal_y, canal_r = g["vb_y"], g["vb_a"], g["vb_b"], g["canal_y"], g["canal_r"]
    sc.paint(f.ellipse(0, vb_y, vb_a, vb_b, wobble=random_wobble(rng, 0.04)), cortical)
    sc.paint(f.ellipse(0, vb_y, vb_a - 2.0 * mm, vb_b - 2.0 * mm), rng.uniform(170, 300) + sc.texture(35, 10))
    arch = f.ellipse(0, canal_y, canal_r + 0.03 * s, canal_r + 0.03 * s)
    sc.paint(arch * soft_edge(canal_y - 0.01 * s - f.y, f.pixel), cortical * 0.8)
    for side in (-1, 1):  # pedicles and transverse processes
        sc.paint(f.ellipse(side * (canal_r + 0.012 * s), vb_y + vb_b, 0.022 * s, 0.05 * s), cortical * 0.8)
        sc.paint(f.ellipse(side * (canal_r + 0.08 * s), canal_y - 0.01 * s, 0.075 * s, 0.02 * s, side * 0.5),
                 cortical * 0.75)
    spinous_len = rng.uniform(0.05, 0.08) * s
    sc.paint(f.ellipse(0, canal_y + canal_r + spinous_len, 0.02 * s, spinous_len, rng.uniform(-0.1, 0.1)),
             cortical * 0.6)
    sc.paint(f.ellipse(0, canal_y, canal_r, canal_r * 0.9), rng.uniform(15, 35))
    if rng.random() < 0.12:  # bone lesion: sclerotic or lytic
        sc.paint(f.ellipse(rng.uniform(-0.5, 0.5) * vb_a, vb_y + rng.uniform(-0.5, 0.5) * vb_b,
                           rng.uniform(2, 5) * mm, rng.uniform(2, 5) * mm),
                 rng.uniform(600, 1000) if rng.random() < 0.5 else rng.uniform(0, 60))


def _ribs(sc: _Scene) -> None:
    """Rib cross-sections on the inner chest wall, costal cartilage in front, and the sternum."""
    rng, f, body, mm = sc.rng, sc.f, sc.body, sc.mm
    cortical = rng.uniform(600, 1000)
    for side in (-1, 1):
        count = rng.integers(5, 9)
        for phi in np.linspace(-1.2, 1.25, count) + rng.uniform(-0.12, 0.12, count):
            theta = float(np.arctan2(np.sin(phi), side * np.cos(phi)))  # phi: 0 lateral, +pi/2 back
            pos = body.point(theta, body.cavity_radius(theta) + 0.025)
            a, b = rng.uniform(3.5, 6.0) * mm, rng.uniform(2.2, 3.2) * mm
            cartilage = phi < -0.85
            sc.paint(f.ellipse(*pos, a, b, theta + np.pi / 2), rng.uniform(90, 180) if cartilage else cortical)
            if not cartilage:
                sc.paint(f.ellipse(*pos, a - 1.2 * mm, b - 1.2 * mm, theta + np.pi / 2), rng.uniform(150, 300))
    if rng.random() < 0.8:
        sternum = body.point(-np.pi / 2, body.cavity_radius(-np.pi / 2) + 0.02)
        a, b = rng.uniform(9, 14) * mm, rng.uniform(3.5, 5) * mm
        sc.paint(f.ellipse(*sternum, a, b, wobble=random_wobble(rng, 0.1)), cortical * 0.7)
        sc.paint(f.ellipse(*sternum, a - 1.5 * mm, b - 1.5 * mm), rng.uniform(150, 300))


def _heart(sc: _Scene, heart: tuple) -> None:
    """Pericardial fat, myocardium, blood pools of the two ventricles split by a septum, calcium."""
    rng, f, s, mm, blood = sc.rng, sc.f, sc.s, sc.mm, sc.blood
    hx, hy, ha, hb, angle = heart
    sc.paint(f.ellipse(hx, hy, ha + rng.uniform(1, 5) * mm, hb + rng.uniform(1, 5) * mm, angle), rng.uniform(-100, -70))
    wobble = random_wobble(rng, 0.05)
    sc.paint(f.ellipse(hx, hy, ha, hb, angle, wobble), rng.uniform(40, 55) + 0.15 * (blood - 40) + sc.texture(3, 2))
    cos, sin = np.cos(angle), np.sin(angle)
    for along, across, size_a, size_b in ((-0.75, 0.35, 0.45, 0.4), (0.0, 0.85, 0.5, 0.35)):  # atria
        if rng.random() < 0.7:
            cx, cy = hx + along * ha * cos - across * hb * sin, hy + along * ha * sin + across * hb * cos
            sc.paint(f.ellipse(cx, cy, size_a * ha, size_b * hb, angle + rng.uniform(-0.4, 0.4)),
                     blood + rng.uniform(-20, 0))
    wall = rng.uniform(2.5, 4) * mm
    rv = blood + rng.uniform(-0.3, 0.15) * (blood - 40) + rng.uniform(-10, 10)
    sc.paint(f.ellipse(hx, hy, ha - wall, hb - wall, angle, wobble), rv)
    # Left ventricle: a round cavity in a thick wall, towards the apex on the image right and back.
    along, across = rng.uniform(0.3, 0.45) * ha, rng.uniform(0.15, 0.35) * hb
    lx, ly = hx + along * cos - across * sin, hy + along * sin + across * cos
    lr = rng.uniform(0.5, 0.62) * min(ha, hb)
    sc.paint(f.ellipse(lx, ly, lr * 1.15, lr, angle, random_wobble(rng, 0.06)),
             rng.uniform(40, 55) + 0.15 * (blood - 40) + sc.texture(3, 2))
    inner = lr - rng.uniform(7, 11) * mm
    sc.paint(f.ellipse(lx, ly, inner * 1.15, inner, angle, random_wobble(rng, 0.1)), blood + rng.uniform(-10, 10))
    if rng.random() < 0.25:  # coronary calcifications on the surface
        for _ in range(rng.integers(1, 4)):
            phi = rng.uniform(0, 2 * np.pi)
            px, py = 0.95 * ha * np.cos(phi), 0.95 * hb * np.sin(phi)
            sc.paint(f.ellipse(hx + px * np.cos(angle) - py * np.sin(angle), hy + px * np.sin(angle) + py * np.cos(angle),
                               1.5 * mm, 1.2 * mm), rng.uniform(400, 900))


def _abdomen(sc: _Scene, liver: np.ndarray, cavity: np.ndarray) -> None:
    """Liver dome with lesions, spleen and stomach (lowest level)."""
    rng, f, s, mm, blood, depth = sc.rng, sc.f, sc.s, sc.mm, sc.blood, sc.body.half_depth
    liver_hu = rng.uniform(50, 65) + 0.35 * (blood - 40) + sc.texture(4, 4)
    sc.paint(liver, liver_hu)
    for _ in range(rng.poisson(0.6)):
        point = sc.random_point(liver)
        if point is not None:
            r = rng.uniform(4, 14) * mm
            sc.paint(f.ellipse(*point, r, r * rng.uniform(0.7, 1), rng.uniform(0, 3), random_wobble(rng, 0.15)) * liver,
                     liver_hu - rng.uniform(25, 60))
    if rng.random() < 0.6:  # spleen, at the back on the patient's left
        spleen = f.ellipse(rng.uniform(0.45, 0.6) * s, rng.uniform(0.35, 0.55) * depth, 0.16 * s, 0.3 * depth,
                           rng.uniform(0.4, 1.0), random_wobble(rng, 0.1)) * cavity
        sc.paint(spleen, rng.uniform(45, 55) + 0.45 * (blood - 40) + sc.texture(3, 3))
    if rng.random() < 0.5:  # stomach with an air-fluid level
        sx, sy = rng.uniform(0.3, 0.5) * s, -rng.uniform(0.1, 0.3) * depth
        stomach = f.ellipse(sx, sy, 0.15 * s, 0.12 * s, wobble=random_wobble(rng, 0.1)) * cavity
        sc.paint(stomach * soft_edge(np.abs(stomach - 0.5) - 0.3, 0.2), rng.uniform(30, 50))
        sc.paint(f.ellipse(sx, sy, 0.15 * s - 2 * mm, 0.12 * s - 2 * mm) * stomach, rng.uniform(10, 30))
        sc.paint(f.ellipse(sx, sy, 0.15 * s - 2 * mm, 0.12 * s - 2 * mm) * stomach
                 * soft_edge(f.y - (sy - rng.uniform(0.0, 0.06) * s), f.pixel), -1000.0)


def _lungs(sc: _Scene, lung: np.ndarray, heart: tuple | None) -> None:
    """Parenchyma with a posterior density gradient, the vessel tree's cross-section and nodules."""
    rng, f, s, mm, depth = sc.rng, sc.f, sc.s, sc.mm, sc.body.half_depth
    dependent = np.clip(f.y / depth, -1, 1) * rng.uniform(15, 40)
    sc.paint(lung, rng.uniform(-905, -850) + dependent + sc.texture(15, 10))
    hilum_y = (heart[1] + 0.5 * heart[3]) if heart else -0.05 * depth
    hila = [(side * rng.uniform(0.16, 0.24) * s, hilum_y + rng.uniform(-0.05, 0.05)) for side in (-1, 1)]
    slab_z, slab_mm = rng.uniform(-30, 30) * mm, rng.uniform(2.0, 4.0)
    points = np.concatenate([_hilar_tree(rng, hilum, side, mm, slab_z, slab_mm) for hilum, side in zip(hila, (-1, 1))]
                            + [_peripheral_vessels(sc, lung, hila)])
    vessels = disc_mask(f, points) * np.clip(lung * 1.5 - 0.5, 0, 1)
    sc.paint(vessels, rng.uniform(30, 60) + 0.4 * (sc.blood - 40))
    for _ in range(rng.poisson(1.0)):  # nodules: solid or ground glass, irregular
        point = sc.random_point(lung)
        if point is not None:
            r = rng.uniform(2.5, 9) * mm
            solid = rng.random() < 0.75
            sc.paint(f.ellipse(*point, r, r * rng.uniform(0.75, 1), rng.uniform(0, 3),
                               random_wobble(rng, 0.3 if solid else 0.1)) * lung,
                     rng.uniform(10, 60) if solid else rng.uniform(-650, -400))


def thorax_phantom(size: int, seed: int, zoom: float = 1.0, view: tuple[float, float] = (0.0, 0.0)) -> np.ndarray:
    """One random axial thorax slice, (size, size) float32 in HU.

    The same ``(size, seed)`` always gives the same image; seeds vary the
    anatomy (body size and shape, level: great vessels / heart / liver dome,
    organ sizes and positions, vessels, lesions), contrast phase, texture and
    noise. ``zoom`` < 1 shows the same anatomy in a smaller field of view
    (``zoom`` x 38 cm) centred on ``view`` (in units of the full view, whose
    edges are at -1 and 1), like a targeted reconstruction.
    """
    if size < 8:
        raise ValueError(f"phantom size must be >= 8, got {size}")
    if not 0 < zoom <= 1:
        raise ValueError(f"zoom must lie in (0, 1], got {zoom}")
    sc = _Scene(size, seed, zoom, view)
    rng, f, s, mm, depth, blood = sc.rng, sc.f, sc.s, sc.mm, sc.body.half_depth, sc.blood
    cavity = _chest_wall(sc)
    spine = _spine_geometry(sc)
    sc.paint(cavity, rng.uniform(-100, -70) + sc.texture(5, 5))  # mediastinal fat

    # Mediastinal structures (painted after the lungs) and the region they take from the lungs.
    mediastinum = f.ellipse(rng.uniform(-0.02, 0.02), -0.15 * depth, rng.uniform(0.1, 0.15) * s, 0.9 * depth)
    structures: list[tuple[np.ndarray, float]] = []
    aorta = (rng.uniform(0.04, 0.1) * s, spine["vb_y"] - spine["vb_b"] - rng.uniform(0.06, 0.1) * s,
             rng.uniform(0.07, 0.095) * s)
    mediastinum = np.maximum(mediastinum, f.ellipse(aorta[0], aorta[1], aorta[2] + 3 * mm, aorta[2] + 3 * mm))
    structures.append((f.ellipse(aorta[0], aorta[1], aorta[2], aorta[2]), blood + rng.uniform(-10, 10)))
    oesophagus = (aorta[0] - aorta[2] - rng.uniform(0.02, 0.04) * s, aorta[1] - rng.uniform(0.0, 0.04) * s)
    structures.append((f.ellipse(*oesophagus, 0.035 * s, 0.028 * s), rng.uniform(30, 50)))
    if rng.random() < 0.5:
        structures.append((f.ellipse(*oesophagus, 0.01 * s, 0.007 * s), -950.0))
    heart, liver = None, np.zeros_like(cavity)
    if sc.level == "upper":
        mediastinum = np.maximum(mediastinum, f.ellipse(0, -0.3 * depth, rng.uniform(0.18, 0.24) * s, 0.45 * depth))
        asc = (-rng.uniform(0.03, 0.09) * s, -rng.uniform(0.2, 0.35) * depth, rng.uniform(0.075, 0.095) * s)
        pa = (rng.uniform(0.08, 0.13) * s, asc[1] + rng.uniform(-0.02, 0.04), rng.uniform(0.07, 0.09) * s)
        svc = (asc[0] - asc[2] - rng.uniform(0.03, 0.05) * s, asc[1] + 0.02, rng.uniform(0.03, 0.045) * s)
        for cx, cy, r in (asc, pa, svc):
            structures.append((f.ellipse(cx, cy, r, r * rng.uniform(0.9, 1.0)), blood + rng.uniform(-15, 15)))
        trachea = (rng.uniform(-0.02, 0.02) * s, oesophagus[1] - rng.uniform(0.08, 0.11) * s,
                   rng.uniform(0.05, 0.065) * s)
        structures.append((f.ellipse(*trachea[:2], trachea[2] + 2 * mm, trachea[2] * 0.85 + 2 * mm), 40.0))
        structures.append((f.ellipse(*trachea[:2], trachea[2], trachea[2] * 0.85), -990.0))
    else:
        shrink = 0.85 if sc.level == "lower" else 1.0
        heart = (rng.uniform(0.06, 0.16) * s, -depth * rng.uniform(0.28, 0.42) - (0.04 if shrink < 1 else 0.0),
                 rng.uniform(0.32, 0.42) * s * shrink, rng.uniform(0.27, 0.34) * s * shrink, -rng.uniform(0.3, 0.7))
        hx, hy, ha, hb, angle = heart
        mediastinum = np.maximum(mediastinum, f.ellipse(hx, hy, ha + 0.02 * s, hb + 0.02 * s, angle))
        if sc.level == "lower":
            rim = sc.shell(1.0 - sc.cavity_radius + rng.uniform(0.0, 0.05))  # lung left around the dome
            liver = f.ellipse(-rng.uniform(0.4, 0.55) * s, rng.uniform(0.05, 0.25) * depth, rng.uniform(0.28, 0.42) * s,
                              rng.uniform(0.35, 0.55) * depth, rng.uniform(-0.5, 0.2), random_wobble(rng, 0.08)) * rim

    lung = cavity * (1 - mediastinum) * (1 - _spine_block(sc, spine)) * (1 - liver)
    _lungs(sc, lung, heart)
    sc.paint(cavity * _spine_block(sc, spine) * (1 - lung), sc.muscle)
    for mask, value in structures:
        sc.paint(mask, value)
    if heart is not None:
        _heart(sc, heart)
    if sc.level == "lower":
        _abdomen(sc, liver, cavity)
    if rng.random() < 0.3:  # enlarged lymph node
        sc.paint(f.ellipse(rng.uniform(-0.1, 0.1) * s, rng.uniform(-0.3, 0.1) * depth, rng.uniform(4, 9) * mm,
                           rng.uniform(3, 7) * mm, rng.uniform(0, 3)) * mediastinum * (1 - lung), rng.uniform(25, 45))
    _spine(sc, spine)
    _ribs(sc)

    # Point spread, averaging down, correlated noise.
    hu = ndimage.gaussian_filter(sc.hu, 0.6)
    hu = hu.reshape(size, SUPERSAMPLE, size, SUPERSAMPLE).mean(axis=(1, 3))
    noise = ndimage.gaussian_filter(rng.standard_normal((size, size)), 0.6)
    hu += noise * (rng.uniform(6, 18) / noise.std())
    return hu.astype(np.float32)
