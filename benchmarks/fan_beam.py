"""Measured fan-beam sinograms of the real AAPM slice through `recon ct --geometry`: a markdown table.

    python benchmarks/fan_beam.py [--views 360 23] [--methods fbp fista-tv score]

The slice (``shared/data/real``, 512² resized to 256² with anti-aliasing, 1.4 mm) is projected by ASTRA in the
issue's fan geometry (736 bins of 1.2858 mm, source 595 mm, detector 490.6 mm beyond the centre,
views over the full turn) as line integrals, written as sino.npy + GEOM.json, and each method
reconstructs it with the CLI as a user would (the score prior on its 128² grid with --resample).
PSNR/SSIM against the 256² slice, data range 1 on model units.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from provenance import header

SIZE, SPACING, MU_WATER = 256, 1.4, 0.0192
FAN = {"detector_count": 736, "detector_spacing_mm": 1.2858, "source_origin_mm": 595.0, "origin_detector_mm": 490.6}


def real_slice() -> np.ndarray:
    """The AAPM slice (:func:`recon.data.figures.real_ct_slice`, approximate HU) in model units at 256²,
    CT numbers below -1024 HU read as air as the readers do."""
    from recon.data.figures import REAL_CT, real_ct_slice

    hu = real_ct_slice(size=SIZE)
    if hu is None:
        raise SystemExit(f"{REAL_CT}: the real slice is missing (set RECON_REAL_CT)")
    return ((np.maximum(hu, -1024) + 1000) / 4000).astype(np.float32)


def write_case(folder: Path, model: np.ndarray, views: int) -> tuple[Path, Path]:
    """GEOM.json and sino.npy (line integrals made by ASTRA's line_fanflat projector) for ``views`` views."""
    import astra

    angles = np.linspace(0, 2 * np.pi, views, endpoint=False)
    geometry = {"beam": "fan", "angles_rad": angles.tolist(), **FAN, "image_size": SIZE,
                "pixel_spacing_mm": SPACING, "mu_water_per_mm": MU_WATER}
    mu = (4 * MU_WATER * model).astype(np.float32)  # x = (HU + 1000) / 4000, mu / mu_water = 4x
    proj = astra.create_proj_geom("fanflat", FAN["detector_spacing_mm"] / SPACING, FAN["detector_count"], angles,
                                  FAN["source_origin_mm"] / SPACING, FAN["origin_detector_mm"] / SPACING)
    projector = astra.create_projector("line_fanflat", proj, astra.create_vol_geom(SIZE, SIZE))
    sid, sino = astra.create_sino(mu, projector)
    astra.data2d.delete(sid)
    (folder / f"geom{views}.json").write_text(json.dumps(geometry))
    np.save(folder / f"sino{views}.npy", (sino * SPACING).astype(np.float32))
    return folder / f"geom{views}.json", folder / f"sino{views}.npy"


def run_method(geometry: Path, sino: Path, method: str, out: Path) -> float:
    """Run `recon ct` on the sinogram; returns its wall time in seconds."""
    extra = [] if method == "score" else ["--method", method]
    started = time.perf_counter()
    subprocess.run([sys.executable, "-m", "recon.cli", "ct", "--geometry", str(geometry), str(sino), *extra,
                    "-o", str(out), "--quiet"], check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - started


def score(out: Path, model: np.ndarray) -> tuple[float, float]:
    from recon.metrics import psnr, ssim

    result = np.load(next(out.glob("*.npy")))[0]
    x = torch.from_numpy(((result + 1000) / 4000).clip(0, 1))[None, None].float()
    reference = torch.from_numpy(model)[None, None]
    return float(np.mean(psnr(x, reference))), float(np.mean(ssim(x, reference)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--views", type=int, nargs="+", default=[360, 23])
    parser.add_argument("--methods", nargs="+", default=["fbp", "fista-tv", "score"])
    args = parser.parse_args()
    model = real_slice()
    print(header("fan-beam sinograms of the real AAPM slice (256², 1.4 mm), `recon ct --geometry`"))
    print("\n| views | method | PSNR | SSIM | data residual | wall s |\n|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        for views in args.views:
            geometry, sino = write_case(Path(tmp), model, views)
            for method in args.methods:
                out = Path(tmp) / f"{method}{views}"
                wall = run_method(geometry, sino, method, out)
                value, similarity = score(out, model)
                residual = json.loads((out / "metrics.json").read_text())["data_residual"]["method"]
                print(f"| {views} | {method} | {value:.2f} | {similarity:.3f} | {residual:.2e} | {wall:.1f} |",
                      flush=True)


if __name__ == "__main__":
    main()
