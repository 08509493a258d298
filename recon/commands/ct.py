"""`recon ct`: sparse-view and limited-angle CT reconstruction.

    recon ct --projections 23 scan.dcm -o out/
    recon ct --arc 90 scan.dcm -o out/

    recon ct --geometry GEOM.json sino.npy -o out/
    recon ct --geometry fan.json --projections 23 scan.dcm -o out/

Without ``--geometry`` the sinogram is simulated from the input image in a parallel-beam scan
(``--projections`` of the full N views, N = image side; with ``--arc``, the views within that arc of the
half turn, all of them unless ``--projections`` is given). With ``--geometry`` (a JSON file in mm with
astra's meanings, parallel or fan beam: see recon/io/ct_geometry.py) the input is a measured sinogram in
that geometry (.npy (angles, detectors) or (slices, angles, detectors), or .h5 with a 'sinogram'
dataset, holding line integrals -ln I/I0), reconstructed as measured, or an image whose sinogram is
simulated in it; ``--projections`` then keeps that many of the geometry's views (default: all).
Either is reconstructed with the CT score prior or a classical method.
"""
from __future__ import annotations

import argparse
from pathlib import Path

from recon.commands.options import register_verb
from recon.errors import InputError
from recon.tasks import LimitedAngleCT, ScanCT, SparseViewCT, Task
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
    parser.add_argument("--geometry", type=Path, default=None, metavar="GEOM.json",
                        help="the scan's geometry (parallel or fan beam, mm): the input is a measured sinogram "
                             "in it, or an image to simulate one from")
    parser.add_argument("--noise", type=float, default=0.0,
                        help="std of Gaussian noise added to the simulated sinogram (default: 0)")


def task_from(args: argparse.Namespace) -> Task:
    if args.geometry is not None:
        if args.arc is not None or args.full_views:
            raise InputError("--geometry fixes the views: choose them in the geometry file, not with --arc or "
                             "--full-views")
        return ScanCT(geometry=str(args.geometry), projections=args.projections, noise=args.noise)
    if args.arc is not None:
        return LimitedAngleCT(arc=args.arc, projections=args.projections, full_views=args.full_views,
                              noise=args.noise)
    projections = DEFAULT_PROJECTIONS if args.projections is None else args.projections
    return SparseViewCT(projections=projections, full_views=args.full_views, noise=args.noise)


def register(subparsers) -> None:
    register_verb(subparsers, "ct", "sparse-view or limited-angle CT reconstruction", __doc__, CT_METHODS,
                  add_arguments, task_from)
