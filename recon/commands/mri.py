"""`recon mri`: undersampled single-coil Cartesian MRI reconstruction.

    recon mri --accel 8 brain.nii.gz -o out/

k-space is simulated from the magnitude image (for fastMRI HDF5 inputs, the
magnitude reference reconstruction stored in the file) with a fastMRI-style
column mask and reconstructed with the MRI score prior or a classical method.
"""
from __future__ import annotations

import argparse

from recon.commands.options import register_verb
from recon.tasks import Task, UndersampledMRI
from recon.tasks.mri import MRI_METHODS


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options that define the k-space sampling."""
    parser.add_argument("--accel", type=float, default=8.0, help="acceleration (default: 8)")
    parser.add_argument("--center-fraction", type=float, default=None,
                        help="fully sampled centre fraction (default: 0.08 below 8x, 0.04 at 8x and above)")
    parser.add_argument("--mask", choices=("equispaced", "random"), default="equispaced")
    parser.add_argument("--mask-seed", type=int, default=0, help="seed of the mask's offset / random columns")
    parser.add_argument("--noise", type=float, default=0.0,
                        help="std of complex Gaussian noise added to the simulated k-space (default: 0)")


def task_from(args: argparse.Namespace) -> Task:
    return UndersampledMRI(accel=args.accel, center_fraction=args.center_fraction, mask=args.mask,
                           mask_seed=args.mask_seed, noise=args.noise)


def register(subparsers) -> None:
    register_verb(subparsers, "mri", "undersampled MRI reconstruction", __doc__, MRI_METHODS, add_arguments, task_from)
