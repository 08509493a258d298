"""`recon mar`: metal artifact removal for CT.

    recon mar scan_with_metal.dcm -o out/
    recon mar clean.dcm --simulate-metal --seed 3 -o out/

Metal is segmented by a HU threshold (``--metal-threshold``, 3000 HU by
default, grown by one pixel); the bins of the full-view sinogram whose rays
cross it (the metal trace) are dropped, Lambda = everything outside the
trace, and the rest is reconstructed with the CT score prior (task
``ct-mar``) or by sinogram completion (``--method li`` or ``nmar``). The
pixels above the threshold are put back into every result.

A real scan's sinogram is the forward projection of the image itself, and
there is no reference, so no PSNR/SSIM. With ``--simulate-metal`` the input
is taken as clean: implants are inserted and a polychromatic scan simulated
(:func:`recon.metal.simulate_metal`, seeded by ``--seed`` plus the slice
index, over a ``--fov-cm`` field of view); the metal is then segmented from the corrupted
FBP as for a real scan, and PSNR/SSIM against the clean input leave out the
metal pixels (the inserted metal and the reinserted pixels).
"""
from __future__ import annotations

import argparse

from recon.commands.options import register_verb
from recon.tasks import MetalArtifacts, Task
from recon.tasks.metal import DEFAULT_FOV_CM, METAL_THRESHOLD_HU


def add_metal_arguments(parser: argparse.ArgumentParser) -> None:
    """The metal recipe's options (shared with `recon tune mar`)."""
    parser.add_argument("--metal-threshold", type=float, default=METAL_THRESHOLD_HU,
                        help=f"metal = pixels above this many HU, grown by one pixel (default: {METAL_THRESHOLD_HU:g})")
    parser.add_argument("--fov-cm", type=float, default=DEFAULT_FOV_CM,
                        help=f"field of view of the simulated scan in cm (default: {DEFAULT_FOV_CM:g})")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options that define the metal and where the sinogram comes from."""
    add_metal_arguments(parser)
    parser.add_argument("--simulate-metal", action="store_true",
                        help="treat the input as clean: insert implants, simulate their artifacts "
                             "(seeded by --seed) and report PSNR/SSIM without the metal pixels")


def task_from(args: argparse.Namespace, simulate: bool | None = None) -> Task:
    simulate = args.simulate_metal if simulate is None else simulate
    return MetalArtifacts(threshold=args.metal_threshold, simulate=simulate, fov_cm=args.fov_cm)


def register(subparsers) -> None:
    register_verb(subparsers, "mar", "CT metal artifact removal", __doc__, MetalArtifacts.methods, add_arguments,
                  task_from)
