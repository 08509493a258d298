"""`recon ct`: sparse-view and limited-angle CT reconstruction.

    recon ct --projections 23 scan.dcm -o out/
    recon ct --arc 90 scan.dcm -o out/

The sinogram is simulated from the input image (``--projections`` of the full N views, N = image side;
with ``--arc``, the views within that arc of the half turn, all of them unless ``--projections`` is
given) and reconstructed with the CT score prior or a classical method.
"""
from __future__ import annotations

import argparse

from recon.commands.options import register_verb
from recon.tasks import LimitedAngleCT, SparseViewCT, Task
from recon.tasks.sparse_view import CT_METHODS

DEFAULT_PROJECTIONS = 23


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options that define the CT measurement."""
    parser.add_argument("--projections", type=int, default=None,
                        help=f"measured views (default: {DEFAULT_PROJECTIONS}; with --arc: every view in the arc)")
    parser.add_argument("--arc", type=float, default=None, metavar="DEGREES",
                        help="limited-angle CT: the views cover only this arc of the 180 degree scan")
    parser.add_argument("--full-views", type=int, default=0,
                        help="views of the full scan the projections are drawn from (default: the image side)")
    parser.add_argument("--noise", type=float, default=0.0,
                        help="std of Gaussian noise added to the simulated sinogram (default: 0)")


def task_from(args: argparse.Namespace) -> Task:
    if args.arc is not None:
        return LimitedAngleCT(arc=args.arc, projections=args.projections, full_views=args.full_views,
                              noise=args.noise)
    projections = DEFAULT_PROJECTIONS if args.projections is None else args.projections
    return SparseViewCT(projections=projections, full_views=args.full_views, noise=args.noise)


def register(subparsers) -> None:
    register_verb(subparsers, "ct", "sparse-view or limited-angle CT reconstruction", __doc__, CT_METHODS,
                  add_arguments, task_from)
