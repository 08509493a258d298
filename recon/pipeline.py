"""Shared flow of the reconstruction verbs (`recon ct`, `recon mri`, `recon mar`).

read the input -> build each slice batch's problem (the measurement A and y,
simulated from the input or, for MAR on a real scan, taken from it) ->
reconstruct with the score prior or a classical method -> write the
reconstruction in the input's format, a PNG panel and ``metrics.json``.

Launched by ``torchrun`` (WORLD_SIZE > 1), the slice batches are shared out
round-robin between the processes (gloo on CPU, NCCL on GPU ``cuda:LOCAL_RANK``),
gathered back in slice order on rank 0, and only rank 0 writes outputs. Each
batch is seeded by ``--seed`` plus the index of its first slice, so the result
does not depend on the number of processes.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from operators import Measurement
from recon.errors import InputError
from recon.units import hu_to_model

METRICS_NOTE = "PSNR/SSIM: data range 1 on model units, whole image, output clipped to [0, 1]"
NO_REFERENCE_NOTE = "no PSNR/SSIM: there is no reference image (the input is the measured scan itself)"


@dataclass
class Problem:
    """One slice batch's inverse problem, as a task builds it.

    Attributes:
        measurement: A = P(Lambda) T for the batch.
        y: the measurements, as ``measurement.measure`` returns them.
        has_reference: the batch's input images are the ground truth (the
            measurement was simulated from them); False for a real measured scan.
        keep: (B, 1, N, N) bool, the pixels PSNR/SSIM count (None: all).
        finish: post-processing of reconstructions (B, 1, N, N) -> (B, 1, N, N),
            applied to the method and the baseline (e.g. metal reinsertion).
    """

    measurement: Measurement
    y: torch.Tensor
    has_reference: bool = True
    keep: torch.Tensor | None = None
    finish: Callable[[torch.Tensor], torch.Tensor] | None = None


@dataclass
class Task:
    """What distinguishes one reconstruction verb from another.

    Attributes:
        name: task key of the prior's per-task defaults ("ct-sparse-view", "mri", "ct-mar").
        modality: "ct" or "mri"; selects the bundled prior and the display window.
        baseline: the classical method shown beside the score result.
        methods: the values ``--method`` accepts (besides "score").
        measurement: builds A for an image side, the parsed arguments and the
            reference images (B, 1, N, N) (MAR needs them to find the metal).
        describe: a one-line description of the measurement for outputs.
        problem: builds a batch's :class:`Problem` from its images (B, 1, N, N)
            in model units, the arguments and the index of its first slice.
            Default: A from ``measurement`` and y = A x simulated with noise
            seeded by ``--seed`` plus that index.
        check: validates the whole input once, (S, 1, H, W) model units at the
            input's size, before anything is loaded or reconstructed.
        metrics_note: how PSNR/SSIM are computed, for ``metrics.json``.
    """

    name: str
    modality: str
    baseline: str
    methods: tuple[str, ...]
    measurement: Callable[[int, argparse.Namespace, torch.Tensor], Measurement]
    describe: Callable[[argparse.Namespace], str]
    problem: Callable[[torch.Tensor, argparse.Namespace, int], Problem] | None = None
    check: Callable[[torch.Tensor, argparse.Namespace], None] | None = None
    metrics_note: str = METRICS_NOTE


def register_verb(subparsers, name: str, help_text: str, doc: str, task: Task,
                  add_task_arguments: Callable[[argparse.ArgumentParser], None]) -> None:
    """Add a reconstruction verb: its task options, the common ones, and ``run``."""
    parser = subparsers.add_parser(name, help=help_text, description=doc,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
    add_task_arguments(parser)
    add_common_arguments(parser, task.methods)
    parser.set_defaults(func=lambda args: run(task, args))


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
                        help="resize slices to the prior's size (and back) when they differ")
    parser.add_argument("--square", choices=("refuse", "pad", "crop"), default="refuse",
                        help="what to do with non-square slices (default: refuse)")


def add_sampler_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of the score sampler (shared with `recon tune`)."""
    from recon.samplers import DEFAULT_SAMPLER, SAMPLERS
    from recon.samplers.decomposed import warm_starts

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
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--prior", default=None, help="bundled prior name or checkpoint folder (default: the modality's)")
    parser.add_argument("--device", default=None, help="cpu, cuda, cuda:1 ... (default: cuda when available)")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")


def device_from(name: str | None) -> torch.device:
    if name is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise InputError(f"--device {name}: no CUDA GPU is available")
    return device


def _write_json(path: Path, payload: dict) -> None:
    from recon.io import atomic_path

    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(payload, indent=2, default=float))


def _resize(images: torch.Tensor, size: int) -> torch.Tensor:
    return torch.nn.functional.interpolate(images, size=(size, size), mode="bilinear", align_corners=False,
                                           antialias=images.shape[-1] > size)


