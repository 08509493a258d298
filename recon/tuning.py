"""Bayesian tuning of a sampler's options (pc / ald: lambda and snr; dds: eta and start sigma; ddim: lambda and eta).

The objective is the mean SSIM (or PSNR) of reconstructions of a fixed
validation subset with fixed seeds, maximised by scikit-optimize's
``gp_minimize``. Every evaluated point is appended to a JSON dump, so a killed
run resumes where it stopped (no pickles involved).

Ground-truth-free variant: hold out a few of the measured lines (sinogram
views, k-space columns), reconstruct from the rest and score each setting by
how well the reconstruction predicts the held-out measurements (relative
squared error, :func:`holdout_error`; the objective is its negative).

The tuned values go into the prior's profile (:func:`save_profile`, read back
by :func:`priors.learned.apply_profile` when the prior is loaded).
"""
from __future__ import annotations

import json
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from operators import Measurement
from recon.errors import InputError
from recon.io import atomic_path
from recon.samplers.defer import holdout_error, holdout_split
from recon.tasks import Problem

# Search ranges of the paper (thesis appendix B.6.4): lambda in [0, 1]; snr in
# [0, 0.4] for CT and [0.2, 0.8] for MRI. The samplers need snr > 0, so the CT
# ranges start just above 0.
SNR_RANGES = {"ct-sparse-view": (0.001, 0.4), "ct-mar": (0.001, 0.4), "mri": (0.2, 0.8)}
# start_sigma (the fast samplers' warm start, model units) up to the prior's sigma_max, searched on a
# log scale (LOG_SCALE) as it spans decades.
OPTION_RANGES = {"lam": (0.0, 1.0), "eta": (0.0, 1.0), "start_sigma": (0.03, 10.0), "refine_tv": (1e-6, 1e-3)}
LOG_SCALE = ("start_sigma", "refine_tv")
# The two options tuned for each sampler by default; refine_tv (recon.samplers.defer) on request (`--tune`).
TUNED_OPTIONS = {"pc": ("lam", "snr"), "ald": ("lam", "snr"), "ddim": ("lam", "eta"), "dds": ("eta", "start_sigma")}
ON_REQUEST = ("refine_tv",)
Point = dict[str, float]


@dataclass
class TuneResult:
    """Best point and the whole history of a tuning run.

    Attributes:
        best: the option values of the best call, e.g. {"lam": 0.8, "snr": 0.2}.
        best_score: its objective value.
        history: one record per call: the option values, ``score`` and ``seconds``.
    """

    best: Point
    best_score: float
    history: list[dict[str, float]]


def search_space(sampler: str, task: str, fixed: Point | None = None, sigma_max: float | None = None,
                 names: tuple[str, ...] | None = None) -> dict[str, tuple[float, float]]:
    """The tuned options of ``sampler`` and their ranges, leaving out those in ``fixed``.

    ``sigma_max`` (the prior's) caps the range of ``start_sigma``. ``names``: the options to tune (default
    TUNED_OPTIONS[sampler]; any of those and ON_REQUEST).

    Raises InputError for samplers without a proximal weight, names the sampler cannot tune, or when nothing
    is left to tune.
    """
    if sampler not in TUNED_OPTIONS:
        raise InputError(f"--sampler: {sampler} cannot be tuned; choose one of {', '.join(TUNED_OPTIONS)}")
    allowed = TUNED_OPTIONS[sampler] + ON_REQUEST
    names = TUNED_OPTIONS[sampler] if not names else tuple(names)
    if set(names) - set(allowed):
        raise InputError(f"--tune: {sampler} tunes {', '.join(allowed)}, not {', '.join(sorted(set(names) - set(allowed)))}")
    fixed = fixed or {}
    ranges = dict(OPTION_RANGES, snr=SNR_RANGES.get(task, SNR_RANGES["ct-sparse-view"]))
    if sigma_max is not None:
        low, high = ranges["start_sigma"]
        ranges["start_sigma"] = (min(low, sigma_max / 2), min(high, sigma_max))
    space = {name: ranges[name] for name in names if fixed.get(name) is None}
    if not space:
        raise InputError(f"nothing to tune: {' and '.join(names)} {'are' if len(names) > 1 else 'is'} fixed")
    return space


# ---------------------------------------------------------------- objectives

