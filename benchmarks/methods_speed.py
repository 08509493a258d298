"""Seconds per slice and peak memory of every method at 128², 256² and 512².

Usage: python benchmarks/methods_speed.py [--sizes 128 256 512] [--views 23] [--methods fbp sirt ...]

Each (size, method) runs in its own process, so that its peak resident memory (``ru_maxrss``) is its
own: one thorax phantom slice (``recon.data.phantom_ct``) at that size and the method's task simulated
from it: sparse-view CT with ``--views`` views (fbp, sirt, cgls, fista-tv, score), 8x MRI (zero-filled,
cs-tv, cs-wavelet, score-mri; the phantom slice as a magnitude image) or metal artifact removal with
simulated metal (li, nmar, score-mar); the method with its defaults (score: the default sampler with the
bundled prior's tuned options, as ``recon ct`` runs it: the prior on its 128² grid through A U and the
refinement on the slice's grid), timed after
a warm-up call that builds the operator (matrix load). The table gives the time per slice, the ratio to
128² (the pixel ratio is 16 at 512²) and the peak.
"""
from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time

import torch
from provenance import header

METHODS = {"fbp": "ct", "sirt": "ct", "cgls": "ct", "fista-tv": "ct", "score": "ct",
           "zero-filled": "mri", "cs-tv": "mri", "cs-wavelet": "mri", "score-mri": "mri",
           "li": "mar", "nmar": "mar", "score-mar": "mar"}
"""Each method and the task it is timed on."""


def _slice(size: int) -> torch.Tensor:
    """One thorax phantom slice (1, 1, size, size) in model units."""
    from recon.data.phantom_ct import thorax_phantom
    from recon.units import hu_to_model

    image = torch.from_numpy(thorax_phantom(size, seed=7)).float()
    return hu_to_model(image)[None, None]


def _one(size: int, views: int, method: str) -> dict:
    """Time one method on one slice in this process; its seconds and this process's peak memory."""
    from recon.methods import BASELINES
    from recon.tasks import SparseViewCT

    from recon.tasks import MetalArtifacts, UndersampledMRI

    kind = METHODS[method]
    task = {"ct": SparseViewCT(projections=views), "mri": UndersampledMRI(accel=8),
            "mar": MetalArtifacts(simulate=True)}[kind]
    x = _slice(size)
    problem = task.problem(x, seed=0)
    if method.startswith("score"):
        import priors
        from recon.samplers import DEFAULT_SAMPLER, reconstruct, resolve_options

        prior = priors.load("mri-128" if kind == "mri" else "ct-128")
        options = resolve_options(prior, DEFAULT_SAMPLER, task.defaults_key)

        def run():
            return reconstruct(prior, problem.measurement, problem.y, options, progress=False,
                               holdout=problem.holdout).mean
    else:
        def run():
            return BASELINES[method](problem.measurement, problem.y)
    problem.measurement.A_adjoint(problem.y)  # warm-up: the operator is built (simulating y used it too)
    start = time.perf_counter()
    run()
    seconds = time.perf_counter() - start
    return {"seconds": seconds, "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[128, 256, 512])
    parser.add_argument("--views", type=int, default=23)
    parser.add_argument("--methods", nargs="+", default=list(METHODS), choices=METHODS)
    parser.add_argument("--one", nargs=2, metavar=("SIZE", "METHOD"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(_one(int(args.one[0]), args.views, args.one[1])))
        return
    print(header(f"One slice: sparse-view CT at {args.views} views, 8x MRI, MAR with simulated metal") + "\n")
    print("| task | method | size | s / slice | vs 128² | peak MB |")
    print("|---|---|---:|---:|---:|---:|")
    for method in args.methods:
        base = None
        for size in args.sizes:
            out = subprocess.run([sys.executable, __file__, "--views", str(args.views), "--one", str(size), method],
                                 capture_output=True, text=True, check=True).stdout
            result = json.loads(out.strip().splitlines()[-1])
            base = result["seconds"] if size == args.sizes[0] else base
            print(f"| {METHODS[method]} | {method} | {size} | {result['seconds']:.2f} | {result['seconds'] / base:.1f}x | "
                  f"{result['peak_mb']:.0f} |", flush=True)


if __name__ == "__main__":
    main()
