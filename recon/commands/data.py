"""`recon data`: offline training/test sets and the demo inputs.

    recon data build --modality ct --size 128 --n 4000 -o ct128.h5 [--seed 0] [--val 64] [--test 64]
    recon data build --modality ct|mri --from DIR -o set.h5 [--size 128 | --pixel-spacing MM]
                     [--val-fraction 0.1] [--test-fraction 0.1] [--seed 0] [--n N]
    recon data show ct128.h5
    recon data examples -o examples/

`build` writes an HDF5 slice dataset (/{train,val,test}/images, (N, 1, H, W)
float32 in model units, with a JSON manifest): CT from the procedural thorax
phantom, MRI from augmented axial slices of the MNI152 template bundled with
nilearn (val/test from a held-out block of slices). With `--from DIR` it is
built from your own scans instead: every DICOM series (grouped by
SeriesInstanceUID), NIfTI volume and fastMRI file under DIR, each slice
resized to --size (or resampled to --pixel-spacing mm, then cropped or padded
with air), near-empty slices left out, split by patient (PatientID) so that
no patient is in two splits; --n then caps the training slices (default: all).
Each slice's file and patient are kept in /{split}/source and /{split}/patient;
files that cannot be used are skipped, counted in one line and listed with
their reasons in the manifest. `examples` copies pydicom's CT_small.dcm and
writes brain.nii.gz (16 held-out template slices).
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from recon.errors import InputError


def _build_from_scans(args: argparse.Namespace) -> int:
    from recon.data.from_scans import Recipe, build_from_scans, skip_summary

    for name in ("val", "test", "workers"):
        if getattr(args, name) is not None:
            raise InputError(f"--{name} is for the procedural sets; with --from the splits are "
                             f"--val-fraction / --test-fraction of the patients")
    fractions = {name: value for name, value in (("val_fraction", args.val_fraction),
                                                 ("test_fraction", args.test_fraction)) if value is not None}
    recipe = Recipe(args.modality, args.size, args.pixel_spacing, seed=args.seed, n=args.n, **fractions)
    report = build_from_scans(args.source, args.output, recipe, progress=not args.quiet)
    counts, patients = report.counts, report.patients
    print(f"wrote {report.path} ({counts['train']} train, {counts['val']} val, {counts['test']} test slices of "
          f"{args.size}x{args.size} from {patients['train']} / {patients['val']} / {patients['test']} patients)")
    if report.skipped:
        print(f"{skip_summary(report.skipped, report.n_files, args.modality)}; every reason: recon data show "
              f"{report.path}", file=sys.stderr)
    return 0


def _build(args: argparse.Namespace) -> int:
    from recon.data.build import build_dataset

    if args.source is not None:
        if args.anatomy is not None:
            raise InputError("--anatomy picks a procedural generator; a set --from your scans has their anatomy")
        return _build_from_scans(args)
    for flag, value in (("--pixel-spacing", args.pixel_spacing), ("--val-fraction", args.val_fraction),
                        ("--test-fraction", args.test_fraction)):
        if value is not None:
            raise InputError(f"{flag} needs --from DIR (a set built from your scans)")
    if args.n is None:
        raise InputError("--n (training slices) is required for the procedural sets; or build from your scans "
                         "with --from DIR")
    for name in ("n", "val", "test"):
        value = getattr(args, name)
        if value is not None and value < (1 if name == "n" else 0):
            raise InputError(f"--{name} must be >= {1 if name == 'n' else 0}, got {value}")
    if args.workers is not None and args.workers < 1:
        raise InputError(f"--workers must be >= 1, got {args.workers}")
    default = max(1, min(64, args.n // 10))
    counts = {"train": args.n, "val": default if args.val is None else args.val,
              "test": default if args.test is None else args.test}
    path = build_dataset(args.modality, args.size, counts, args.output, seed=args.seed,
                         progress=not args.quiet, workers=args.workers, anatomy=args.anatomy)
    print(f"wrote {path} ({counts['train']} train, {counts['val']} val, {counts['test']} test slices of "
          f"{args.size}x{args.size})")
    return 0


def _show(args: argparse.Namespace) -> int:
    from recon.data.build import read_manifest

    print(json.dumps(read_manifest(args.dataset), indent=2))
    return 0


def _examples(args: argparse.Namespace) -> int:
    from recon.data.examples import write_examples

    for path in write_examples(args.output):
        print(f"wrote {path}")
    return 0


def register(subparsers) -> None:
    parser = subparsers.add_parser("data", help="build datasets, show a manifest, write the demo inputs",
                                   description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    actions = parser.add_subparsers(dest="action", metavar="ACTION")
    actions.required = True

    build = actions.add_parser("build", help="write an HDF5 slice dataset with train/val/test splits")
    build.add_argument("--modality", required=True, choices=("ct", "mri"))
    build.add_argument("--from", dest="source", type=Path, metavar="DIR", default=None,
                       help="build from the DICOM series, NIfTI and fastMRI files under DIR")
    build.add_argument("--size", type=int, default=128, help="image side in pixels (default: 128)")
    build.add_argument("--pixel-spacing", type=float, default=None, metavar="MM",
                       help="with --from: resample slices to MM mm pixels, then crop or pad to --size")
    build.add_argument("--n", type=int, default=None,
                       help="training slices (required without --from; with it, a cap: default all)")
    build.add_argument("--val-fraction", type=float, default=None, metavar="F",
                       help="with --from: patients for val (default: 0.1)")
    build.add_argument("--test-fraction", type=float, default=None, metavar="F",
                       help="with --from: patients for test (default: 0.1)")
    build.add_argument("--val", type=int, default=None, help="validation slices (default: min(64, n/10))")
    build.add_argument("--test", type=int, default=None, help="test slices (default: min(64, n/10))")
    build.add_argument("--anatomy", choices=("thorax", "head", "mixed", "brain", "varied"), default=None,
                       help="procedural sets: CT thorax (default), head or mixed (alternating); MRI brain "
                            "(the T1 template, default) or varied (randomised contrasts, brains and bodies)")
    build.add_argument("--seed", type=int, default=0)
    build.add_argument("--workers", type=int, default=None, help="processes (default: all CPUs for large builds)")
    build.add_argument("-o", "--output", type=Path, required=True, help="output .h5 file")
    build.add_argument("--quiet", action="store_true", help="no progress bar")
    build.set_defaults(func=_build)

    show = actions.add_parser("show", help="print the manifest of a dataset file")
    show.add_argument("dataset", type=Path)
    show.set_defaults(func=_show)

    examples = actions.add_parser("examples", help="write CT_small.dcm and brain.nii.gz for the demo")
    examples.add_argument("-o", "--output", type=Path, default=Path("examples"), help="folder (default: examples/)")
    examples.set_defaults(func=_examples)
