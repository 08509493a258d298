"""`recon bench`: paper-style benchmarks on the test split of the project's datasets.

    recon bench tables   --ct ct128.h5 --mri mri128.h5 [--n 8] [--quick] -o out/bench
    recon bench samplers --ct ct128.h5 --mri mri128.h5 [--nfe 2000]
    recon bench nfe      --ct ct128.h5 --mri mri128.h5 [--nfe-list 10 20 50 100 200 500 1000 2000]
    recon bench real     [--split test|validation] [--size 128|native|both] [--quick] -o out/bench_real

Suites:
  tables    Tables 8.1-8.3 and Figure 8.5: MRI at 24x / 8x / 4x, sparse-view CT
            with 10 / 20 / 23 views, MAR; classical baselines beside the score
            method (its default sampler), PSNR / SSIM against the number of
            measurements.
  samplers  the paper's samplers (pc, ald, langevin, score-sde) at equal network
            evaluations on 23-view CT and 8x MRI, beside FBP / zero-filled.
  nfe       PSNR / SSIM against network evaluations for the fast samplers
            (dds, ddim) and pc on 23-view CT and 8x MRI.
  real      the tables on real scans (recon.data.real_slices, no dataset
            needed): sparse-view CT at 10 / 23 / 60 views, MAR, MRI at 4x /
            8x / 24x, at 128² and/or native size, the FISTA-TV / CS-TV
            weights tuned on the validation slices only (recon.bench_real).

Each writes report.md (tables with the command, commit, machine, prior ids,
slices and seed), results.json (per-slice values) and PNG plots. --quick
uses 4 slices and small evaluation budgets so a suite finishes in minutes on
a CPU (real: 128² only and 6 tuning calls per weight); the defaults are the
full runs for a GPU.
"""
from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import time
from pathlib import Path

import torch

from recon import bench
from recon.bench import Method
from recon.errors import InputError
from recon.tasks import MetalArtifacts, SparseViewCT, Task, UndersampledMRI
from recon.tasks.metal import DEFAULT_FOV_CM

SUITES = ("tables", "samplers", "nfe", "real")
TABLE_METHODS = {"ct-sparse-view": ("fbp", "fista-tv", "sirt", "fbpconvnet", "score"),
                 "mri": ("zero-filled", "cs-tv", "cs-wavelet", "unet-mri", "score"),
                 "ct-mar": ("li", "nmar", "score")}
SUPERVISED = {"fbpconvnet": "ct", "unet-mri": "mri"}  # table methods that need a trained network
PAPER_SAMPLERS = ("pc", "ald", "langevin", "score-sde")
CURVE_SAMPLERS = ("dds", "ddim", "pc")


def register(subparsers) -> None:
    parser = subparsers.add_parser("bench", help="paper-style benchmarks (tables, samplers, nfe, real)",
                                   description=__doc__,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("suite", choices=SUITES)
    parser.add_argument("--ct", type=Path, default=None, help="CT dataset (HDF5 from `recon data build`)")
    parser.add_argument("--mri", type=Path, default=None, help="MRI dataset (HDF5 from `recon data build`)")
    parser.add_argument("--split", default="test",
                        help="split to evaluate on (default: test; real: test or validation)")
    parser.add_argument("--n", type=int, default=None, help="first n slices of the split (default 16; quick 4)")
    parser.add_argument("--quick", action="store_true", help="few slices and small budgets (minutes on a CPU)")
    parser.add_argument("--nfe", type=int, default=None, help="samplers: network evaluations each (default 2000; quick 200); tables: the score "
                             "method's (default: the default sampler's own steps)")
    parser.add_argument("--nfe-list", type=int, nargs="+", default=None,
                        help="nfe: budgets to plot (default 10 20 50 100 200 500 1000 2000; quick up to 200)")
    parser.add_argument("--samplers", nargs="+", default=None,
                        help=f"nfe: samplers to sweep (default {' '.join(CURVE_SAMPLERS)})")
    parser.add_argument("--reference-nfe", type=int, default=2000,
                        help="nfe: also run pc at this budget, the target's reference (default 2000; 0: none)")
    parser.add_argument("--no-mar", action="store_true", help="tables: leave out metal artifact removal")
    parser.add_argument("--fov-cm", type=float, default=DEFAULT_FOV_CM,
                        help=f"tables: field of view of the simulated metal scans in cm (default: {DEFAULT_FOV_CM:g})")
    parser.add_argument("--size", choices=("128", "native", "both"), default=None,
                        help="real: slices resized to 128², at their native size, or both (default both; quick 128)")
    parser.add_argument("--slices", nargs="+", default=None,
                        help="real: the reported slices (default: every slice of the split)")
    parser.add_argument("--views", type=int, nargs="+", default=None, help="real: CT view counts (default 10 23 60)")
    parser.add_argument("--accels", type=float, nargs="+", default=None,
                        help="real: MRI accelerations (default 4 8 24)")
    parser.add_argument("--tuning-calls", type=int, default=None,
                        help="real: evaluations per tuned FISTA-TV / CS-TV weight (default 12; quick 6)")
    parser.add_argument("--ct-prior", default="ct-128", help="CT prior (bundled name or path)")
    parser.add_argument("--mri-prior", default="mri-128", help="MRI prior (bundled name or path)")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default=None, help="cpu, cuda ... (default: cuda when available)")
    parser.add_argument("-o", "--output", type=Path, default=Path("out/bench"))
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.set_defaults(func=run)


