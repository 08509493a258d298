"""Measured CT in the user's geometry: fan/parallel operators, fan-beam FBP, GEOM.json, `recon ct --geometry`."""
from __future__ import annotations

import json
import math

import nibabel as nib
import numpy as np
import pytest
import torch

from operators import ScanGeometry, ScanTransform
from recon.cli import main

N = 64
FAN = dict(source_origin=2.5 * N, origin_detector=1.5 * N)


def _fan(angles: np.ndarray) -> ScanGeometry:
    return ScanGeometry(N, tuple(angles.tolist()), 2 * N, 1.0, "fan", **FAN)


def _disk_sinogram(geometry: ScanGeometry, centre: tuple[float, float], radius: float) -> np.ndarray:
    """Exact line integrals of a unit disk (pixels) along every ray of ``geometry``: chord 2 sqrt(r² - t²)."""
    vectors = geometry.vectors()
    bins = np.arange(geometry.n_detectors) - (geometry.n_detectors - 1) / 2
    source, detector, step = vectors[:, None, 0:2], vectors[:, None, 2:4], vectors[:, None, 4:6]
    points = detector + bins[None, :, None] * step  # (V, D, 2) bin centres
    direction = points - source
    direction /= np.linalg.norm(direction, axis=-1, keepdims=True)
    offset = np.asarray(centre) - source
    distance = np.abs(offset[..., 0] * direction[..., 1] - offset[..., 1] * direction[..., 0])
    return 2 * np.sqrt(np.clip(radius ** 2 - distance ** 2, 0, None))


def _disk_image(centre: tuple[float, float], radius: float, size: int = N) -> np.ndarray:
    coords = np.arange(size) - (size - 1) / 2
    x, y = coords[None, :], coords[::-1, None]
    return ((x - centre[0]) ** 2 + (y - centre[1]) ** 2 < radius ** 2).astype(np.float64)


@pytest.mark.parametrize("beam", ["parallel", "fan"])
def test_scan_transform_adjoint(beam):
    angles = np.linspace(0, 2 * np.pi if beam == "fan" else np.pi, 40, endpoint=False)
    geometry = (_fan(angles) if beam == "fan" else
                ScanGeometry(N, tuple(angles.tolist()), 95, 0.7, "parallel"))
    transform = ScanTransform(geometry)
    g = torch.Generator().manual_seed(0)
    x = torch.rand((2, 1, N, N), generator=g)
    y = torch.rand((2, 1, *geometry.sino_shape), generator=g)
    views = torch.tensor([0, 7, 21])
    for v in (None, views):
        ax = transform.forward(x, v)
        lhs = (ax * (y if v is None else y[:, :, v])).sum().double()
        rhs = (x * transform.adjoint(y if v is None else y[:, :, v], v)).sum().double()
        # float32 sums of ~1e5 positive terms: relative round-off ~ sqrt(1e5) * 6e-8 = 2e-5
        assert abs(lhs - rhs) <= 1e-4 * abs(lhs)
    astra_path = transform.forward(x, views)  # the first calls go through astra's own projector
    for _ in range(10):
        matrix_path = transform.forward(x, views)  # later ones through the system matrix
    assert torch.allclose(astra_path, matrix_path, rtol=1e-4, atol=1e-4 * float(astra_path.abs().max()))


@pytest.mark.parametrize("arc", ["full", "short"])
def test_fan_beam_fbp_reconstructs_an_analytic_disk(arc):
    magnification = (FAN["source_origin"] + FAN["origin_detector"]) / FAN["source_origin"]
    fan_half_angle = math.atan((N - 0.5) / magnification / FAN["source_origin"])  # 2N bins of 1 px: outer bin centre
    if arc == "full":
        angles = np.linspace(0, 2 * np.pi, 180, endpoint=False)
    else:  # 180 degrees plus the fan angle (plus a margin): Parker weights
        angles = np.linspace(0.4, 0.4 + np.pi + 2 * fan_half_angle + 0.1, 150)
    geometry = _fan(angles)
    centre, radius = (6.0, -4.0), 18.0
    sino = torch.from_numpy(_disk_sinogram(geometry, centre, radius)).float()[None, None]
    image = ScanTransform(geometry).fbp(sino)[0, 0].double().numpy()
    truth = _disk_image(centre, radius)
    coords = np.arange(N) - (N - 1) / 2
    x, y = coords[None, :], coords[::-1, None]
    edge = np.abs(np.hypot(x - centre[0], y - centre[1]) - radius) < 2.5  # the blurred rim
    error = np.abs(image - truth)[~edge]
    # a discrete ramp filter and linear interpolation: a few percent of the disk's height away from its rim
    assert error.mean() < 0.02 and np.percentile(error, 99) < 0.1
    assert abs(image[truth > 0].mean() - 1.0) < 0.02


