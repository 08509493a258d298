"""Does a TV-regularised data step anchored at the score result defer to the data on real slices?

Usage: python benchmarks/anchored_tv.py [--slices j2k-head ct-small-spine] [--views 10 23 60]

For each real slice (``recon.data.real_slices``, resized to 128²) and view count: FISTA-TV with the weight
``recon bench real`` tuned on the validation slices (``--lam``, one per view count), the default score
method (dds, 50 NFE, the bundled ct-128 prior), and the refinement

    min_x 1/(2L) ||A x - y||^2 + lam TV(x) + gamma/2 ||x - x_score||^2

by 100 FISTA iterations started at x_score (:func:`recon.samplers.defer.anchored_tv`, whose mu is gamma here),
for each ``--gammas`` (gamma 0: FISTA-TV warm-started at the score result). Prints a markdown table of PSNR (dB).
"""
from __future__ import annotations

import argparse

import numpy as np
import torch
from provenance import header

TUNED_LAM = {10: 5.75e-5, 23: 1.81e-5, 60: 1.23e-5}
"""FISTA-TV weights tuned on the validation slices at 128² by `recon bench real` (commit 4bcefe3)."""


def main() -> None:
    import priors
    from recon.data import real_slices
    from recon.methods import BASELINES
    from recon.metrics import psnr
    from recon.samplers import DEFAULT_SAMPLER, defer, reconstruct, resolve_options
    from recon.tasks import SparseViewCT

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--slices", nargs="+", default=["j2k-head", "ct-small-spine"])
    parser.add_argument("--views", type=int, nargs="+", default=[10, 23, 60])
    parser.add_argument("--gammas", type=float, nargs="+", default=[0.0, 0.01, 0.1, 1.0])
    args = parser.parse_args()
    prior = priors.load("ct-128", "cpu")
    print(header("Anchored TV refinement of the score result, real slices at 128²") + "\n")
    print("| slice | views | FISTA-TV | score | " + " | ".join(f"gamma {g:g}" for g in args.gammas) + " |")
    print("|---|---:|---:|---:|" + "---:|" * len(args.gammas))
    for name in args.slices:
        x = real_slices.load(name, 128)
        for views in args.views:
            task = SparseViewCT(projections=views)
            problem = task.problem(x, 0)
            m, y, lam = problem.measurement, problem.y, TUNED_LAM.get(views, 1e-5)
            tv = BASELINES["fista-tv"](m, y, lam=lam)
            options = resolve_options(prior, DEFAULT_SAMPLER, task.defaults_key, refine_tv=0.0)  # before refinement
            score = reconstruct(prior, m, y, options, seed=0, progress=False).mean
            refined = [defer.anchored_tv(m, y, score, lam, torch.tensor([g]), 100) for g in args.gammas]
            cells = [float(np.atleast_1d(psnr(image, x))[0]) for image in [tv, score, *refined]]
            print(f"| {name} | {views} | " + " | ".join(f"{c:.2f}" for c in cells) + " |", flush=True)


if __name__ == "__main__":
    main()
