"""`recon ct`: sparse-view CT reconstruction.

    recon ct --projections 23 scan.dcm -o out/

The sparse-view sinogram is simulated from the input image (23 of the full
N views, N = image side) and reconstructed with the CT score prior or a
classical method.
"""
from __future__ import annotations

import argparse

import torch

from operators import Measurement, sparse_view_ct
from recon import pipeline
from recon.errors import InputError

METHODS = ("fbp", "fista-tv", "sirt", "cgls", "fbpconvnet")


def _measurement(size: int, args: argparse.Namespace, reference: torch.Tensor) -> Measurement:
    full = args.full_views or size
    if not 1 <= args.projections <= full:
        raise InputError(f"--projections must be between 1 and the {full} full views, got {args.projections}")
    return sparse_view_ct(size, args.projections, n_angles=full, noise_std=args.noise)


def _describe(args: argparse.Namespace) -> str:
    full = f"{args.full_views}" if args.full_views else "N (the image side)"
    return f"sparse-view CT, {args.projections} of {full} parallel-beam views"


TASK = pipeline.Task(name="ct-sparse-view", modality="ct", baseline="fbp", methods=METHODS,
                     measurement=_measurement, describe=_describe)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options that define the sparse-view measurement."""
    parser.add_argument("--projections", type=int, default=23, help="measured views (default: 23)")
    parser.add_argument("--full-views", type=int, default=0,
                        help="views of the full scan the projections are drawn from (default: the image side)")
    parser.add_argument("--noise", type=float, default=0.0,
                        help="std of Gaussian noise added to the simulated sinogram (default: 0)")


def register(subparsers) -> None:
    pipeline.register_verb(subparsers, "ct", "sparse-view CT reconstruction", __doc__, TASK, add_arguments)
