"""How well do the held-out lines choose the anchor weight of the refinement that defers to the data?

Usage: python benchmarks/defer_choice.py [--prior ct-128] [--views 10 23 60] [--phantoms 6] [--set ct.h5]

For each validation slice (the real CT validation slices of ``recon.data.real_slices`` at 128², and the
first ``--phantoms`` slices of the validation split of ``--set``) and view count: FISTA-TV with the weight
``recon bench real`` tuned on the real validation slices (other view counts: the prior's ``refine_tv``), the
default score method (dds as the prior's
profile sets it), and for every mu of ``recon.samplers.defer.ANCHORS`` the refinement of the score result

    min_x 1/(2L) ||A x - y||^2 + lam TV(x) + mu/2 ||x - x_score||^2

with its PSNR (hindsight) and its held-out error (what ``refine_tv`` decides by: every 6th view held out,
the score method and the refinement on the rest). Prints a markdown table: the mu the rule chooses, its
PSNR, the best PSNR in hindsight, TV and score.
"""
from __future__ import annotations

import argparse
import dataclasses

import numpy as np
import torch
from provenance import header

TUNED_LAM = {10: 5.75e-5, 23: 1.81e-5, 60: 1.23e-5}
"""FISTA-TV weights tuned on the real validation slices at 128² by `recon bench real` (commit 4bcefe3)."""


def cases(phantoms: int, path: str | None) -> list[tuple[str, torch.Tensor]]:
    from recon.bench import load_split
    from recon.data import real_slices

    found = [(name, real_slices.load(name, 128)) for name in real_slices.names("ct", "validation")]
    if phantoms and path:
        images = load_split(path, "val", phantoms)
        found += [(f"phantom val {i}", images[i:i + 1]) for i in range(images.shape[0])]
    return found


def one_case(prior, x: torch.Tensor, views: int) -> dict:
    from recon.methods import BASELINES
    from recon.metrics import psnr
    from recon.samplers import DEFAULT_SAMPLER, defer, reconstruct, resolve_options
    from recon.tasks import SparseViewCT

    def db(image: torch.Tensor) -> float:
        return float(np.atleast_1d(psnr(image, x))[0])

    task = SparseViewCT(projections=views)
    problem = task.problem(x, 0)
    profile = resolve_options(prior, DEFAULT_SAMPLER, task.defaults_key)
    m, y, lam = problem.measurement, problem.y, TUNED_LAM.get(views, profile.refine_tv)
    options = dataclasses.replace(profile, refine_tv=0.0)  # the score result before the refinement
    full = m.P_inv(y)
    axis, keep_center = problem.holdout
    fit, held = defer.holdout_split(m, full, axis, defer.HOLDOUT_EVERY, keep_center)
    on_fit = reconstruct(prior, fit, fit.P(full), options, seed=0, progress=False).mean
    _, record = defer.choose_anchor_weight(m, on_fit, lam, (fit, held, full))
    score = reconstruct(prior, m, y, options, seed=0, progress=False).mean
    hindsight = {g: db(defer.anchored_tv(m, y, score, lam, torch.tensor([g]), defer.FINAL_ITERATIONS))
                 for g in defer.ANCHORS}
    chosen = record["refine_mu"][0]
    return {"tv": db(BASELINES["fista-tv"](m, y, lam=lam)), "score": db(score), "chosen": chosen,
            "chosen_db": hindsight[chosen], "best": max(hindsight, key=hindsight.get),
            "best_db": max(hindsight.values())}


def main() -> None:
    import priors

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--prior", default="ct-128")
    parser.add_argument("--views", type=int, nargs="+", default=[10, 23, 60])
    parser.add_argument("--phantoms", type=int, default=6)
    parser.add_argument("--set", help="an HDF5 set (recon data build) whose val split gives the phantom slices")
    args = parser.parse_args()
    prior = priors.load(args.prior, "cpu")
    print(header(f"Held-out choice of the anchor weight, prior {args.prior}, 128²") + "\n")
    print("| slice | views | FISTA-TV | score | chosen mu | refined | best mu (hindsight) | best |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for views in args.views:
        for name, x in cases(args.phantoms, args.set):
            r = one_case(prior, x, views)
            print(f"| {name} | {views} | {r['tv']:.2f} | {r['score']:.2f} | {r['chosen']:g} | {r['chosen_db']:.2f} | "
                  f"{r['best']:g} | {r['best_db']:.2f} |", flush=True)


if __name__ == "__main__":
    main()
