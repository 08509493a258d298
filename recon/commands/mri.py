"""`recon mri`: undersampled single-coil Cartesian MRI reconstruction.

    recon mri --accel 8 brain.nii.gz -o out/

Image inputs (NIfTI, DICOM, .npy ...): k-space is simulated from the magnitude
image with a fastMRI-style column mask. fastMRI .h5 files: their raw k-space
(single- or multi-coil, coil maps by ESPIRiT) is undersampled with that mask, or
keeps the file's own `mask` (challenge files); the output is fastMRI's
submission layout. Reconstructed with the MRI score prior or a classical method.
"""
from __future__ import annotations

import argparse

from recon.commands.options import register_verb
from recon.tasks import Task, UndersampledMRI
from recon.tasks.mri import MRI_METHODS


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options that define the k-space sampling."""
    parser.add_argument("--accel", type=float, default=None,
                        help="acceleration (default: 8; a fastMRI file with its own mask: that mask's)")
    parser.add_argument("--center-fraction", type=float, default=None,
                        help="fully sampled centre fraction (default: 0.08 below 8x, 0.04 at 8x and above)")
    parser.add_argument("--mask", choices=("equispaced", "random"), default="equispaced")
    parser.add_argument("--mask-seed", type=int, default=0, help="seed of the mask's offset / random columns")
    parser.add_argument("--noise", type=float, default=0.0,
                        help="std of complex Gaussian noise added to the simulated k-space, or to a fastMRI "
                             "file's measured k-space (model units; default: 0)")
    parser.add_argument("--complex-prior", choices=("demodulated", "magnitude", "parts"), default="demodulated",
                        help="fastMRI k-space: the prior on the real and imaginary parts of the image without the "
                             "phase of its low-resolution centre image (default; the in-phase part is the output), "
                             "on the magnitude with that phase, or on the real and imaginary parts themselves")


def task_from(args: argparse.Namespace) -> Task:
    return UndersampledMRI(accel=8.0 if args.accel is None else args.accel, center_fraction=args.center_fraction,
                           mask=args.mask, mask_seed=args.mask_seed, noise=args.noise,
                           accel_given=args.accel is not None, complex_prior=args.complex_prior)


def register(subparsers) -> None:
    register_verb(subparsers, "mri", "undersampled MRI reconstruction", __doc__, MRI_METHODS, add_arguments, task_from)