def simulated_problem(task: Task, x: torch.Tensor, args: argparse.Namespace, first_slice: int) -> Problem:
    """The default problem: y = A x (+ noise seeded by ``--seed`` + ``first_slice``)."""
    measurement = task.measurement(x.shape[-1], args, x)
    generator = torch.Generator(device=x.device).manual_seed(args.seed + first_slice)
    return Problem(measurement, measurement.measure(x, generator))


def run(task: Task, args: argparse.Namespace) -> int:
    """Reconstruct every slice of ``args.input`` for ``task``; returns an exit code."""
    if args.samples < 1:
        raise InputError(f"--samples must be >= 1, got {args.samples}")
    if args.batch_size < 1:
        raise InputError(f"--batch-size must be >= 1, got {args.batch_size}")
    from recon.samplers import OPTION_RULES, check_option_values

    check_option_values({name: getattr(args, name) for name in OPTION_RULES})
    device = device_from(args.device)
    shard = None
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        from priors import distributed

        shard = distributed.setup(str(device))
        device = shard.device
    try:
        return _run(task, args, device, shard)
    finally:
        if shard is not None:
            distributed.teardown(shard)


def _run(task: Task, args: argparse.Namespace, device: torch.device, shard) -> int:
    from recon import io

    volume = io.read_volume(args.input, modality=task.modality, square=args.square)
    images = torch.from_numpy(volume.data).float().unsqueeze(1)  # (S, 1, H, W) model units
    side = images.shape[-1]
    if task.check is not None:
        task.check(images, args)

    prior = None
    if args.method == "score":
        import priors

        prior = priors.load(args.prior or f"{task.modality}-128", device)
        if prior.meta.get("modality") not in (task.modality, "synthetic"):
            raise InputError(f"prior {prior.meta.get('id')} was trained on {prior.meta.get('modality')} images, "
                             f"not {task.modality}")
        if prior.meta["size"] != side:
            if not args.resample:
                raise InputError(f"{args.input}: slices are {side}x{side} but prior {prior.meta['id']} expects "
                                 f"{prior.meta['size']}x{prior.meta['size']}; pass --resample to resize")
            images = _resize(images, prior.meta["size"])
    size = images.shape[-1]

    started = time.perf_counter()
    starts = list(range(0, images.shape[0], args.batch_size))
    if shard is not None:
        starts = starts[shard.rank::shard.world_size]
    show_progress = not args.quiet and (shard is None or shard.is_main)
    local = _reconstruct_batches(task, args, prior, images, starts, device, show_progress)
    parts = _gather(local, shard)
    if parts is None:
        return 0  # not rank 0: rank 0 writes everything
    wall = time.perf_counter() - started
    batches = sorted((b for part in parts for b in part["batches"]), key=lambda b: b["start"])
    nfe, params = next(((p["nfe"], p["params"]) for p in parts if p["params"]), (0, {}))

    output = torch.cat([b["output"] for b in batches])
    baseline = torch.cat([b["baseline"] for b in batches])
    std = torch.cat([b["std"] for b in batches]) if batches[0]["std"] is not None else None
    keep = torch.cat([b["keep"] for b in batches]) if batches[0]["keep"] is not None else None
    has_reference = all(b["has_reference"] for b in batches)
    if size != side:
        output, baseline = _resize(output, side), _resize(baseline, side)
        std = _resize(std, side) if std is not None else None
        keep = _resize(keep.float(), side) > 0.999 if keep is not None else None  # drop pixels near excluded ones
        images = torch.from_numpy(volume.data).float().unsqueeze(1)
    reference = images if has_reference else None
    return _write_outputs(task, args, volume, prior, output, baseline, std, images, reference, keep,
                          nfe, params, wall, size, side, device, shard)


def _reconstruct_batches(task: Task, args: argparse.Namespace, prior, images: torch.Tensor, starts: list[int],
                         device: torch.device, progress: bool) -> dict:
    """Reconstruct the batches beginning at ``starts``; CPU tensors per batch, plus NFE and sampler parameters."""
    from recon.baselines import BASELINES

    batches, nfe, params = [], 0, {}
    for start in starts:
        x = images[start:start + args.batch_size].to(device)
        problem = task.problem(x, args, start) if task.problem else simulated_problem(task, x, args, start)
        baseline = BASELINES[task.baseline](problem.measurement, problem.y)
        std = None
        if prior is None:
            output = BASELINES[args.method](problem.measurement, problem.y)
        else:
            from recon.samplers import reconstruct

            result = reconstruct(prior, problem.measurement, problem.y, **_sampler_options(args, task, start, progress))
            output, std, nfe, params = result.mean, result.std, result.nfe, result.params
        if problem.finish is not None:
            output, baseline = problem.finish(output), problem.finish(baseline)
        batches.append({"start": start, "output": output.cpu(), "baseline": baseline.cpu(),
                        "std": None if std is None else std.cpu(),
                        "keep": None if problem.keep is None else problem.keep.cpu(),
                        "has_reference": problem.has_reference})
    return {"batches": batches, "nfe": nfe, "params": params}


