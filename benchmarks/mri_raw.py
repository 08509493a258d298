"""`recon mri` on raw fastMRI-layout k-space: the score prior against CS-TV and zero-filled, per way of
meeting complex images (`--complex-prior`).

Usage:
    python benchmarks/mri_raw.py [--n 4] [--accel 4] [--priors demodulated magnitude parts]
                                 [--files single multi challenge] [--steps 50] [--taper 0.5]

Inputs (:mod:`recon.data.kspace_files`, written into a temporary folder): the first ``--n`` test slices
of the MR data (:func:`recon.data.mri_slices.plain_slice`, MNI template slices training never sees,
128²) with a smooth random phase, as

* ``single``: single-coil k-space (S, 256, 128) with its ``reconstruction_esc``, undersampled
  retrospectively at ``--accel``;
* ``multi``: 8 synthetic coils (S, 8, 256, 128) with ``reconstruction_rss``, coil maps by ESPIRiT;
* ``challenge``: the same 8-coil k-space already undersampled at ``--accel`` with ``mask`` and no
  reference; scored against the reference of the fully sampled file.

Each file is read by :class:`recon.tasks.UndersampledMRI` as `recon mri` reads it and every method runs
on the same problem (the pipeline's), the score prior with the bundled ``mri-128`` and its tuned
default sampler (dds, 50 levels, warm-started from CS-TV). Metrics on the reference's crop (the whole
128² here): fastMRI's PSNR / SSIM (data range = the reference's maximum, no clipping) and the project's
(data range 1 on model units, clipped). Prints a markdown table of means over slices.
"""
from __future__ import annotations

import argparse
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from recon.data.kspace_files import write_kspace_file
from recon.data.mri_slices import plain_slice
from recon.methods import BASELINES
from recon.metrics import fastmri_psnr, fastmri_ssim, psnr, ssim
from recon.samplers import DEFAULT_SAMPLER, reconstruct, resolve_options
from recon.tasks import UndersampledMRI, kspace

COILS = 8
METHODS = ("zero-filled", "cs-tv", "score")


def write_files(folder: Path, n: int, accel: float) -> dict[str, Path]:
    """The three input files of the module notes (magnitudes in arbitrary units, peak about 1000)."""
    slices = np.stack([plain_slice("test", 128, i) for i in range(n)]) * 1000.0
    return {"single": write_kspace_file(folder / "single.h5", slices, coils=0, seed=1),
            "multi": write_kspace_file(folder / "multi.h5", slices, coils=COILS, seed=2),
            "challenge": write_kspace_file(folder / "challenge.h5", slices, coils=COILS, accel=accel, seed=2)}


def evaluate(path: Path, truth, task: UndersampledMRI, prior, steps: int | None) -> dict[str, dict]:
    """Scores and seconds per slice of every method on the file's problem; ``truth`` (S, 1, N, N) model
    units, or None to use the file's own reference."""
    scan = task.read(path)
    problem = scan.problem(0, scan.n_slices, 128, 0, torch.device("cpu"))
    reference = scan.reference if truth is None else truth
    options = resolve_options(prior, DEFAULT_SAMPLER, task.defaults_key, **({"steps": steps} if steps else {}))
    rows = {}
    for method in METHODS:
        started = time.perf_counter()
        if method == "score":
            result = reconstruct(prior, problem.measurement, problem.y, options, progress=False,
                                 holdout=problem.holdout)
            output, nfe = result.mean, result.nfe
        else:
            output, nfe = BASELINES[method](problem.measurement, problem.y), 0
        seconds = (time.perf_counter() - started) / scan.n_slices
        image = problem.finished(output)
        rows[method] = {"nfe": nfe, "seconds": seconds,
                        **{name: float(np.mean(fn(image, reference))) for name, fn in
                           (("fastmri_psnr", fastmri_psnr), ("fastmri_ssim", fastmri_ssim), ("psnr", psnr),
                            ("ssim", ssim))}}
    return rows


def markdown(results: list[tuple[str, str, dict]]) -> str:
    head = ("| file | complex prior | method | PSNR (fastMRI) | SSIM (fastMRI) | PSNR | SSIM | NFE | s / slice |\n"
            "|---|---|---|---|---|---|---|---|---|")
    lines = [head]
    for kind, complex_prior, rows in results:
        for method, r in rows.items():
            lines.append(f"| {kind} | {complex_prior} | {method} | {r['fastmri_psnr']:.2f} | {r['fastmri_ssim']:.3f} | "
                         f"{r['psnr']:.2f} | {r['ssim']:.3f} | {r['nfe']} | {r['seconds']:.1f} |")
    return "\n".join(lines)


def main() -> None:
    import priors

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=4, help="test slices per file (default: 4)")
    parser.add_argument("--accel", type=float, default=4.0)
    parser.add_argument("--priors", nargs="+", default=["demodulated", "magnitude", "parts"],
                        help="--complex-prior values to compare")
    parser.add_argument("--files", nargs="+", default=["single", "multi", "challenge"])
    parser.add_argument("--steps", type=int, default=None, help="score sampler levels (default: the profile's)")
    parser.add_argument("--taper", type=float, default=None,
                        help="Tukey taper of the centre columns behind the phase (default: "
                             "recon.tasks.kspace.CENTRE_TAPER; 0: no window, 1: Hann)")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if args.taper is not None:
        kspace.CENTRE_TAPER = args.taper
    prior = priors.load("mri-128", "cpu")
    results = []
    with tempfile.TemporaryDirectory() as folder:
        files = write_files(Path(folder), args.n, args.accel)
        for complex_prior in args.priors:
            task = UndersampledMRI(accel=args.accel, complex_prior=complex_prior)
            truth = task.read(files["multi"]).reference  # the challenge file's y and scale are the multi file's
            for kind in args.files:
                rows = evaluate(files[kind], truth if kind == "challenge" else None, task, prior, args.steps)
                results.append((kind, complex_prior, rows))
                print("\n".join(markdown([results[-1]]).splitlines()[2:]), file=sys.stderr, flush=True)
    steps = f"score: {args.steps} levels" if args.steps else "score: the profile's levels"
    print(f"\n{args.n} test slices, {args.accel:g}x, {steps}, phase taper {kspace.CENTRE_TAPER:g}, "
          f"{platform.node()}, torch threads {args.threads}\n")
    print(markdown(results))


if __name__ == "__main__":
    main()
