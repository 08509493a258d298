"""`recon bench real`: the paper-style tables on real scans instead of the generated test sets.

The slices are those of :mod:`recon.data.real_slices` (real CT and MR shipped with the installed packages
and the shared data folder) with their fixed split: the weights of the classical methods are tuned on the
VALIDATION slices only, the tables report the slices of the chosen split (TEST by default). Each slice's
measurement is simulated from it by the task, as `recon ct` / `recon mri` / `recon mar --simulate-metal`
do, and every (slice, task) is scored by :func:`recon.bench.evaluate` (:mod:`recon.metrics`: model units,
output clipped to [0, 1], data range 1, whole image; MAR leaves the metal pixels out).

Tasks and methods (:data:`METHODS`):

* sparse-view CT at 10 / 23 / 60 views: FBP, FISTA-TV, FBPConvNet, score;
* MAR: implants simulated into the slice over its own field of view (:class:`recon.tasks.MetalArtifacts`):
  LI, NMAR, score;
* MRI at 4x / 8x / 24x: zero-filled, CS-TV, U-Net, score.

Sizes: ``128`` resizes every slice to 128² (:func:`recon.data.real_slices.load`); ``native`` runs every
method on the slice's own grid against the measurement simulated there (the score method samples on the
prior's 128² grid through A R and, with ``refine_tv``, refines on the slice's grid, as ``recon ct`` without
``--resample`` does). The supervised networks run at 128² only, the size they were trained at.

Tuning (:func:`tune_weight`): per task, setting and size, ``lam`` of FISTA-TV / CS-TV maximises the mean
PSNR over the modality's validation slices, by :func:`recon.tuning.tune` (Gaussian-process Bayesian
optimisation over log10 lam in :data:`TUNED_RANGES`, the first call at the function's default weight).
"""
from __future__ import annotations

import dataclasses
import inspect
import math
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from recon import bench, tuning
from recon.baselines import CLASSICAL
from recon.bench import Method
from recon.data import real_slices
from recon.data.real_slices import RealSlice
from recon.errors import InputError
from recon.tasks import MetalArtifacts, SparseViewCT, Task, UndersampledMRI

CT_VIEWS = (10, 23, 60)
MRI_ACCELS = (4, 8, 24)
METHODS = {"ct-sparse-view": ("fbp", "fista-tv", "fbpconvnet", "score"), "ct-mar": ("li", "nmar", "score"),
           "mri": ("zero-filled", "cs-tv", "unet-mri", "score")}
MODALITY = {"ct-sparse-view": "ct", "ct-mar": "ct", "mri": "mri"}
TITLES = {"ct-sparse-view": "Sparse-view CT", "ct-mar": "CT metal artifact removal (simulated metal)",
          "mri": "Undersampled MRI"}
TUNED_RANGES = {"fista-tv": (-6.0, -2.5), "cs-tv": (-4.5, -1.5)}
"""log10 of the ``lam`` searched for each tuned method (FISTA-TV's default 1e-5, CS-TV's 3e-4 inside)."""
PANELS = {"ct-sparse-view": ("23 views", "fista-tv"), "ct-mar": ("metal", "nmar"), "mri": ("8x", "cs-tv")}
"""Per task: the setting shown in its panel (else its first) and the classical method beside the score."""
SIZES = ("128", "native")
RESIZED = 128
Case = tuple[RealSlice, torch.Tensor]
"""A slice and its image (1, 1, N, N) in model units at the size being evaluated."""


@dataclass(frozen=True)
class Plan:
    """What one run evaluates.

    Attributes:
        split: the reported split ("test" or "validation").
        sizes: "128" and/or "native".
        slices: the reported slices (names of ``split``).
        views, accels: the sparse-view CT view counts and the MRI accelerations.
        mar: whether to run metal artifact removal.
        methods: per task key of :data:`METHODS`, its methods (score methods at their budget).
        tuning_calls: objective evaluations per tuned weight.
        seed: the seed of every simulated measurement, score run and tuning run.
    """

    split: str
    sizes: tuple[str, ...]
    slices: tuple[str, ...]
    views: tuple[int, ...] = CT_VIEWS
    accels: tuple[float, ...] = MRI_ACCELS
    mar: bool = True
    methods: dict[str, list[Method]] = dataclasses.field(default_factory=dict)
    tuning_calls: int = 12
    seed: int = 0

    def check(self) -> None:
        """InputError for a split, size, slice or budget out of range."""
        if self.split not in real_slices.SPLITS:
            raise InputError(f"--split: choose one of {', '.join(real_slices.SPLITS)} for the real slices")
        if not self.sizes or any(s not in SIZES for s in self.sizes):
            raise InputError(f"--size: choose 128, native or both, got {', '.join(self.sizes)}")
        for name in self.slices:
            if real_slices.get(name).split != self.split:
                raise InputError(f"--slices: {name} is a {real_slices.split(name)} slice, not a {self.split} one")
        if self.tuning_calls < 1 or min(self.views, default=1) < 1 or min(self.accels, default=1) < 1:
            raise InputError("--tuning-calls, --views and --accels must be >= 1")

    def settings(self, key: str) -> list[Task]:
        """The tasks of task key ``key`` (MAR's field of view is set per slice, :func:`for_slice`)."""
        if key == "ct-sparse-view":
            return [SparseViewCT(projections=v) for v in self.views]
        if key == "mri":
            return [UndersampledMRI(accel=r) for r in self.accels]
        return [MetalArtifacts(simulate=True)] if self.mar else []