def _write_case(tmp_path, views: int = 90, beam: str = "fan", **changes):
    """A GEOM.json (mm) and the sinogram of a water disk with a bone insert made by ASTRA in that geometry."""
    import astra

    spacing = 2.0
    angles = np.linspace(0, 2 * np.pi if beam == "fan" else np.pi, views, endpoint=False)
    geometry = {"beam": beam, "angles_rad": angles.tolist(), "detector_count": 2 * N,
                "detector_spacing_mm": 2.0, "image_size": N, "pixel_spacing_mm": spacing, "mu_water_per_mm": 0.02}
    if beam == "fan":
        geometry.update(source_origin_mm=2.5 * N * spacing, origin_detector_mm=1.5 * N * spacing)
    hu = np.where(_disk_image((0, 0), 24) > 0, 0.0, -1000.0) + 1000.0 * _disk_image((8, 5), 5)
    mu = (0.02 * (1 + hu / 1000)).astype(np.float32)
    volume = astra.create_vol_geom(N, N)
    if beam == "fan":
        proj = astra.create_proj_geom("fanflat", 2.0 / spacing, 2 * N, angles, 2.5 * N, 1.5 * N)
        projector = astra.create_projector("line_fanflat", proj, volume)
    else:
        proj = astra.create_proj_geom("parallel", 2.0 / spacing, 2 * N, angles)
        projector = astra.create_projector("linear", proj, volume)
    sid, sino = astra.create_sino(mu, projector)
    astra.data2d.delete(sid)
    geometry.update(changes)
    (tmp_path / "geom.json").write_text(json.dumps(geometry))
    np.save(tmp_path / "sino.npy", (sino * spacing).astype(np.float32))
    np.save(tmp_path / "image.npy", hu.astype(np.float32))
    return tmp_path / "geom.json", tmp_path / "sino.npy", hu


@pytest.mark.parametrize("beam", ["fan", "parallel"])
def test_recon_ct_reconstructs_a_measured_sinogram(tmp_path, beam):
    geom, sino, hu = _write_case(tmp_path, beam=beam)
    out = tmp_path / "out"
    assert main(["ct", "--geometry", str(geom), str(sino), "--method", "fbp", "-o", str(out), "--quiet"]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert "mean" not in metrics and metrics["data_residual"]["method"] < 0.05
    result = np.load(out / "sino_fbp.npy")[0]
    inside = _disk_image((0, 0), 20) > 0
    assert abs(np.median(result[inside]) - 0.0) < 30  # water at 0 HU (to the FBP's ripple)
    assert np.median(result[_disk_image((0, 0), 40) == 0]) < -900  # air
    assert result[_disk_image((8, 5), 3) > 0].mean() > 600  # the bone insert at +1000 HU
    nifti = nib.load(str(out / "sino_fbp.nii.gz"))
    assert nifti.header.get_zooms()[:2] == (2.0, 2.0)


def test_recon_ct_geometry_score_and_simulated_study(tmp_path):
    geom, sino, hu = _write_case(tmp_path, views=23)
    out = tmp_path / "score"
    assert main(["ct", "--geometry", str(geom), str(sino), "--resample", "--steps", "3", "-o", str(out),
                 "--quiet"]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["method"] == "score-dds" and metrics["resampled_to"] == 128
    # the geometry's 2 mm pixels on N = 64 are 1 mm on ct-128's 128² grid, below its 1.72 mm / 1.5: a warning
    spacing = metrics["pixel_spacing"]
    assert (spacing["scan_mm"], spacing["on_prior_grid_mm"]) == (2.0, 1.0) and "1 mm on prior ct-128" in spacing["warning"]
    assert metrics["data_residual"]["method"] < metrics["data_residual"]["fbp"]
    study = tmp_path / "study"  # an image input: its sinogram simulated in the geometry, 10 of its views
    assert main(["ct", "--geometry", str(geom), str(tmp_path / "image.npy"), "--projections", "10",
                 "--method", "fista-tv", "-o", str(study), "--quiet"]) == 0
    metrics = json.loads((study / "metrics.json").read_text())
    assert metrics["mean"]["psnr"] > metrics["mean"]["fbp_psnr"] + 3
    assert "10 of 23 views" in metrics["measurement"]


@pytest.mark.parametrize("change, message", [
    ({"beam": "cone"}, "'beam' must be"),
    ({"detector_count": 0}, "'detector_count' = 0"),
    ({"detector_count": 12.5}, "'detector_count' must be an integer"),
    ({"pixel_spacing_mm": -1}, "'pixel_spacing_mm' = -1"),
    ({"angles_rad": []}, "'angles_rad' must be a non-empty list"),
    ({"angles_rad": [0, 90, 180]}, "angles are in radians"),
    ({"source_origin_mm": 10.0}, "lies inside the image"),
    ({"detector_spacing": 1.0}, "unknown field(s) detector_spacing"),
    ({"image_size": None}, "'image_size' must be an integer"),
])
def test_bad_geometry_is_one_line_exit_2(tmp_path, capsys, change, message):
    geom, sino, _ = _write_case(tmp_path, **change)
    out = tmp_path / "out"
    assert main(["ct", "--geometry", str(geom), str(sino), "--method", "fbp", "-o", str(out)]) == 2
    error = capsys.readouterr().err.strip()
    assert message in error and len(error.splitlines()) == 1
    assert not out.exists()


def test_bad_sinograms_are_one_line_exit_2(tmp_path, capsys):
    geom, sino, _ = _write_case(tmp_path)
    cases = {"shape": np.zeros((90, 100), np.float32), "counts": np.full((90, 2 * N), 4e4, np.float32),
             "nan": np.full((90, 2 * N), np.nan, np.float32)}
    messages = {"shape": "disagrees with the geometry", "counts": "expected line integrals", "nan": "NaN"}
    for name, data in cases.items():
        np.save(tmp_path / f"{name}.npy", data)
        out = tmp_path / f"out_{name}"
        assert main(["ct", "--geometry", str(geom), str(tmp_path / f"{name}.npy"), "--method", "fbp",
                     "-o", str(out)]) == 2
        error = capsys.readouterr().err.strip()
        assert messages[name] in error and len(error.splitlines()) == 1 and not out.exists()
    geometry = json.loads(geom.read_text())
    del geometry["source_origin_mm"]
    geom.write_text(json.dumps(geometry))
    assert main(["ct", "--geometry", str(geom), str(sino), "-o", str(tmp_path / "o")]) == 2
    assert "missing field(s) source_origin_mm" in capsys.readouterr().err
