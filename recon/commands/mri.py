"""`recon mri`: undersampled single-coil Cartesian MRI reconstruction.

    recon mri --accel 8 brain.nii.gz -o out/

k-space is simulated from the magnitude image (for fastMRI HDF5 inputs, the
magnitude reference reconstruction stored in the file) with a fastMRI-style
column mask and reconstructed with the MRI score prior or a classical method.
"""
from __future__ import annotations

import argparse

import torch

from operators import Measurement, default_center_fraction, undersampled_mri
from recon import pipeline
from recon.errors import InputError

METHODS = ("zero-filled", "cs-tv", "cs-wavelet", "unet-mri")


def _measurement(size: int, args: argparse.Namespace, reference: torch.Tensor) -> Measurement:
    if not args.accel >= 1:
        raise InputError(f"--accel must be >= 1, got {args.accel}")
    return undersampled_mri(size, args.accel, args.center_fraction, args.mask, args.mask_seed, args.noise)


def _describe(args: argparse.Namespace) -> str:
    cf = args.center_fraction if args.center_fraction is not None else default_center_fraction(args.accel)
    return f"MRI {args.accel:g}x {args.mask} column mask, centre fraction {cf:g}"


TASK = pipeline.Task(name="mri", modality="mri", baseline="zero-filled", methods=METHODS,
                     measurement=_measurement, describe=_describe)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options that define the k-space sampling."""
    parser.add_argument("--accel", type=float, default=8.0, help="acceleration (default: 8)")
    parser.add_argument("--center-fraction", type=float, default=None,
                        help="fully sampled centre fraction (default: 0.08 below 8x, 0.04 at 8x and above)")
    parser.add_argument("--mask", choices=("equispaced", "random"), default="equispaced")
    parser.add_argument("--mask-seed", type=int, default=0, help="seed of the mask's offset / random columns")
    parser.add_argument("--noise", type=float, default=0.0,
                        help="std of complex Gaussian noise added to the simulated k-space (default: 0)")


def register(subparsers) -> None:
    pipeline.register_verb(subparsers, "mri", "undersampled MRI reconstruction", __doc__, TASK, add_arguments)