def _gather(local: dict, shard) -> list[dict] | None:
    """Every process's results on rank 0 (None on the other ranks); the identity without torchrun."""
    if shard is None:
        return [local]
    import torch.distributed as dist

    parts = [None] * shard.world_size if shard.is_main else None
    dist.gather_object(local, parts, dst=0)
    return parts


def _write_outputs(task, args, volume, prior, output, baseline, std, images, reference, keep,
                   nfe, params, wall, size, side, device, shard) -> int:
    from recon import io
    from recon.panel import save_panel
    from recon.samplers import defaults_source

    args.output.mkdir(parents=True, exist_ok=True)
    stem = args.input.name.split(".")[0] or "input"
    method_name = args.method if prior is None else f"score-{params.get('sampler', args.sampler)}"
    written = io.write_volume(volume, output[:, 0].numpy(), args.output, f"{stem}_{method_name}",
                              description=f"{method_name} reconstruction, {task.describe(args)}")
    if std is not None:
        offset = hu_to_model(0.0) if task.modality == "ct" else 0.0  # so the writer's HU shift leaves std in HU
        written += io.write_volume(volume, (std[:, 0] + offset).numpy(), args.output, f"{stem}_{method_name}_std",
                                   description=f"posterior std ({args.samples} samples), {task.describe(args)}")

    metrics = {} if reference is None else _metrics(output, baseline, reference, keep, task)
    middle = output.shape[0] // 2
    panel = {"reference" if reference is not None else "input": images[middle, 0].numpy(),
             task.baseline: baseline[middle, 0].numpy(), method_name: output[middle, 0].numpy()}
    error = None
    if reference is not None:
        error = np.abs(output[middle, 0].numpy() - reference[middle, 0].numpy())
        if keep is not None:
            error = error * keep[middle, 0].numpy()  # excluded pixels (metal) would swamp the colour scale
    std_scale = 4000.0 if task.modality == "ct" else volume.scale
    panel_path = args.output / f"{stem}_{method_name}.png"
    if panel_path in written:  # PNG/TIFF inputs: the volume writer's own PNG preview has that name
        panel_path = panel_path.with_name(f"{stem}_{method_name}_panel.png")
    panel_path = save_panel(panel_path, panel, task.modality, error=error,
                            std=None if std is None else std[middle, 0].numpy() * std_scale,
                            std_unit="HU" if task.modality == "ct" else "",
                            title=f"{task.describe(args)}; slice {middle + 1}/{output.shape[0]}")
    report = {
        "task": task.name, "input": str(args.input), "measurement": task.describe(args),
        "method": method_name, "prior": None if prior is None else prior.meta.get("id"),
        "slices": int(output.shape[0]), "size": side, "resampled_to": size if size != side else None,
        "nfe_per_slice": nfe * args.samples, "wall_time_s": round(wall, 3),
        "wall_time_per_slice_s": round(wall / output.shape[0], 3),
        "device": str(device), "processes": 1 if shard is None else shard.world_size, "host": platform.node(),
        "parameters": {**vars_json(args), **params},
        "defaults_source": defaults_source(prior, params.get("sampler"), task.name),  # None without a prior
        "metrics_note": task.metrics_note if reference is not None else NO_REFERENCE_NOTE,
        **metrics, "files": [str(p) for p in [*written, panel_path]],
    }
    _write_json(args.output / "metrics.json", report)
    summary = ", ".join(f"{k} {v:.2f}" for k, v in metrics.get("mean", {}).items())
    print(f"wrote {len(written) + 2} files to {args.output}" + (f"; {summary}" if summary else ""))
    return 0


def _sampler_options(args: argparse.Namespace, task: Task, slice_offset: int, progress: bool) -> dict:
    options = {"task": task.name, "n_samples": args.samples, "seed": args.seed + slice_offset,
               "progress": progress}
    from recon.samplers import OPTION_RULES

    for name in ("sampler", "steps", *OPTION_RULES):
        if getattr(args, name) is not None:
            options[name] = getattr(args, name)
    return options


def _metrics(output: torch.Tensor, baseline: torch.Tensor, reference: torch.Tensor, keep: torch.Tensor | None,
             task: Task) -> dict:
    """Per-slice and mean PSNR/SSIM of the method and the baseline, on the ``keep`` pixels (None: all)."""
    from recon.metrics import psnr, ssim

    per_method = {}
    for name, images in (("method", output), (task.baseline, baseline)):
        p = np.asarray(psnr(images, reference, mask=keep), dtype=float)
        s = np.asarray(ssim(images, reference, mask=keep), dtype=float)
        per_method[name] = {"psnr": p.tolist(), "ssim": s.tolist()}
    return {"per_slice": per_method,
            "mean": {"psnr": float(np.mean(per_method["method"]["psnr"])),
                     "ssim": float(np.mean(per_method["method"]["ssim"])),
                     f"{task.baseline}_psnr": float(np.mean(per_method[task.baseline]["psnr"])),
                     f"{task.baseline}_ssim": float(np.mean(per_method[task.baseline]["ssim"]))}}


def vars_json(args: argparse.Namespace) -> dict:
    """The parsed arguments as JSON-friendly values."""
    return {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items() if k != "func"}
