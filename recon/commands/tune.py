"""`recon tune`: tune the score sampler's options for one task on a validation set.

    recon tune ct --projections 23 --val set.h5 [--n 8] [--calls 40] [--metric ssim|psnr]
    recon tune mri --accel 8 --val set.h5
    recon tune mar --val set.h5
    recon tune ct --projections 23 --val set.h5 --holdout
    recon tune mri --accel 8 --val set.h5 --sampler dds --start-from cs-tv --steps 50 --save-steps

Measurements are simulated from ``--n`` slices of the HDF5 slice dataset's
``--split`` (evenly spread, a fixed subset) exactly as `recon ct` / `recon mri`
simulate them from their input (MAR: implants inserted and a polychromatic
scan simulated per slice, seeded by ``--seed`` plus the slice index). Each call
reconstructs all of them with fixed seeds and scores the mean SSIM or PSNR;
scikit-optimize's ``gp_minimize`` picks the next point: for pc and ald lambda
(in [0, 1]) and snr (CT [0, 0.4], MRI [0.2, 0.8]); for dds eta (in [0, 1]) and
start_sigma (log scale, [0.03, 10] capped at the prior's sigma_max); for ddim
lambda and eta. The first call uses the prior's current defaults. Giving one
option (``--lam``, ``--eta``, ...) fixes it and tunes the other alone;
``--start-from`` (the warm start's first reconstruction) is kept fixed and
saved with the tuned values.
``--save-steps`` also stores ``--steps`` as the sampler's default number of
noise levels for the task.

``--holdout`` tunes without ground truth: every ``--holdout-every``-th
measured view (CT, MAR) or k-space column (MRI, never the fully sampled
centre) is held out, the rest reconstructed, and the score is the relative
error of the reconstruction's prediction of the held-out measurements. The
ground-truth metric at the chosen and at the default point is reported beside.

The output folder gets ``history.json`` (every call, rewritten after each; a
rerun with the same settings resumes from it and ``--calls`` may grow),
``convergence.png`` and ``tune.json`` (settings, history, best point, wall
time). Unless ``--no-save``, the best values go into the prior's profile
(``PRIOR.profile.json`` next to it), which `recon ct/mri/mar` then use as the
defaults for that task and sampler.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import torch

from recon.commands import ct, mar, mri
from recon.commands.options import add_sampler_arguments, sampler_flags
from recon.errors import InputError
from recon.io import atomic_path
from recon.samplers import DEFAULT_SAMPLER
from recon.tasks import Problem, Task

METRICS = ("ssim", "psnr")
# Per task: its measurement options and the task they make (MAR always simulates metal on the clean slices).
TASK_OPTIONS = {"ct": (ct.add_arguments, ct.task_from), "mri": (mri.add_arguments, mri.task_from),
                "mar": (mar.add_metal_arguments, lambda args: mar.task_from(args, simulate=True))}


def _add_tune_arguments(parser: argparse.ArgumentParser, task: str) -> None:
    parser.add_argument("--val", type=Path, required=True,
                        help="HDF5 slice dataset (see `recon data`), or 'real': the real validation slices of "
                             "recon.data.real_slices at the prior's size (never a test slice)")
    parser.add_argument("--tune", nargs="+", metavar="OPTION",
                        help="the options to tune (default: the sampler's two; refine_tv on request)")
    parser.add_argument("--split", default="val", help="split of the dataset to use (default: val)")
    parser.add_argument("--n", type=int, default=8, help="validation slices, evenly spread over the split (default: 8)")
    parser.add_argument("--calls", type=int, default=40, help="objective evaluations in total (default: 40)")
    parser.add_argument("--metric", choices=METRICS, default="ssim", help="quantity maximised (default: ssim)")
    parser.add_argument("--holdout", action="store_true",
                        help="ground-truth-free: score by the prediction of held-out measured lines")
    parser.add_argument("--holdout-every", type=int, default=4,
                        help="hold out every k-th measured view / k-space column (default: 4)")
    parser.add_argument("-o", "--output", type=Path, default=Path(f"out/tune-{task}"),
                        help=f"output folder (default: out/tune-{task})")
    parser.add_argument("--no-save", action="store_true", help="do not write the tuned values into the prior's profile")
    parser.add_argument("--save-steps", action="store_true",
                        help="also make --steps this sampler's default number of noise levels for the task")
    parser.add_argument("--batch-size", type=int, default=8, help="slices reconstructed together (default: 8)")
    add_sampler_arguments(parser)
    helps = {"sampler": f"sampler to tune: {', '.join(_tunable())} (default: {DEFAULT_SAMPLER})",
             "snr": "fix snr (tune lambda only)", "lam": "fix lambda (tune the other option only)",
             "eta": "fix eta (tune the other option only)", "start_sigma": "fix start sigma (tune eta only)",
             "start_from": "dds/ddim: the warm start's first reconstruction, a baseline (kept fixed; saved "
                           "with the tuned values)",
             "seed": "seed of the simulated measurements and of the sampler (plus the slice index)",
             "quiet": "no line per call"}
    for action in parser._actions:
        action.help = helps.get(action.dest, action.help)


def _tunable() -> tuple[str, ...]:
    from recon.tuning import TUNED_OPTIONS

    return tuple(TUNED_OPTIONS)


def register(subparsers) -> None:
    parser = subparsers.add_parser("tune", help="tune the sampler's options (lambda, snr / eta, start sigma) on a validation set",
                                   description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    tasks = parser.add_subparsers(dest="task", metavar="TASK")
    tasks.required = True
    for name, (add_arguments, task_from) in TASK_OPTIONS.items():
        sub = tasks.add_parser(name, help=f"tune for `recon {name}`")
        add_arguments(sub)
        _add_tune_arguments(sub, name)
        sub.set_defaults(func=lambda args, make=task_from: run(make(args), args))


def _check_arguments(args: argparse.Namespace) -> None:
    for name, low in (("n", 1), ("calls", 1), ("batch_size", 1), ("holdout_every", 2)):
        if getattr(args, name) < low:
            raise InputError(f"--{name.replace('_', '-')}: must be >= {low}, got {getattr(args, name)}")
    from recon.samplers import check_option_values

    check_option_values(sampler_flags(args))
    if args.save_steps and (args.steps is None or args.no_save):
        raise InputError("--save-steps: needs --steps and a profile to write (no --no-save)")


def _validation_images(args: argparse.Namespace, modality: str, size: int) -> tuple[torch.Tensor, dict]:
    """(n, 1, H, W) model-unit slices evenly spread over the split (or the real validation slices at ``size``),
    and the record of which they are."""
    from priors.checkpoint import sha256_file
    from recon.data import SliceDataset, real_slices

    if str(args.val) == "real":
        names = real_slices.names(modality, "validation")[:args.n]
        return torch.cat([real_slices.load(name, size) for name in names]), {"real_slices": names, "size": size}

    dataset = SliceDataset(args.val, args.split)
    found = dataset.manifest.get("modality")
    if found not in (None, modality):
        raise InputError(f"--val {args.val}: a {found} dataset, not {modality}")
    if len(dataset) == 0:
        raise InputError(f"--val {args.val}: the {args.split} split is empty")
    indices = sorted({int(i) for i in np.round(np.linspace(0, len(dataset) - 1, min(args.n, len(dataset))))})
    return torch.stack([dataset[i] for i in indices]), {"path": str(args.val.resolve()), "sha256": sha256_file(args.val),
                                                          "split": args.split, "indices": indices}


def _problems(task: Task, args: argparse.Namespace, images: torch.Tensor, device: torch.device
              ) -> tuple[list[Problem], list[int]]:
    """The task's problem for every batch, simulated as the reconstruction verbs do, and their seeds."""
    starts = range(0, images.shape[0], args.batch_size)
    problems = [task.problem(images[s:s + args.batch_size].to(device), args.seed + s) for s in starts]
    return problems, [args.seed + s for s in starts]