def _commit() -> str:
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=True,
                              cwd=Path(__file__).resolve().parent).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def _table_methods(task: str, score_nfe: int | None = None, names: tuple[str, ...] | None = None) -> list[Method]:
    """The table's methods for ``task`` (``names``, default TABLE_METHODS'), leaving out (with a note)
    supervised networks that are not trained.

    ``score_nfe`` sets the score method's budget (the default sampler at about that
    many network evaluations); None keeps the sampler's default steps.
    """
    from priors.checkpoint import prior_paths
    from recon.samplers import DEFAULT_SAMPLER
    from recon.supervised.baseline import DEFAULT_MODELS, SUPERVISED_DIR

    methods = []
    for name in names or TABLE_METHODS[task]:
        if name == "score" and score_nfe is not None:
            name = f"score:{DEFAULT_SAMPLER}:{score_nfe}"
        model = DEFAULT_MODELS.get(SUPERVISED.get(name))
        if model is not None and not prior_paths(SUPERVISED_DIR / model)[1].is_file():
            print(f"recon bench: {name} left out: no trained network {SUPERVISED_DIR / model} "
                  "(python -m recon.supervised.train)", file=sys.stderr)
            continue
        methods.append(Method.parse(name))
    return methods


def _reference(args: argparse.Namespace) -> str | None:
    """The nfe suite's reference method, pc at ``--reference-nfe`` (None for 0)."""
    return f"score:pc:{args.reference_nfe}" if args.reference_nfe > 0 else None


def _plan(args: argparse.Namespace) -> list[tuple[str, list[Task], list[Method]]]:
    """(modality, tasks, methods) groups of the chosen suite."""
    groups = []
    if args.suite == "tables":
        if args.ct:
            groups.append(("ct", [SparseViewCT(projections=v) for v in (10, 20, 23)],
                           _table_methods("ct-sparse-view", args.nfe)))
            if not args.no_mar:
                groups.append(("ct", [MetalArtifacts(simulate=True, fov_cm=args.fov_cm)], _table_methods("ct-mar", args.nfe)))
        if args.mri:
            groups.append(("mri", [UndersampledMRI(accel=r) for r in (24, 8, 4)], _table_methods("mri", args.nfe)))
        return groups
    if args.suite == "samplers":
        budget = args.nfe or (200 if args.quick else 2000)
        samplers = [Method.parse(f"score:{s}:{budget}") for s in PAPER_SAMPLERS]
    else:
        budgets = args.nfe_list or ((10, 20, 50, 100, 200) if args.quick else (10, 20, 50, 100, 200, 500, 1000, 2000))
        samplers = [Method.parse(f"score:{s}:{n}") for s in args.samplers or CURVE_SAMPLERS for n in budgets
                    if n >= (1 if s in ("dds", "ddim") else 3)]
        reference = _reference(args)
        if reference is not None and Method.parse(reference) not in samplers:
            samplers.append(Method.parse(reference))
    if args.ct:
        groups.append(("ct", [SparseViewCT(projections=23)], [Method("fbp"), *samplers]))
    if args.mri:
        groups.append(("mri", [UndersampledMRI(accel=8)], [Method("zero-filled"), *samplers]))
    return groups