def for_slice(task: Task, info: RealSlice) -> Task:
    """``task`` for slice ``info``: simulated metal is scanned over the slice's own field of view."""
    return dataclasses.replace(task, fov_cm=info.fov_cm) if isinstance(task, MetalArtifacts) else task


def load_cases(names: list[str], size: str) -> list[Case]:
    """The slices ``names`` at ``size`` ("128": resized to 128², "native"), leaving out (with a note on
    stderr) those whose file is absent."""
    cases = []
    for name in names:
        try:
            cases.append((real_slices.get(name), real_slices.load(name, RESIZED if size == "128" else None)))
        except InputError as exc:
            print(f"recon bench real: {name} left out: {exc}", file=sys.stderr)
    return cases


def tune_weight(method: str, task: Task, validation: list[Case], calls: int, seed: int = 0,
                device: torch.device | str = "cpu") -> dict:
    """The ``lam`` of ``method`` (a key of :data:`TUNED_RANGES`) with the best mean PSNR over ``validation``
    for ``task``, by :func:`recon.tuning.tune` over log10 lam with ``calls`` evaluations.

    Raises ValueError when a slice of ``validation`` is not a validation slice (tuning never sees the
    reported ones) and InputError when there is none. Returns the record: method, task, label, lam,
    validation_psnr (dB), calls, slices.
    """
    leaked = [info.name for info, _ in validation if info.split != "validation"]
    if leaked:
        raise ValueError(f"tuning may only see validation slices, got {', '.join(leaked)}")
    if not validation:
        raise InputError(f"no validation slice to tune {method} on (their files are absent)")
    default = inspect.signature(CLASSICAL[method]).parameters["lam"].default

    def objective(point: tuning.Point) -> float:
        candidate = Method(method, params=(("lam", 10 ** point["log10_lam"]),))
        return float(np.mean([bench.evaluate(image, [for_slice(task, info)], [candidate], seed=seed, device=device,
                                             progress=False)[0]["psnr"] for info, image in validation]))

    result = tuning.tune(objective, {"log10_lam": TUNED_RANGES[method]}, calls=calls, seed=seed,
                         start={"log10_lam": math.log10(default)})
    return {"method": method, "task": task.name, "label": task.label, "lam": 10 ** result.best["log10_lam"],
            "validation_psnr": result.best_score, "calls": len(result.history),
            "slices": [info.name for info, _ in validation]}


def _methods(plan: Plan, key: str, size: str) -> list[Method]:
    """The methods of task key ``key`` at ``size``: the supervised networks left out at native size (the score
    methods run on the slice's grid, sampling on the prior's through A R, :func:`recon.samplers.reconstruct`)."""
    return [method for method in plan.methods.get(key, [])
            if method.is_score or size == "128" or method.name in CLASSICAL]


def run(plan: Plan, priors_by_modality: dict, device: torch.device | str, output: Path,
        progress: bool = True) -> dict:
    """Evaluate ``plan``; writes one panel per task and size into ``output``.

    ``priors_by_modality`` holds the loaded prior of each modality with score methods. Returns
    ``{"rows": [...], "tuned": [...], "panels": [...]}``: one row per (size, slice, task, method) as
    :func:`recon.bench.evaluate` gives them (psnr / ssim lists of one value) plus slice, split, size,
    side and params; the tuned weights (:func:`tune_weight`); the panel files.
    """
    from tqdm import tqdm

    rows, tuned, panels = [], [], []
    for size in plan.sizes:
        for key, modality in MODALITY.items():
            tasks = plan.settings(key)
            reported = load_cases([n for n in plan.slices if real_slices.get(n).modality == modality], size)
            if not tasks or not reported or not plan.methods.get(key):
                continue
            methods = _methods(plan, key, size)
            tuned_here = any(m.name in TUNED_RANGES for m in methods)
            validation = load_cases(real_slices.names(modality, "validation"), size) if tuned_here else []
            panel_task = next((t for t in tasks if t.label == PANELS[key][0]), tasks[0])
            shown: dict = {}
            for task in tqdm(tasks, desc=f"{key} {size}", unit="setting", disable=not progress):
                chosen = []
                for method in methods:
                    if method.name in TUNED_RANGES:
                        record = tune_weight(method.name, task, validation, plan.tuning_calls, plan.seed, device)
                        tuned.append({**record, "size": size})
                        method = dataclasses.replace(method, params=(("lam", record["lam"]),))
                    chosen.append(method)
                for info, image in reported:
                    outputs = shown if info.name == reported[0][0].name and task == panel_task else None
                    found = bench.evaluate(image, [for_slice(task, info)], chosen, priors_by_modality.get(modality),
                                           batch=1, seed=plan.seed, device=device, progress=False, outputs=outputs)
                    rows += [{**row, "slice": info.name, "split": info.split, "size": size,
                              "side": int(image.shape[-1]), "params": dict(m.params)}
                             for row, m in zip(found, chosen)]
            panels.append(_panel(output / f"panel_{key}_{size}.png", key, size, reported[0], panel_task, shown))
    return {"rows": rows, "tuned": tuned, "panels": panels}