def _command_line(args: argparse.Namespace) -> str:
    """A canonical `recon tune` command line for the parsed arguments."""
    parts = ["recon", "tune", args.task]
    for key, value in sorted(vars(args).items()):
        if key in ("task", "verb", "quiet", "func") or value is None or value is False:
            continue
        if key == "holdout_every" and not args.holdout:
            continue
        value = " ".join(map(str, value)) if isinstance(value, list) else value
        parts.append(f"--{key.replace('_', '-')}" + ("" if value is True else f" {value}"))
    return " ".join(parts)


def _progress(total: int, metric: str, quiet: bool):
    def show(call: int, record: dict, best: dict) -> None:
        if quiet:
            return
        point = " ".join(f"{k} {v:.4g}" for k, v in record.items() if k not in ("score", "seconds"))
        print(f"call {call}/{total}: {point} -> {metric} {record['score']:.4f} "
              f"(best {best['score']:.4f}) [{record['seconds']:.1f} s]", flush=True)

    return show


def _fixed_options(prior, task: Task, sampler: str, args: argparse.Namespace) -> tuple[dict, dict, dict]:
    """(fixed options, search space, the values the run starts from), checked before any output.

    The warm start's ``start_from`` is held at the profile's when not given, and saved with the values
    tuned for it."""
    from recon.samplers import OPTIONS, resolve_options, sampler_defaults
    from recon.tuning import search_space

    fixed = {k: v for k, v in sampler_flags(args).items() if k != "steps"}
    space = search_space(sampler, task.name, fixed, prior.sde.sigma_max, args.tune)
    defaults = sampler_defaults(prior, sampler, task.defaults_key)
    probe = {k: space[k][1] if defaults.get(k) is None else defaults[k] for k in space}
    resolve_options(prior, sampler, task.defaults_key, **fixed, **probe)  # every error before any output
    warm = "start_sigma" in space or fixed.get("start_sigma", defaults.get("start_sigma")) is not None
    if warm and "start_from" in OPTIONS[sampler].tuned and "start_from" not in fixed:
        fixed["start_from"] = defaults["start_from"]
    start = {k: space[k][1] if defaults[k] is None else float(defaults[k]) for k in space}  # None: the top
    return fixed, space, start