OptionsFor = Callable[[Point], "SamplerOptions"]
"""The sampler options of a point: ``options_for(point)``, e.g. :func:`recon.samplers.resolve_options`
with the point's values over the fixed ones."""


def _reconstruct(prior, measurement: Measurement, y: torch.Tensor, seed: int, options, n_samples: int,
                 holdout: tuple[int, int]) -> torch.Tensor:
    from recon.samplers import reconstruct

    return reconstruct(prior, measurement, y, options, n_samples=n_samples, seed=seed, progress=False,
                       holdout=holdout).mean


def metric_objective(prior, problems: list[Problem], seeds: list[int], metric: str, options_for: OptionsFor,
                     n_samples: int = 1) -> Callable[[Point], float]:
    """``objective(point)``: the mean ``metric`` ("ssim" or "psnr") over every slice of ``problems``
    (simulated, so with a reference), each reconstructed with its seed (the mean of ``n_samples``)."""
    from recon.metrics import psnr, ssim

    score = {"ssim": ssim, "psnr": psnr}[metric]

    def objective(point: Point) -> float:
        options, values = options_for(point), []
        for problem, seed in zip(problems, seeds):
            x = problem.finished(_reconstruct(prior, problem.measurement, problem.y, seed, options, n_samples,
                                              problem.holdout))
            values.extend(np.atleast_1d(score(x, problem.reference, mask=problem.keep)).tolist())
        return float(np.mean(values))

    return objective


def holdout_objective(prior, problems: list[Problem], seeds: list[int], axis: int, options_for: OptionsFor,
                      every: int = 4, keep_center: int = 0, n_samples: int = 1) -> Callable[[Point], float]:
    """``objective(point)``: minus the mean held-out error over every slice (no ground truth used).

    Each problem's measured lines are split once by :func:`holdout_split`; the
    sampler reconstructs from the remaining ones.
    """
    splits = []
    for problem in problems:
        full = problem.measurement.P_inv(problem.y)
        fit, held = holdout_split(problem.measurement, full, axis, every, keep_center)
        splits.append((problem.measurement, fit, fit.P(full), full, held, problem.holdout))

    def objective(point: Point) -> float:
        options, errors = options_for(point), []
        for (measurement, fit, y_fit, full, held, holdout), seed in zip(splits, seeds):
            x = _reconstruct(prior, fit, y_fit, seed, options, n_samples, holdout)
            errors.extend(holdout_error(x, measurement, full, held).tolist())
        return -float(np.mean(errors))

    return objective


# ---------------------------------------------------------------- the optimiser

def _normalised(meta: dict | None) -> str:
    return json.dumps(meta or {}, sort_keys=True, default=str)


def _load_dump(path: Path | None, meta: dict | None) -> list[dict[str, float]]:
    if path is None or not path.exists():
        return []
    try:
        data = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise InputError(f"{path}: not a tuning dump ({exc}); remove it to start afresh") from None
    if _normalised(data.get("meta")) != _normalised(meta):
        raise InputError(f"{path}: written by a tuning run with other settings; "
                         "use another output folder or remove it to start afresh")
    return list(data["history"])


def _save_dump(path: Path | None, history: list[dict[str, float]], meta: dict | None) -> None:
    if path is None:
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps({"meta": json.loads(_normalised(meta)), "history": history}, indent=2))


def _dimension(name: str, bounds: tuple[float, float]):
    """The scikit-optimize dimension of an option: uniform, or log-uniform for those in LOG_SCALE."""
    from skopt.space import Real

    return Real(*bounds, prior="log-uniform" if name in LOG_SCALE else "uniform", name=name)


def initial_points(space: dict[str, tuple[float, float]], n: int, seed: int, start: Point | None = None
                   ) -> list[Point]:
    """``start`` (clipped into the space) followed by random points: the first ``n`` calls of :func:`tune`."""
    from skopt.space import Space

    points = []
    if start is not None and n > 0:
        points.append({k: float(np.clip(start[k], *space[k])) for k in space})
    names, rng = list(space), np.random.RandomState(seed)
    box = Space([_dimension(k, space[k]) for k in names])
    while len(points) < n:  # one draw at a time, so a longer design extends a shorter one
        points.append({k: float(v) for k, v in zip(names, box.rvs(1, random_state=rng)[0])})
    return points


