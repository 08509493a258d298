"""A measured CT scan's geometry file (GEOM.json), in millimetres with astra-toolbox's meanings.

    {"beam": "fan", "angles_rad": [0.0, 0.0175, ...], "detector_count": 736, "detector_spacing_mm": 1.2858,
     "source_origin_mm": 595.0, "origin_detector_mm": 490.6, "image_size": 256, "pixel_spacing_mm": 1.4,
     "mu_water_per_mm": 0.0192}

``beam`` is ``parallel`` or ``fan`` (a flat detector, astra ``fanflat``); a parallel beam takes no
source or detector distances. The sinogram holds line integrals of mu (dimensionless, -ln I/I0):
astra's ``create_sino`` of the mu image (mm^-1) with the distances divided by the pixel spacing, times
the pixel spacing. ``mu_water_per_mm`` (default 0.0192, water near 70 keV) sets HU = 1000 (mu/mu_water - 1).
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from operators import ScanGeometry
from recon.errors import InputError
from recon.units import HU_PER_UNIT

MU_WATER_PER_MM = 0.0192
FIELDS = {"beam", "angles_rad", "detector_count", "detector_spacing_mm", "source_origin_mm", "origin_detector_mm",
          "image_size", "pixel_spacing_mm", "mu_water_per_mm"}
FAN_ONLY = ("source_origin_mm", "origin_detector_mm")


@dataclass(frozen=True)
class MeasuredGeometry:
    """A scan geometry file: the scan in pixels of its ``image_size`` grid, and the physical scale.

    Attributes:
        scan: the geometry in pixel units of the native (image_size) grid.
        pixel_spacing_mm: the native grid's pixel spacing.
        mu_water_per_mm: water's attenuation, for HU.
    """

    scan: ScanGeometry
    pixel_spacing_mm: float
    mu_water_per_mm: float

    def scan_at(self, size: int) -> ScanGeometry:
        """The scan seen on a ``size x size`` grid over the same field of view."""
        return self.scan if size == self.scan.size else self.scan.rescaled(size)

    def line_integral_per_model_unit(self, size: int) -> float:
        """Line integrals (dimensionless) per unit of ``A x`` for model-unit images x on a ``size`` grid:
        mu = HU_PER_UNIT / 1000 * mu_water * x (mm^-1), lengths in pixels of side fov / size (mm)."""
        spacing = self.pixel_spacing_mm * self.scan.size / size
        return HU_PER_UNIT / 1000.0 * self.mu_water_per_mm * spacing


def _number(geometry: dict, name: str, path: Path, low: float, high: float, integer: bool = False) -> float:
    value = geometry.get(name)
    kind = "an integer" if integer else "a number"
    if isinstance(value, bool) or not isinstance(value, (int, float)) or (integer and not isinstance(value, int)):
        raise InputError(f"{path}: '{name}' must be {kind}, got {json.dumps(value)}")
    if not (math.isfinite(value) and low <= value <= high):
        raise InputError(f"{path}: '{name}' = {value:g} is outside [{low:g}, {high:g}]")
    return value


def _angles(geometry: dict, path: Path) -> tuple[float, ...]:
    angles = geometry.get("angles_rad")
    if not isinstance(angles, list) or not angles or not all(
            isinstance(a, (int, float)) and not isinstance(a, bool) and math.isfinite(a) for a in angles):
        raise InputError(f"{path}: 'angles_rad' must be a non-empty list of finite numbers (radians)")
    if max(abs(a) for a in angles) > 8 * math.pi:
        raise InputError(f"{path}: 'angles_rad' reach {max(abs(a) for a in angles):.1f}; angles are in radians")
    if len(set(angles)) != len(angles):
        raise InputError(f"{path}: 'angles_rad' repeat a view angle")
    return tuple(float(a) for a in angles)


def read_geometry(path: Path) -> MeasuredGeometry:
    """Parse and check GEOM.json (once per version of the file); any missing, unknown or absurd field is an
    InputError naming it."""
    try:
        stat = Path(path).stat()
    except FileNotFoundError:
        raise InputError(f"{path}: no such geometry file") from None
    return _parse(Path(path), stat.st_mtime_ns, stat.st_size)


@lru_cache(maxsize=8)
def _parse(path: Path, mtime_ns: int, size: int) -> MeasuredGeometry:
    try:
        geometry = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InputError(f"{path}: not a JSON geometry file ({str(exc).splitlines()[0]})") from None
    if not isinstance(geometry, dict):
        raise InputError(f"{path}: a geometry file holds a JSON object")
    unknown = sorted(set(geometry) - FIELDS)
    if unknown:
        raise InputError(f"{path}: unknown field(s) {', '.join(unknown)}; known: {', '.join(sorted(FIELDS))}")
    beam = geometry.get("beam")
    if beam not in ("parallel", "fan"):
        raise InputError(f"{path}: 'beam' must be \"parallel\" or \"fan\", got {json.dumps(beam)}")
    required = ["angles_rad", "detector_count", "detector_spacing_mm", "image_size", "pixel_spacing_mm"]
    required += list(FAN_ONLY) if beam == "fan" else []
    missing = [name for name in required if name not in geometry]
    if missing:
        raise InputError(f"{path}: missing field(s) {', '.join(missing)} for a {beam} beam")
    if beam == "parallel" and any(name in geometry for name in FAN_ONLY):
        raise InputError(f"{path}: a parallel beam takes no {' or '.join(FAN_ONLY)}")
    spacing = _number(geometry, "pixel_spacing_mm", path, 1e-3, 100.0)
    size = int(_number(geometry, "image_size", path, 8, 4096, integer=True))
    mu_water = _number({"mu_water_per_mm": MU_WATER_PER_MM, **geometry}, "mu_water_per_mm", path, 1e-3, 1.0)
    fan = {}
    if beam == "fan":
        fan = {"source_origin": _number(geometry, "source_origin_mm", path, 1e-3, 1e5) / spacing,
               "origin_detector": _number(geometry, "origin_detector_mm", path, 0.0, 1e5) / spacing}
    try:
        scan = ScanGeometry(size, _angles(geometry, path),
                            int(_number(geometry, "detector_count", path, 1, 100000, integer=True)),
                            _number(geometry, "detector_spacing_mm", path, 1e-4, 100.0) / spacing, beam, **fan)
    except ValueError as exc:
        raise InputError(f"{path}: {exc}") from None
    return MeasuredGeometry(scan, spacing, mu_water)
