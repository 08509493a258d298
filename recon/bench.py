"""Benchmarks in the shape of the paper's Tables 8.1-8.3 and Figure 8.5, and NFE curves.

A setting is a task (:mod:`recon.tasks`: sparse-view CT with V views, MRI at R-fold acceleration,
metal artifact removal with simulated metal); a :class:`Method` is a classical baseline or a score
sampler at a number of network evaluations. :func:`evaluate` runs every method on every task over the
same test slices, each task building its problems as the reconstruction verbs do, and returns one row
per (task, method) with per-slice PSNR / SSIM, wall time per slice and NFE per slice.

Metrics follow :mod:`recon.metrics`: model units, output clipped to [0, 1],
data range 1, whole image; for MAR the metal pixels (inserted and reinserted) are left out.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np
import torch

from recon.errors import InputError
from recon.metrics import psnr, ssim
from recon.tasks import Problem, Task


def steps_for_nfe(sampler: str, nfe: int) -> int:
    """Noise levels N giving about ``nfe`` network evaluations with the sampler's default corrector steps."""
    from recon.samplers import OPTIONS, SAMPLERS

    corrector_steps = getattr(OPTIONS[sampler](), "corrector_steps", 0)
    per_level = corrector_steps + (1 if sampler in ("pc", "score-sde") else 0) or 1
    return max(1, (nfe - int(SAMPLERS[sampler].denoise_at_end)) // per_level)


@dataclass(frozen=True)
class Method:
    """A classical baseline (``name`` a key of BASELINES) or a score sampler (``sampler`` set).

    Parse from text with :meth:`parse`: ``"fista-tv"``, ``"score"`` (the
    default sampler at its default steps), ``"score:pc:2000"`` (pc at about
    2000 NFE), ``"score:dds:50"``. ``params`` are keyword arguments of a
    classical baseline (e.g. ``(("lam", 3e-5),)``, a tuned weight). Every method
    reconstructs on the slices' own grid (a score prior of another size samples on
    its grid through A R, :func:`recon.samplers.reconstruct`).
    """

    name: str
    sampler: str | None = None
    nfe: int | None = None
    params: tuple[tuple[str, float], ...] = ()

    @staticmethod
    def parse(text: str) -> "Method":
        from recon.methods import BASELINES
        from recon.samplers import SAMPLERS

        parts = text.split(":")
        if parts[0] != "score":
            if text not in BASELINES:
                raise InputError(f"unknown method {text!r}; choose a baseline ({', '.join(BASELINES)}) or "
                                 "score[:SAMPLER[:NFE]]")
            return Method(text)
        sampler = parts[1] if len(parts) > 1 else None
        if sampler is not None and sampler not in SAMPLERS:
            raise InputError(f"method {text!r}: unknown sampler {sampler!r}; choose one of {', '.join(SAMPLERS)}")
        try:
            nfe = int(parts[2]) if len(parts) > 2 else None
        except ValueError:
            raise InputError(f"method {text!r}: the NFE after the sampler must be an integer") from None
        return Method(text, sampler, nfe)

    @property
    def is_score(self) -> bool:
        return self.name.startswith("score")

    def options(self, prior, task: Task):
        """The score sampler's options for ``task`` (None for a classical method)."""
        if not self.is_score:
            return None
        from recon.samplers import DEFAULT_SAMPLER, resolve_options

        sampler = self.sampler or DEFAULT_SAMPLER
        steps = steps_for_nfe(sampler, self.nfe) if self.nfe is not None else None
        return resolve_options(prior, sampler, task.defaults_key, steps=steps)

    def run(self, problem: Problem, prior, options, seed: int) -> tuple[torch.Tensor, int]:
        """Reconstruct; returns images (B, 1, N, N) after the task's post-processing and NFE per slice."""
        if options is None:
            from recon.methods import BASELINES

            return problem.finished(BASELINES[self.name](problem.measurement, problem.y, **dict(self.params))), 0
        from recon.samplers import reconstruct

        result = reconstruct(prior, problem.measurement, problem.y, options, seed=seed, progress=False,
                             holdout=problem.holdout)
        return problem.finished(result.mean), result.nfe


def load_split(path: Path | str, split: str, n: int) -> torch.Tensor:
    """First ``n`` images of ``/{split}/images`` of a dataset file, (n, 1, H, W) float32 model units."""
    path = Path(path)
    if not path.exists():
        raise InputError(f"{path}: no such dataset file (build one with `recon data build`)")
    with h5py.File(path, "r") as f:
        if f"{split}/images" not in f:
            raise InputError(f"{path}: no /{split}/images dataset")
        return torch.from_numpy(np.asarray(f[f"{split}/images"][:n], dtype=np.float32))


def evaluate(images: torch.Tensor, tasks: list[Task], methods: list[Method], prior=None, batch: int = 8,
             seed: int = 0, device: torch.device | str = "cpu", progress: bool = True,
             outputs: dict | None = None) -> list[dict]:
    """Every method on every task over ``images`` (n, 1, N, N); one row per (task, method).

    Rows: task, setting, label, method, psnr / ssim (lists, one value per
    slice), seconds (wall time per slice), nfe (per slice; 0 for classical
    methods). Score methods need ``prior``. ``outputs``, when given, gets the
    reconstructions (n, 1, N, N) on the CPU under (task label, method name).
    """
    from tqdm import tqdm

    if any(m.is_score for m in methods) and prior is None:
        raise InputError("score methods need a prior")
    rows = []
    bar = tqdm(total=len(tasks) * len(methods), desc="bench", unit="run", disable=not progress, dynamic_ncols=True)
    for task in tasks:
        problems: dict[int, Problem] = {}  # by first slice: built once, shared by the methods

        def problem_of(start: int) -> Problem:
            if start not in problems:
                problems[start] = task.problem(images[start:start + batch].to(device), seed + start)
            return problems[start]

        for method in methods:
            scores, seconds, nfe, results = {"psnr": [], "ssim": []}, 0.0, 0, []
            options = method.options(prior, task)
            for start in range(0, images.shape[0], batch):
                problem = problem_of(start)
                began = time.perf_counter()
                out, nfe = method.run(problem, prior, options, seed + start)
                seconds += time.perf_counter() - began
                scores["psnr"] += list(np.atleast_1d(psnr(out, problem.reference, mask=problem.keep)))
                scores["ssim"] += list(np.atleast_1d(ssim(out, problem.reference, mask=problem.keep)))
                if outputs is not None:
                    results.append(out.cpu())
            if outputs is not None:
                outputs[(task.label, method.name)] = torch.cat(results)
            rows.append({"task": task.name, "setting": task.setting, "label": task.label,
                         "method": method.name, **scores, "seconds": seconds / images.shape[0], "nfe": nfe})
            bar.update()
    bar.close()
    return rows


TARGET_PSNR_DB, TARGET_SSIM = 0.3, 0.005
"""Issue 8's target: within this much of the reference (pc at 2000 NFE) in mean PSNR and mean SSIM."""


def target_check(rows: list[dict], reference: str, max_nfe: int = 50) -> list[dict]:
    """For each task and sampler, its cheapest run within the target of the ``reference`` method.

    A run meets the target when its mean PSNR is at most :data:`TARGET_PSNR_DB`
    below the reference's and its mean SSIM at most :data:`TARGET_SSIM` below.
    Returns one record per (task, sampler other than the reference run):
    ``task``, ``sampler``, ``reference`` (psnr, ssim), ``cheapest`` (the
    method name and its nfe, psnr, ssim, or None when no budget meets the
    target) and ``met_within`` (whether that nfe is at most ``max_nfe``).
    """
    def mean(row: dict, key: str) -> float:
        return float(np.mean(row[key]))

    records = []
    for task in dict.fromkeys(r["task"] for r in rows):
        ref = next((r for r in rows if r["task"] == task and r["method"] == reference), None)
        if ref is None:
            continue
        runs = [r for r in rows if r["task"] == task and r is not ref and r["method"].count(":") == 2]
        for sampler in dict.fromkeys(r["method"].split(":")[1] for r in runs):
            meeting = sorted((r for r in runs if r["method"].split(":")[1] == sampler
                              and mean(r, "psnr") >= mean(ref, "psnr") - TARGET_PSNR_DB
                              and mean(r, "ssim") >= mean(ref, "ssim") - TARGET_SSIM), key=lambda r: r["nfe"])
            best = meeting[0] if meeting else None
            records.append({"task": task, "sampler": sampler,
                            "reference": {"psnr": mean(ref, "psnr"), "ssim": mean(ref, "ssim")},
                            "cheapest": None if best is None else {"method": best["method"], "nfe": best["nfe"],
                                                                   "psnr": mean(best, "psnr"),
                                                                   "ssim": mean(best, "ssim")},
                            "met_within": best is not None and best["nfe"] <= max_nfe})
    return records


def target_markdown(records: list[dict], reference: str, max_nfe: int = 50) -> str:
    """The records of :func:`target_check` as a markdown table."""
    lines = [f"Target: within {TARGET_PSNR_DB} dB PSNR and {TARGET_SSIM} SSIM of {reference} "
             f"at <= {max_nfe} NFE.", "",
             "| task | sampler | reference PSNR / SSIM | cheapest run meeting it | PSNR / SSIM | met at <= "
             f"{max_nfe} NFE |", "|---|---|---|---|---|---|"]
    for r in records:
        ref, best = r["reference"], r["cheapest"]
        found = "none" if best is None else f"{best['method']} ({best['nfe']} NFE)"
        scores = "" if best is None else f"{best['psnr']:.2f} / {best['ssim']:.3f}"
        lines.append(f"| {r['task']} | {r['sampler']} | {ref['psnr']:.2f} / {ref['ssim']:.3f} | {found} | {scores} | "
                     f"{'yes' if r['met_within'] else 'no'} |")
    return "\n".join(lines)


def _mean_std(values: list[float], digits: int) -> str:
    v = np.asarray(values, dtype=float)
    return f"{v.mean():.{digits}f} ± {v.std():.{digits}f}"


def markdown(rows: list[dict]) -> str:
    """A markdown table: task, setting, method, PSNR, SSIM (mean ± std), NFE, seconds per slice."""
    lines = ["| task | setting | method | PSNR (dB) | SSIM | NFE | s / slice |", "|---|---|---|---|---|---:|---:|"]
    for r in rows:
        lines.append(f"| {r['task']} | {r['label']} | {r['method']} | {_mean_std(r['psnr'], 2)} | "
                     f"{_mean_std(r['ssim'], 3)} | {r['nfe']} | {r['seconds']:.2f} |")
    return "\n".join(lines)


def _bands(ax, xs, rows: list[dict], key: str, label: str, color: str) -> None:
    means = np.array([np.mean(r[key]) for r in rows])
    stds = np.array([np.std(r[key]) for r in rows])
    ax.plot(xs, means, marker="o", label=label, color=color)
    ax.fill_between(xs, means - stds, means + stds, alpha=0.2, color=color)


def plot_nfe(rows: list[dict], path: Path) -> Path | None:
    """PSNR / SSIM of the score runs against network evaluations, one line per sampler (None: no score runs)."""
    scored = [r for r in rows if r["nfe"] > 0]
    if not scored:
        return None
    return plot_against(scored, lambda r: r["nfe"], "network evaluations per slice", lambda r: r["method"].split(":")[1],
                        path, "PSNR / SSIM against network evaluations", log_x=True)


def plot_against(rows: list[dict], x_of, x_label: str, group_of, path: Path, title: str,
                 log_x: bool = False) -> Path:
    """PSNR and SSIM (mean ± std bands) against ``x_of(row)`` for every ``group_of(row)``, one panel row per task;
    a group has the same colour in every panel."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from recon.io import atomic_path

    tasks = list(dict.fromkeys(r["task"] for r in rows))
    colors = {group: f"C{i % 10}" for i, group in enumerate(dict.fromkeys(group_of(r) for r in rows))}
    fig, axes = plt.subplots(len(tasks), 2, figsize=(10, 3.6 * len(tasks)), squeeze=False)
    for t, task in enumerate(tasks):
        task_rows = [r for r in rows if r["task"] == task]
        for group in dict.fromkeys(group_of(r) for r in task_rows):
            series = sorted((r for r in task_rows if group_of(r) == group), key=x_of)
            xs = [x_of(r) for r in series]
            for c, key in enumerate(("psnr", "ssim")):
                _bands(axes[t, c], xs, series, key, group, colors[group])
        for c, key in enumerate(("PSNR (dB)", "SSIM")):
            axes[t, c].set(xlabel=x_label, ylabel=key, title=f"{task}: {key}")
            if log_x:
                axes[t, c].set_xscale("log")
            axes[t, c].grid(alpha=0.3)
        axes[t, 1].legend(fontsize=8)
    fig.suptitle(title)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    plt.close(fig)
    return path