def run(args: argparse.Namespace) -> int:
    import priors
    from recon.pipeline import device_from

    if args.suite == "real":
        return _run_real(args)
    if not args.ct and not args.mri:
        raise InputError("recon bench: give --ct and/or --mri datasets")
    n = args.n or (4 if args.quick else 16)
    if n < 1 or args.batch_size < 1:
        raise InputError("--n and --batch-size must be >= 1")
    device = device_from(args.device)
    commit = _commit()  # before the run: the tree may change while it goes on
    groups = _plan(args)
    data = {"ct": args.ct, "mri": args.mri}
    images = {m: bench.load_split(data[m], args.split, n) for m in {g[0] for g in groups}}
    loaded = {}
    for modality in images:
        if any(method.is_score for g in groups if g[0] == modality for method in g[2]):
            loaded[modality] = priors.load(args.ct_prior if modality == "ct" else args.mri_prior, device)
    started = time.perf_counter()
    rows = []
    for modality, tasks, methods in groups:
        rows += bench.evaluate(images[modality], tasks, methods, loaded.get(modality), args.batch_size,
                               args.seed, device, progress=not args.quiet)
    wall = time.perf_counter() - started

    header = _header(args, commit, device, loaded, {m: int(v.shape[0]) for m, v in images.items()}, wall)
    args.output.mkdir(parents=True, exist_ok=True)
    plots = _plots(args.suite, rows, args.output)
    report = _report(header, rows, plots)
    reference = _reference(args)
    if args.suite == "nfe" and reference is not None:
        header["target"], header["target_reference"] = bench.target_check(rows, reference), reference
        report += "\n" + bench.target_markdown(header["target"], reference) + "\n"
    _write(args.output, report, {**header, "rows": rows})
    return 0


def _header(args: argparse.Namespace, commit: str, device: torch.device, loaded: dict, slices, wall: float) -> dict:
    """The provenance of a run for results.json and report.md: command, commit, machine, priors, split, slices,
    seed, wall time."""
    return {"suite": args.suite, "command": "recon " + " ".join(sys.argv[1:]) if sys.argv[0].endswith("recon")
            else " ".join(sys.argv), "commit": commit, "host": platform.node(), "device": str(device),
            "torch": torch.__version__, "threads": torch.get_num_threads(),
            "priors": {m: p.meta.get("id") for m, p in loaded.items()}, "split": args.split,
            "slices": slices, "seed": args.seed, "wall_time_s": round(wall, 1)}


def _write(output: Path, report: str, results: dict) -> None:
    """report.md and results.json into ``output`` (atomically); the report is printed too."""
    from recon.io import atomic_path

    with atomic_path(output / "report.md") as tmp:
        tmp.write_text(report)
    with atomic_path(output / "results.json") as tmp:
        tmp.write_text(json.dumps(results, indent=1, default=float))
    print(report)


