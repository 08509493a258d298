"""`recon train`: train a score prior, or export a run as a shippable prior.

    recon train --data set.h5 -o runs/ct [--config base] [--steps N] ...
    recon train --data new.h5 -o runs/ct2 --init ct-128 --warmup 100 ...   (fine-tuning)
    recon train export runs/ct -o priors/bundled/ct-128 [--dtype float16]

Training resumes automatically from the newest checkpoint in the output
folder. Multi-GPU / multi-node: launch the same command under torchrun, e.g.
``torchrun --nproc_per_node 4 -m recon.cli train --data set.h5 -o runs/ct --device cuda``.
"""
from __future__ import annotations

import argparse
from pathlib import Path

import torch

from recon.errors import InputError

# CLI flag -> TrainConfig field, for flags that override the configuration.
_OVERRIDES = {"steps": "steps", "batch_size": "batch_size", "lr": "lr", "warmup": "warmup", "ema": "ema",
              "ckpt_every": "ckpt_every", "sample_every": "sample_every", "sample_steps": "sample_steps",
              "log_every": "log_every", "seed": "seed", "hflip": "hflip", "sigma_max": "sigma_max",
              "amp": "amp"}


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "train", help="train a score prior on an HDF5 set (or: train export RUN -o PREFIX)",
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("action", nargs="?", choices=["export"], help="export RUN as a prior (EMA weights + JSON)")
    p.add_argument("run", nargs="?", type=Path, help="run folder to export")
    p.add_argument("-o", "--output", type=Path, required=True,
                   help="run folder (training) or output prefix, e.g. priors/bundled/ct-128 (export)")
    p.add_argument("--data", type=Path, help="HDF5 with /train/images (N, 1, H, W) in model units")
    p.add_argument("--config", help="preset (tiny, small, base, large) or JSON file; default base")
    p.add_argument("--init", metavar="PRIOR", help="fine-tune: start a new run from this prior's weights and "
                   "architecture (bundled name, prefix or run folder); ignored when resuming")
    p.add_argument("--steps", type=int, help="total optimiser steps")
    p.add_argument("--batch-size", type=int, help="global batch size")
    p.add_argument("--lr", type=float, help="Adam learning rate (default 2e-4)")
    p.add_argument("--warmup", type=int, help="linear warm-up steps (default 5000)")
    p.add_argument("--ema", type=float, help="EMA decay (default 0.999)")
    p.add_argument("--ckpt-every", type=int, help="steps between checkpoints")
    p.add_argument("--sample-every", type=int, help="steps between sample grids (0: never)")
    p.add_argument("--sample-steps", type=int, help="noise levels of the grid sampler")
    p.add_argument("--log-every", type=int, help="steps between training-log rows")
    p.add_argument("--seed", type=int, help="seed of initialisation, data order and noise")
    p.add_argument("--hflip", action=argparse.BooleanOptionalAction, default=None,
                   help="random left-right flips (default: on for MRI, off for CT)")
    p.add_argument("--amp", action=argparse.BooleanOptionalAction, default=None,
                   help="bfloat16 autocast in the forward pass (about 1.8x faster on AVX512-BF16 CPUs)")
    p.add_argument("--sigma-max", type=float, help="fix sigma_max instead of the largest pairwise distance")
    p.add_argument("--modality", choices=["ct", "mri"], help="default: the data manifest's modality")
    p.add_argument("--id", dest="prior_id", help="prior id in the metadata (default <modality>-<size>)")
    p.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N (default cpu)")
    p.add_argument("--threads", type=int, help="CPU threads for torch (default: torch's choice; use fewer on a "
                   "machine busy with other work)")
    p.add_argument("--resume", action="store_true", help="require an existing checkpoint to resume from")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--dtype", choices=["float32", "float16"], default="float32",
                   help="export: weight precision (default float32)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if args.action == "export":
        return _export(args)
    if args.run is not None:
        raise InputError(f"unexpected argument {args.run}; did you mean 'recon train export {args.run}'?")
    if args.data is None:
        raise InputError("--data is required for training")
    from priors.checkpoint import latest_checkpoint
    from priors.config import load_config
    from priors.train import train

    if args.threads is not None:
        if args.threads < 1:
            raise InputError(f"--threads must be >= 1, got {args.threads}")
        torch.set_num_threads(args.threads)
    if args.resume and latest_checkpoint(args.output) is None:
        raise InputError(f"--resume: {args.output} has no checkpoint to resume from")
    if args.init is not None and args.config is not None:
        raise InputError("--init: the network comes from the prior it names; leave out --config")
    config = load_config(args.config) if args.config else None
    overrides = {field: getattr(args, flag) for flag, field in _OVERRIDES.items() if getattr(args, flag) is not None}
    for name in ("steps", "batch_size", "ckpt_every", "log_every", "sample_steps"):
        if name in overrides and overrides[name] < 1:
            raise InputError(f"--{name.replace('_', '-')} must be >= 1, got {overrides[name]}")
    latest = train(args.data, args.output, config, overrides, device=args.device, modality=args.modality,
                   prior_id=args.prior_id, progress=not args.no_progress, init=args.init)
    if latest is not None:
        print(f"checkpoint: {latest}")
    return 0


def _export(args: argparse.Namespace) -> int:
    from priors.train import export

    if args.run is None:
        raise InputError("recon train export: give the run folder, e.g. recon train export runs/ct -o priors/bundled/ct-128")
    if not args.run.is_dir():
        raise InputError(f"{args.run}: not a run folder")
    wpath, jpath = export(args.run, args.output, getattr(torch, args.dtype), args.prior_id)
    size_mb = wpath.stat().st_size / 2 ** 20
    print(f"wrote {wpath} ({size_mb:.1f} MiB) and {jpath}")
    return 0
