"""Command-line options shared by the reconstruction verbs and `recon tune`, and what they become:
a :class:`recon.pipeline.RunSettings` and the sampler options the user set. Nothing below the commands
sees argparse."""
from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any, Callable

from recon.tasks import Task


def register_verb(subparsers, name: str, help_text: str, doc: str, methods: tuple[str, ...],
                  add_task_arguments: Callable[[argparse.ArgumentParser], None],
                  task_from: Callable[[argparse.Namespace], Task]) -> None:
    """Add a reconstruction verb: its task options, the common ones, and its run (task_from(args) -> task)."""
    parser = subparsers.add_parser(name, help=help_text, description=doc,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
    add_task_arguments(parser)
    add_common_arguments(parser, methods)

    def run(args: argparse.Namespace) -> int:
        from recon import pipeline

        settings = settings_from(args)  # validated before the task reads anything
        return pipeline.run(task_from(args), args.input, settings)

    parser.set_defaults(func=run)


def add_common_arguments(parser: argparse.ArgumentParser, task_methods: tuple[str, ...]) -> None:
    """Options shared by every reconstruction verb."""
    parser.add_argument("input", type=Path, help="DICOM file or folder, NIfTI, fastMRI .h5, .npy/.npz, PNG/TIFF")
    parser.add_argument("-o", "--output", type=Path, default=Path("out"), help="output folder (default: out/)")
    parser.add_argument("--method", default="score", choices=("score", *task_methods),
                        help="score (the learned prior) or a classical baseline (default: score)")
    add_sampler_arguments(parser)
    parser.add_argument("--samples", type=int, default=1, help="posterior samples K; K > 1 also writes a std map")
    parser.add_argument("--batch-size", type=int, default=8,
                        help="slices reconstructed together (under torchrun: per process and batch)")
    parser.add_argument("--resample", action="store_true",
                        help="resize slices to the prior's size and reconstruct there (default: the slice's own "
                             "grid, larger or smaller than the prior's: the prior sampling on its grid through A R, "
                             "R the resampling to the slice's, and the refinement on the slice's)")
    parser.add_argument("--square", choices=("pad", "crop", "refuse"), default="pad",
                        help="non-square slices: pad them with zeros (air, background) to a square and cut the "
                             "padding off the output (default), crop the centred square and paste the result "
                             "back, or refuse them")
    parser.add_argument("--force-modality", action="store_true",
                        help="read a DICOM input whose Modality tag is another (PT, NM, ...) as this verb's "
                             "modality (default: refuse it)")
    parser.add_argument("--volume", type=int, default=None, metavar="K",
                        help="the volume of a 4-D NIfTI input (DWI, fMRI) to reconstruct, from 0 (required there)")
    parser.add_argument("--rescale", type=float, nargs=2, default=None, metavar=("SLOPE", "INTERCEPT"),
                        help="CT numbers of a .npy, .npz, PNG or TIFF input: HU = SLOPE * value + INTERCEPT (as "
                             "DICOM's RescaleSlope / RescaleIntercept; default: float values are HU, 8/16-bit grey "
                             "levels span air to 3000 HU)")


def add_sampler_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of the score sampler (shared with `recon tune`)."""
    from recon.samplers import DEFAULT_SAMPLER, SAMPLERS
    from recon.samplers.options import warm_starts

    parser.add_argument("--sampler", default=None, choices=tuple(SAMPLERS),
                        help=f"score sampler (default: {DEFAULT_SAMPLER}, the fast one; "
                             "pc is the paper's 2000-evaluation predictor-corrector)")
    parser.add_argument("--steps", type=int, default=None,
                        help="noise levels N (default: the prior's profile for the task, else the sampler's)")
    parser.add_argument("--snr", type=float, default=None, help="corrector signal-to-noise ratio (default: the prior's tuned value)")
    parser.add_argument("--lam", type=float, default=None, help="data-consistency weight lambda in [0, 1] (default: tuned)")
    parser.add_argument("--eta", type=float, default=None,
                        help="dds/ddim: share of fresh noise when re-noising, in [0, 1] (default: tuned)")
    parser.add_argument("--start-sigma", type=float, default=None,
                        help="dds/ddim: first noise level, started from a first reconstruction (default: tuned)")
    parser.add_argument("--start-from", default=None, choices=warm_starts(), metavar="BASELINE",
                        help="dds/ddim: that first reconstruction, a baseline such as cgls (least squares) or "
                             "cs-tv (default: the prior's profile, else cgls)")
    parser.add_argument("--cg-steps", type=int, default=None, help="dds: conjugate-gradient steps per level (default: 5)")
    parser.add_argument("--gamma", type=float, default=None, help="dds: weight of the prior image in the CG step (default: 0)")
    parser.add_argument("--rho", type=float, default=None, help="langevin/score-sde: likelihood std over sigma")
    parser.add_argument("--refine-tv", type=float, default=None, metavar="LAM",
                        help="defer to the data: refine the result by least squares + LAM TV anchored at it, the "
                             "anchor's weight chosen per slice by held-out measurements (0: off; default: tuned)")
    parser.add_argument("--choice-steps", type=int, default=None, metavar="N",
                        help="noise levels of the sampler's run on the fitted lines that chooses the refinement's "
                             "anchor weight (default: the profile's, else --steps)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--prior", default=None, help="bundled prior name or checkpoint folder (default: the modality's)")
    parser.add_argument("--device", default=None, help="cpu, cuda, cuda:1 ... (default: cuda when available)")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")


def sampler_flags(args: argparse.Namespace) -> dict[str, Any]:
    """The sampler options the user set on the command line (steps and the tuned options)."""
    from recon.samplers import option_names

    return {name: getattr(args, name) for name in ("steps", *option_names()) if getattr(args, name) is not None}


def settings_from(args: argparse.Namespace):
    """A reconstruction verb's :class:`recon.pipeline.RunSettings` (validated on creation)."""
    from recon.io.reading import ReadOptions
    from recon.pipeline import RunSettings

    return RunSettings(output=args.output, method=args.method, sampler=args.sampler, options=sampler_flags(args),
                       samples=args.samples, batch_size=args.batch_size, resample=args.resample,
                       reading=ReadOptions(args.square, args.force_modality, args.volume,
                                           None if args.rescale is None else tuple(args.rescale)), seed=args.seed,
                       prior=args.prior, device=args.device, quiet=args.quiet)
