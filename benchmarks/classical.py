"""Classical rows of the paper's Tables 8.1-8.3 on the project's test sets.

Usage:
    python benchmarks/classical.py [--ct data/ct128.h5] [--mri data/mri128.h5] [--n 32] [--device cpu]
    python benchmarks/classical.py --tune [--n 16]   # grid search of the default weights on the val split

Evaluation (default): the first ``--n`` slices of the test split of each
file (datasets ``/{split}/images``, (N, 1, H, W) float32 model units).

* sparse-view CT, 10 / 20 / 23 of H views: FBP, FISTA-TV, SIRT (noiseless data);
* MRI, 4x / 8x / 24x equispaced columns: zero-filled, CS-TV, CS-wavelet,
  with the fastMRI-convention PSNR / SSIM alongside;
* MAR: each CT slice gets simulated implants as `recon mar --simulate-metal` does
  (:class:`recon.tasks.MetalArtifacts`, seed = slice index, 38 cm field of view as the thorax
  phantom): the metal is estimated from the corrupted image (> 3000 HU, dilated by one pixel)
  and its projection removed; LI and NMAR complete the sinogram. Metal pixels (inserted and
  reinserted) are excluded from the metrics.

PSNR / SSIM: data range 1 on model units, whole image (MAR: minus metal),
reconstructions clipped to [0, 1] (:mod:`recon.metrics`). Prints markdown
tables of mean +- std over slices.

``--tune`` runs the grid searches behind the defaults of the weighted
methods on the first ``--n`` validation slices, choosing the value with the
best PSNR averaged over the three settings of the task, and prints the grid.
"""
from __future__ import annotations

import argparse
import platform
import time
from pathlib import Path

import h5py
import numpy as np
import torch

from recon.baselines.fista_tv import fista_tv
from recon.baselines.iterative import cgls, sirt
from recon.methods import BASELINES
from recon.metrics import fastmri_psnr, fastmri_ssim, psnr, ssim
from recon.tasks import MetalArtifacts, SparseViewCT, UndersampledMRI

CT_VIEWS = (10, 20, 23)
MRI_ACCELS = (4, 8, 24)
CT_METHODS = ("fbp", "fista-tv", "sirt")
MRI_METHODS = ("zero-filled", "cs-tv", "cs-wavelet")
MAR_METHODS = ("li", "nmar")
FOV_CM = 38.0  # the thorax phantom's field of view

TUNING_GRIDS = {
    "fista-tv": [3e-6, 1e-5, 3e-5, 1e-4, 3e-4, 1e-3],
    "cs-tv": [1e-4, 3e-4, 1e-3, 3e-3, 1e-2],
    "cs-wavelet": [1e-4, 3e-4, 1e-3, 3e-3],
    "sirt": [10, 25, 50, 100, 200, 400, 800, 1600],
    "cgls": [5, 10, 20, 40, 80, 160],
}


def load(path: Path, split: str, n: int) -> torch.Tensor:
    """First ``n`` images of ``/{split}/images`` as (n, 1, H, W) float32."""
    with h5py.File(path, "r") as f:
        return torch.from_numpy(np.asarray(f[f"{split}/images"][:n], dtype=np.float32))


def batches(images: torch.Tensor, size: int):
    for start in range(0, images.shape[0], size):
        yield images[start:start + size]


def summary(values: list[float]) -> str:
    v = np.asarray(values, dtype=float)
    return f"{v.mean():.2f} ± {v.std():.2f}" if v.mean() > 1.5 else f"{v.mean():.3f} ± {v.std():.3f}"


def ct_problem(views: int, x: torch.Tensor):
    problem = SparseViewCT(projections=views).problem(x, 0)
    return problem.measurement, problem.y


def mri_problem(accel: int, x: torch.Tensor):
    problem = UndersampledMRI(accel=accel).problem(x, 0)
    return problem.measurement, problem.y


def evaluate_ct(images: torch.Tensor, device: torch.device, batch: int) -> list[dict]:
    rows = []
    for views in CT_VIEWS:
        scores = {name: {"psnr": [], "ssim": []} for name in CT_METHODS}
        times = {name: 0.0 for name in CT_METHODS}
        for x in batches(images, batch):
            x = x.to(device)
            m, y = ct_problem(views, x)
            for name in CT_METHODS:
                start = time.perf_counter()
                out = BASELINES[name](m, y)
                times[name] += time.perf_counter() - start
                scores[name]["psnr"] += list(psnr(out, x))
                scores[name]["ssim"] += list(ssim(out, x))
        for name in CT_METHODS:
            rows.append({"task": "sparse-view CT", "setting": f"{views} views", "method": name, **scores[name],
                         "seconds": times[name] / images.shape[0]})
    return rows


def evaluate_mri(images: torch.Tensor, device: torch.device, batch: int) -> list[dict]:
    rows = []
    for accel in MRI_ACCELS:
        scores = {name: {k: [] for k in ("psnr", "ssim", "fastmri_psnr", "fastmri_ssim")} for name in MRI_METHODS}
        times = {name: 0.0 for name in MRI_METHODS}
        for x in batches(images, batch):
            x = x.to(device)
            m, y = mri_problem(accel, x)
            for name in MRI_METHODS:
                start = time.perf_counter()
                out = BASELINES[name](m, y)
                times[name] += time.perf_counter() - start
                for key, fn in (("psnr", psnr), ("ssim", ssim), ("fastmri_psnr", fastmri_psnr),
                                ("fastmri_ssim", fastmri_ssim)):
                    scores[name][key] += list(fn(out, x))
        for name in MRI_METHODS:
            rows.append({"task": "MRI", "setting": f"{accel}x", "method": name, **scores[name],
                         "seconds": times[name] / images.shape[0]})
    return rows