def tune(objective: Callable[[Point], float], space: dict[str, tuple[float, float]], calls: int = 40,
         seed: int = 0, dump: Path | None = None, meta: dict | None = None, start: Point | None = None,
         progress: Callable[[int, dict[str, float], dict[str, float]], None] | None = None) -> TuneResult:
    """Maximise ``objective(point)`` over the box ``space`` by Gaussian-process Bayesian optimisation.

    The first ``max(4, calls // 4)`` calls (at most 10) are ``start`` (e.g. the
    current defaults) and random points drawn with ``seed``; the rest follow
    the expected improvement of a GP fitted to all previous calls.

    Args:
        objective: score to maximise (e.g. mean validation SSIM).
        space: option name -> (low, high), e.g. {"lam": (0, 1), "snr": (0.2, 0.8)}.
        calls: total objective evaluations, counting those already in ``dump``.
        dump: JSON file of evaluated points; read to resume (its ``meta`` must
            equal ``meta``), rewritten after each call.
        start: the first point evaluated.
        progress: called with (call number, this call's record, the best record so far) after each call.
    """
    from skopt import gp_minimize

    if calls < 1:
        raise InputError(f"--calls: must be >= 1, got {calls}")
    names = list(space)
    history = _load_dump(dump, meta)

    def evaluate(point: Point) -> float:
        started = time.perf_counter()
        score = float(objective(point))
        history.append({**point, "score": score, "seconds": round(time.perf_counter() - started, 3)})
        _save_dump(dump, history, meta)
        if progress is not None:
            progress(len(history), history[-1], max(history, key=lambda h: h["score"]))
        return score

    design = initial_points(space, min(calls, max(4, min(10, calls // 4))), seed, start)
    for point in design[len(history):]:
        evaluate(point)
    remaining = calls - len(history)
    if remaining > 0:
        x0 = [[h[k] for k in names] for h in history]
        y0 = [-h["score"] for h in history]
        with warnings.catch_warnings():  # an optimum on the boundary makes skopt suggest it again
            warnings.filterwarnings("ignore", message="The objective has been evaluated at point")
            gp_minimize(lambda x: -evaluate({k: float(v) for k, v in zip(names, x)}),
                        [_dimension(k, space[k]) for k in names], n_calls=remaining, n_initial_points=0,
                        x0=x0, y0=y0, random_state=seed + len(history), acq_func="EI")
    best = max(history, key=lambda h: h["score"])
    return TuneResult(best={k: best[k] for k in names}, best_score=best["score"], history=history)


# ---------------------------------------------------------------- outputs

def save_convergence_plot(result: TuneResult, path: Path, metric: str) -> Path:
    """Score per call and running best, as a PNG (atomic write)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    scores = np.array([h["score"] for h in result.history])
    calls = np.arange(1, len(scores) + 1)
    fig, ax = plt.subplots(figsize=(5, 3.2))
    ax.plot(calls, scores, "o", ms=3, label="call")
    ax.plot(calls, np.maximum.accumulate(scores), "-", label="best so far")
    ax.set_xlabel("call")
    ax.set_ylabel(metric)
    ax.set_title("best " + ", ".join(f"{k} {v:.3f}" for k, v in result.best.items()), fontsize=9)
    ax.legend()
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    plt.close(fig)
    return path


def save_profile(path: Path, task: str, sampler: str, entry: dict) -> Path:
    """Merge ``entry`` (with ``values``) into the profile at ``path`` as ``[task][sampler]``, atomically.

    The entry it replaces was in effect while the values were tuned when both are for the same weights
    (``prior_sha256``). Its values that ``entry`` neither fixed nor tuned (a hand-set ``choice_steps``, a
    start sigma tuned earlier) are kept, with their ``<name>_source`` notes, and listed under ``carried``:
    the profile then reproduces what was tuned.
    """
    from priors.learned import read_profile

    if "values" not in entry:
        raise ValueError("a profile entry needs 'values'")
    profile = read_profile(path)
    previous = profile.get(task, {}).get(sampler)
    if previous and previous.get("prior_sha256") == entry.get("prior_sha256"):
        carried = {k: v for k, v in previous.get("values", {}).items() if k not in entry["values"]}
        if carried:
            notes = {f"{k}_source": previous[f"{k}_source"] for k in carried if f"{k}_source" in previous}
            entry = {**notes, **entry, "values": {**carried, **entry["values"]}, "carried": sorted(carried)}
    profile.setdefault(task, {})[sampler] = entry
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(profile, indent=2, sort_keys=True) + "\n")
    return path