def _panel(path: Path, key: str, size: str, case: Case, task: Task, shown: dict) -> Path:
    """reference | the classical method of :data:`PANELS` | score | |score error| for one slice; the error
    of the output clipped to [0, 1] as the metrics clip it, without the metal put back (MAR)."""
    from recon.panel import save_panel
    from recon.units import HU_PER_UNIT, hu_to_model

    info, image = case
    reference = image[0, 0].numpy()
    images, error = {"reference": reference}, None
    for (_, name), out in shown.items():
        if name == PANELS[key][1] or name.startswith("score"):
            images[name] = out[0, 0].numpy()
        if name.startswith("score"):
            error = np.abs(np.clip(images[name], 0, 1) - reference)
            if isinstance(task, MetalArtifacts):
                error[images[name] > hu_to_model(task.threshold)] = 0
    grid = "resized" if size == "128" else "native"
    title = f"{info.name} ({info.split} slice, {image.shape[-1]}² {grid}): {for_slice(task, info).describe()}"
    unit = (HU_PER_UNIT, "HU") if MODALITY[key] == "ct" else (1.0, "")
    return save_panel(path, images, MODALITY[key], error=error, unit=unit, title=title)


def _cell(rows: list[dict]) -> str:
    """Mean PSNR (dB) / SSIM over every slice value of ``rows``."""
    psnrs, ssims = [v for r in rows for v in r["psnr"]], [v for r in rows for v in r["ssim"]]
    return f"{np.mean(psnrs):.2f} / {np.mean(ssims):.3f}"


def tables(rows: list[dict]) -> str:
    """Markdown: per task and size, rows = setting x (the mean over the slices, then each slice when there
    are several), columns = methods, cells = PSNR (dB) / SSIM."""
    lines = []
    for key in MODALITY:
        for size in SIZES:
            group = [r for r in rows if r["task"] == key and r["size"] == size]
            if not group:
                continue
            columns = list(dict.fromkeys(r["method"] for r in group))
            names = list(dict.fromkeys(r["slice"] for r in group))
            subsets = [(f"mean of {len(names)}", names)] + ([(n, [n]) for n in names] if len(names) > 1 else [])
            lines += [f"### {TITLES[key]}, {'128² (resized)' if size == '128' else 'native size'}", "",
                      "| setting | slices | " + " | ".join(columns) + " |",
                      "|---|---|" + "---|" * len(columns)]
            for label in dict.fromkeys(r["label"] for r in group):
                for title, members in subsets:
                    cells = [_cell([r for r in group if r["label"] == label and r["method"] == c
                                    and r["slice"] in members]) for c in columns]
                    lines.append(f"| {label} | {title} | " + " | ".join(cells) + " |")
            lines.append("")
    return "\n".join(lines)


def tuned_table(tuned: list[dict]) -> str:
    """Markdown: the tuned weights with their validation PSNR."""
    lines = ["| size | task | setting | method | lam | validation PSNR (dB) | calls | validation slices |",
             "|---|---|---|---|---:|---:|---:|---|"]
    lines += [f"| {t['size']} | {t['task']} | {t['label']} | {t['method']} | {t['lam']:.3g} | "
              f"{t['validation_psnr']:.2f} | {t['calls']} | {', '.join(t['slices'])} |" for t in tuned]
    return "\n".join(lines)


def timing_table(rows: list[dict]) -> str:
    """Markdown: mean wall time per slice and NFE per size, task and method."""
    lines = ["| size | task | method | s / slice | NFE |", "|---|---|---|---:|---:|"]
    for size in SIZES:
        for key in MODALITY:
            chosen = [r for r in rows if r["size"] == size and r["task"] == key]
            for method in dict.fromkeys(r["method"] for r in chosen):
                runs = [r for r in chosen if r["method"] == method]
                lines.append(f"| {size} | {key} | {method} | {np.mean([r['seconds'] for r in runs]):.2f} | "
                             f"{max(r['nfe'] for r in runs)} |")
    return "\n".join(lines)