def evaluate_mar(images: torch.Tensor, device: torch.device) -> list[dict]:
    task = MetalArtifacts(simulate=True, fov_cm=FOV_CM)
    scores = {name: {"psnr": [], "ssim": []} for name in MAR_METHODS}
    times = {name: 0.0 for name in MAR_METHODS}
    for index, x in enumerate(images):
        problem = task.problem(x[None].to(device), index)
        for name in MAR_METHODS:
            start = time.perf_counter()
            out = problem.finished(BASELINES[name](problem.measurement, problem.y))
            times[name] += time.perf_counter() - start
            scores[name]["psnr"] += list(psnr(out, problem.reference, mask=problem.keep))
            scores[name]["ssim"] += list(ssim(out, problem.reference, mask=problem.keep))
    return [{"task": "MAR", "setting": "all views minus metal trace", "method": name, **scores[name],
             "seconds": times[name] / images.shape[0]} for name in MAR_METHODS]


def markdown(rows: list[dict], fastmri: bool = False) -> str:
    head = "| task | setting | method | PSNR | SSIM |" + (" PSNR (fastMRI) | SSIM (fastMRI) |" if fastmri else "")
    head += " s / slice |"
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    for r in rows:
        cells = [r["task"], r["setting"], r["method"], summary(r["psnr"]), summary(r["ssim"])]
        if fastmri:
            cells += [summary(r["fastmri_psnr"]), summary(r["fastmri_ssim"])]
        cells.append(f"{r['seconds']:.3f}")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _grid_row(label: str, values: dict) -> str:
    return f"| {label} | " + " | ".join(f"{np.mean(p):.2f} / {np.mean(s):.3f}" for p, s in values.values()) + " |"


def tune(ct: torch.Tensor | None, mri: torch.Tensor | None, device: torch.device, methods: set[str]) -> None:
    """Grid searches on validation images; prints PSNR / SSIM per value and setting."""
    if ct is not None:
        x = ct.to(device)
        problems = {views: ct_problem(views, x) for views in CT_VIEWS}
        if "fista-tv" in methods:
            _tune_weight("fista-tv", problems, x, lambda m, y, lam: fista_tv(m, y, lam=lam))
        for name, method in (("sirt", sirt), ("cgls", cgls)):
            if name in methods:
                _tune_iterations(name, problems, x, method)
    if mri is not None:
        x = mri.to(device)
        problems = {accel: mri_problem(accel, x) for accel in MRI_ACCELS}
        for name in ("cs-tv", "cs-wavelet"):
            if name in methods:
                _tune_weight(name, problems, x, lambda m, y, lam, name=name: BASELINES[name](m, y, lam=lam))


def _report(name: str, settings, results: dict) -> None:
    print(f"\n{name}: mean PSNR / SSIM on validation slices")
    print("| value | " + " | ".join(str(s) for s in settings) + " |")
    print("|---|" + "---|" * len(settings))
    for value, per_setting in results.items():
        print(_grid_row(str(value), per_setting))
    best = max(results, key=lambda v: np.mean([np.mean(p) for p, _ in results[v].values()]))
    print(f"best {name} value (mean PSNR over settings): {best}")


def _tune_weight(name: str, problems: dict, x: torch.Tensor, run) -> None:
    results = {}
    for lam in TUNING_GRIDS[name]:
        results[lam] = {}
        for setting, (m, y) in problems.items():
            out = run(m, y, lam)
            results[lam][setting] = (psnr(out, x), ssim(out, x))
    _report(name, list(problems), results)


def _tune_iterations(name: str, problems: dict, x: torch.Tensor, method) -> None:
    grid = TUNING_GRIDS[name]
    results = {k: {} for k in grid}
    for setting, (m, y) in problems.items():
        def record(k: int, xk: torch.Tensor) -> None:
            if k + 1 in results:
                results[k + 1][setting] = (psnr(xk, x), ssim(xk, x))
        method(m, y, n_iter=max(grid), callback=record)
    _report(name, list(problems), results)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--ct", type=Path, default=Path("/work/data/ct128.h5"))
    parser.add_argument("--mri", type=Path, default=Path("/work/data/mri128.h5"))
    parser.add_argument("--n", type=int, default=32, help="slices per split (first n)")
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--tune", action="store_true", help="grid-search the defaults on the val split")
    parser.add_argument("--methods", nargs="*", default=sorted(TUNING_GRIDS), choices=sorted(TUNING_GRIDS),
                        help="methods to tune (default: all)")
    parser.add_argument("--skip", nargs="*", default=(), choices=("ct", "mri", "mar"))
    args = parser.parse_args()
    device = torch.device(args.device)
    split = "val" if args.tune else "test"
    ct = load(args.ct, split, args.n) if args.ct.exists() and "ct" not in args.skip else None
    mri = load(args.mri, split, args.n) if args.mri.exists() and "mri" not in args.skip else None
    print(f"# classical baselines, {split} split, first {args.n} slices; device {device} on {platform.node()}; "
          f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    if ct is None and mri is None:
        raise SystemExit(f"neither {args.ct} nor {args.mri} found")
    if args.tune:
        tune(ct, mri, device, set(args.methods))
        return
    print("PSNR / SSIM: data range 1 on model units, reconstruction clipped to [0, 1], whole image"
          " (MAR: metal pixels excluded); mean ± std over slices.\n")
    if ct is not None:
        print(markdown(evaluate_ct(ct, device, args.batch)) + "\n")
    if mri is not None:
        print(markdown(evaluate_mri(mri, device, args.batch), fastmri=True) + "\n")
    if ct is not None and "mar" not in args.skip:
        print(markdown(evaluate_mar(ct, device)) + "\n")


if __name__ == "__main__":
    main()