def run(task: Task, args: argparse.Namespace) -> int:
    """Tune ``task``'s sampler options on the validation slices; returns an exit code."""
    from recon.pipeline import device_from, load_prior, size_mismatch
    from recon.samplers import resolve_options
    from recon.tuning import holdout_objective, metric_objective, save_convergence_plot, search_space, tune

    _check_arguments(args)
    device = device_from(args.device)
    sampler = args.sampler or DEFAULT_SAMPLER
    search_space(sampler, task.name, sampler_flags(args), names=args.tune)  # refuse before loading anything
    prior = load_prior(task, args.prior, device)
    images, val_set = _validation_images(args, task.modality, prior.meta.get("size"))
    mismatch = size_mismatch(prior, images.shape[-1], f"--val {args.val}")
    if mismatch:
        raise InputError(mismatch)
    fixed, space, start = _fixed_options(prior, task, sampler, args)
    problems, seeds = _problems(task, args, images, device)
    steps = {"steps": args.steps} if args.steps else {}

    def options_for(point: dict):
        return resolve_options(prior, sampler, task.defaults_key, **fixed, **steps, **point)

    gt_objective = metric_objective(prior, problems, seeds, args.metric, options_for)
    if args.holdout:
        axis, keep_center = task.holdout_layout(images.shape[-1])
        objective = holdout_objective(prior, problems, seeds, axis, options_for, args.holdout_every, keep_center)
        score_name = "-holdout_error"
    else:
        objective, score_name = gt_objective, args.metric
    settings = {"task": task.name, "measurement": task.describe(), "prior": prior.meta.get("id"),
                "prior_sha256": prior.meta.get("weights", {}).get("sha256"), "sampler": sampler,
                "steps": args.steps, "fixed": fixed, "space": space, "objective": score_name,
                "holdout_every": args.holdout_every if args.holdout else None, "val_set": val_set,
                "seed": args.seed, "measurement_options": {k: v for k, v in task.record().items() if k != "task"}}
    args.output.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    result = tune(objective, space, args.calls, args.seed, args.output / "history.json", settings, start,
                  _progress(args.calls, score_name, args.quiet))
    report = _report(args, result, settings, fixed, space, gt_objective if args.holdout else None)
    report["wall_time_s"] = round(time.perf_counter() - started, 3)
    report["device"] = str(device)
    save_convergence_plot(result, args.output / "convergence.png", score_name)
    report["profile"] = None if args.no_save else _save(prior, task, args, report, val_set, images.shape[0])
    with atomic_path(args.output / "tune.json") as tmp:
        tmp.write_text(json.dumps(report, indent=2, default=float))
    point = ", ".join(f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}" for k, v in report["best"].items())
    print(f"best {point}: {score_name} {result.best_score:.4f} (defaults: {result.history[0]['score']:.4f}); "
          f"wrote {args.output / 'tune.json'}" + (f" and {report['profile']}" if report["profile"] else ""),
          file=sys.stdout)
    return 0


def _report(args: argparse.Namespace, result, settings: dict, fixed: dict, space: dict, gt_objective) -> dict:
    """tune.json: the settings, the best and the first point and the whole history."""
    first = {k: result.history[0][k] for k in space}  # the defaults when the run began
    report = {"command": _command_line(args), **settings, "calls": len(result.history),
              "best": {**fixed, **result.best}, "best_score": result.best_score, "start": {**fixed, **first},
              "start_score": result.history[0]["score"], "history": result.history}
    if gt_objective is not None:  # how the ground-truth-free choice does on the ground-truth metric
        report["ground_truth_check"] = {"metric": args.metric, "at_best": gt_objective(result.best),
                                        "at_start": gt_objective(first)}
    return report


def _save(prior, task: Task, args: argparse.Namespace, report: dict, val_set: dict, n: int) -> str:
    """Write the best values into the prior's profile for the task and sampler; returns its path."""
    from recon.tuning import save_profile

    values = {**report["best"], **({"steps": args.steps} if args.save_steps else {})}
    entry = {"values": values, "sampler": report["sampler"], "steps": args.steps, "metric": report["objective"],
             "value": report["best_score"], "fixed": report["fixed"], "measurement": report["measurement"],
             "val_set": val_set, "n": n, "calls": report["calls"], "prior_sha256": report["prior_sha256"],
             "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
             "source": report["command"], "report": str((args.output / "tune.json").resolve())}
    return str(save_profile(prior.profile, task.defaults_key, report["sampler"], entry))
