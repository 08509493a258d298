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
index, 40 cm field of view); the metal is then segmented from the corrupted
FBP as for a real scan, and PSNR/SSIM against the clean input leave out the
metal pixels (the inserted metal and the reinserted pixels).
"""
from __future__ import annotations

import argparse

import torch

from operators import BooleanMask, Measurement, Radon, metal_trace, metal_trace_ct
from recon import pipeline
from recon.errors import InputError
from recon.metal import segment_metal, simulate_metal
from recon.units import hu_to_model, model_to_hu

METHODS = ("li", "nmar")
METRICS_NOTE = ("PSNR/SSIM: data range 1 on model units, output clipped to [0, 1], metal pixels excluded "
                "(the simulated metal and the reinserted pixels above --metal-threshold)")


def _metal(images: torch.Tensor, args: argparse.Namespace) -> torch.Tensor:
    """The metal to remove from the sinogram: pixels above the threshold, dilated by one pixel."""
    return segment_metal(model_to_hu(images), threshold_hu=args.metal_threshold, dilate=1)


def _measurement(size: int, args: argparse.Namespace, reference: torch.Tensor) -> Measurement:
    """All ``size`` views minus the trace of the metal found in ``reference`` (B, 1, N, N)."""
    return metal_trace_ct(_metal(reference, args).cpu())


def _reinsert(metal: torch.Tensor, values: torch.Tensor):
    """A post-process putting ``values`` back where ``metal`` is True."""
    return lambda images: torch.where(metal.to(images.device), values.to(images.device), images)


def _real_problem(x: torch.Tensor, args: argparse.Namespace) -> pipeline.Problem:
    measurement = _measurement(x.shape[-1], args, x)
    metal = x > hu_to_model(args.metal_threshold)
    return pipeline.Problem(measurement, measurement.measure(x), has_reference=False, finish=_reinsert(metal, x))


def _simulated_problem(x: torch.Tensor, args: argparse.Namespace, first_slice: int) -> pipeline.Problem:
    radon = Radon(x.shape[-1])
    cases = []
    for i, image in enumerate(model_to_hu(x[:, 0]).cpu()):
        try:
            cases.append(simulate_metal(image, seed=args.seed + first_slice + i, radon=radon))
        except ValueError as exc:
            raise InputError(f"{args.input}: slice {first_slice + i + 1}: {exc}") from None
    corrupted = torch.cat([case.corrupted_fbp for case in cases])
    inserted = torch.cat([case.metal_mask for case in cases])
    measurement = Measurement(radon, BooleanMask(~metal_trace(_metal(corrupted, args), radon)))
    y = measurement.P(torch.cat([case.sinogram for case in cases])).to(x.device)
    reinserted = corrupted > hu_to_model(args.metal_threshold)
    return pipeline.Problem(measurement, y, keep=~(inserted | reinserted).to(x.device),
                            finish=_reinsert(reinserted, corrupted))


def _problem(x: torch.Tensor, args: argparse.Namespace, first_slice: int) -> pipeline.Problem:
    return _simulated_problem(x, args, first_slice) if args.simulate_metal else _real_problem(x, args)


def _check(images: torch.Tensor, args: argparse.Namespace) -> None:
    if not args.simulate_metal and not bool((images > hu_to_model(args.metal_threshold)).any()):
        raise InputError(f"{args.input}: no pixel above {args.metal_threshold:g} HU, so no metal to remove; "
                         "lower --metal-threshold, or pass --simulate-metal to insert metal into a clean image")


def _describe(args: argparse.Namespace) -> str:
    source = f"simulated metal (seed {args.seed})" if args.simulate_metal else "metal"
    return f"CT MAR, {source} above {args.metal_threshold:g} HU, all N views minus the metal trace"


TASK = pipeline.Task(name="ct-mar", modality="ct", baseline="li", methods=METHODS, measurement=_measurement,
                     describe=_describe, problem=_problem, check=_check, metrics_note=METRICS_NOTE)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options that define the metal and where the sinogram comes from."""
    parser.add_argument("--metal-threshold", type=float, default=3000.0,
                        help="metal = pixels above this many HU, grown by one pixel (default: 3000)")
    parser.add_argument("--simulate-metal", action="store_true",
                        help="treat the input as clean: insert implants, simulate their artifacts "
                             "(seeded by --seed) and report PSNR/SSIM without the metal pixels")


def register(subparsers) -> None:
    pipeline.register_verb(subparsers, "mar", "CT metal artifact removal", __doc__, TASK, add_arguments)