def _run_real(args: argparse.Namespace) -> int:
    """`recon bench real`: the tables on the real slices of :mod:`recon.data.real_slices`."""
    import priors
    from recon import bench_real
    from recon.data import real_slices
    from recon.pipeline import device_from

    size = args.size or ("128" if args.quick else "both")
    methods = {key: _table_methods(key, args.nfe, names) for key, names in bench_real.METHODS.items()}
    plan = bench_real.Plan(split=args.split, sizes=bench_real.SIZES if size == "both" else (size,),
                           slices=tuple(args.slices or real_slices.names(split_name=args.split)),
                           views=tuple(args.views or bench_real.CT_VIEWS),
                           accels=tuple(args.accels or bench_real.MRI_ACCELS), mar=not args.no_mar, methods=methods,
                           tuning_calls=(6 if args.quick else 12) if args.tuning_calls is None else args.tuning_calls,
                           seed=args.seed)
    plan.check()
    device = device_from(args.device)
    commit = _commit()
    reported = {real_slices.get(n).modality for n in plan.slices}
    scored = {bench_real.MODALITY[key] for key, ms in methods.items() if any(m.is_score for m in ms)}
    loaded = {m: priors.load(args.ct_prior if m == "ct" else args.mri_prior, device) for m in sorted(reported & scored)}
    args.output.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    result = bench_real.run(plan, loaded, device, args.output, progress=not args.quiet)
    wall = time.perf_counter() - started
    evaluated = {m: list(dict.fromkeys(r["slice"] for r in result["rows"] if bench_real.MODALITY[r["task"]] == m))
                 for m in real_slices.MODALITIES}
    header = _header(args, commit, device, loaded, {m: v for m, v in evaluated.items() if v}, wall)
    header["sizes"], header["tuned"] = list(plan.sizes), result["tuned"]
    _write(args.output, _real_report(header, result), {**header, "rows": result["rows"]})
    return 0


def _real_report(header: dict, result: dict) -> str:
    """report.md of `recon bench real`: provenance, the tables, the tuned weights, timings and panels."""
    from recon import bench_real

    lines = ["## recon bench real", "", _provenance(header),
             f"Real slices (recon.data.real_slices), {header['split']} split: "
             + "; ".join(f"{m} {', '.join(names)}" for m, names in header["slices"].items())
             + f". Sizes: {', '.join(header['sizes'])}; seed {header['seed']}; noiseless simulated measurements; "
             f"total wall time {header['wall_time_s']:.0f} s.",
             "PSNR / SSIM: model units, output clipped to [0, 1], data range 1, whole image (MAR: metal pixels "
             "excluded); cells PSNR (dB) / SSIM. Native size: every method on the slice's own grid and its "
             "measurement (the score method samples on the prior's grid through A R, then refines on the "
             "slice's grid).", "",
             bench_real.tables(result["rows"]),
             "FISTA-TV / CS-TV weights, tuned on the validation slices only (best mean PSNR, recon.tuning.tune "
             "over log10 lam):", "", bench_real.tuned_table(result["tuned"]), "",
             "Wall time per slice:", "", bench_real.timing_table(result["rows"]), ""]
    lines += [f"![{p.stem}]({p.name})" for p in result["panels"]]
    return "\n".join(lines) + "\n"


def _plots(suite: str, rows: list[dict], out: Path) -> list[Path]:
    if suite == "tables":
        swept = [r for r in rows if r["task"] != "ct-mar"]
        return [bench.plot_against(swept, lambda r: r["setting"], "views (CT) / acceleration (MRI)",
                                   lambda r: r["method"], out / "measurements.png",
                                   "PSNR / SSIM against the number of measurements (Figure 8.5)")] if swept else []
    plot = bench.plot_nfe(rows, out / "nfe.png") if suite == "nfe" else None
    return [plot] if plot else []


def _provenance(header: dict) -> str:
    """The report's sentence on the command, commit, machine and priors."""
    return (f"Command: `{header['command']}` (commit {header['commit']}; {header['host']}, {header['device']}, "
            f"torch {header['torch']}, {header['threads']} threads). Priors: "
            f"{', '.join(f'{m} {i}' for m, i in header['priors'].items()) or 'none'}.")


def _report(header: dict, rows: list[dict], plots: list[Path]) -> str:
    lines = [f"## recon bench {header['suite']}", "",
             f"{_provenance(header)} {header['split']} split, first "
             f"{', '.join(f'{n} {m}' for m, n in header['slices'].items())} slices; "
             f"seed {header['seed']}; noiseless simulated data; total wall time {header['wall_time_s']:.0f} s.",
             "PSNR / SSIM: model units, output clipped to [0, 1], data range 1, whole image "
             "(MAR: true metal pixels excluded); mean ± std over slices. NFE: network evaluations per slice.",
             "", bench.markdown(rows), ""]
    lines += [f"![{p.stem}]({p.name})" for p in plots]
    return "\n".join(lines) + "\n"
