"""Bayesian tuning of the data-consistency weight lambda and the corrector snr.

The objective is the mean SSIM (or PSNR) of reconstructions of a fixed
validation subset with a fixed seed, maximised by scikit-optimize's
``gp_minimize``. Every evaluated point is appended to a JSON dump, so a killed
run resumes where it stopped (no pickles involved).

Ground-truth-free variant: hold out a few of the measured views / k-space
columns, reconstruct from the rest and score each setting by how well the
reconstruction predicts the held-out measurements (relative squared error).
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from operators import BooleanMask, Measurement
from recon.io import atomic_path

# Search ranges of the paper (DESIGN.md section 1): lambda in [0, 1]; snr in
# [0, 0.4] for CT and [0.2, 0.8] for MRI.
SNR_RANGES = {"ct-sparse-view": (0.0, 0.4), "ct-mar": (0.0, 0.4), "mri": (0.2, 0.8)}


@dataclass
class TuneResult:
    """Best point and the whole history of a tuning run."""

    best: dict[str, float]
    best_score: float
    history: list[dict[str, float]]


def holdout_split(measurement: Measurement, like: torch.Tensor, axis: int, every: int = 4,
                  keep_center: int = 0) -> tuple[Measurement, torch.Tensor]:
    """Split the measured lines into a fitting measurement and a held-out mask.

    Every ``every``-th measured line is held out: views of a sinogram
    (``axis=-2``) or columns of k-space (``axis=-1``). The ``keep_center``
    measured lines closest to the middle of that axis (the k-space centre) are
    never held out.

    Args:
        measurement: the full measurement A = P(Lambda) T.
        like: a tensor shaped like T's output (only its shape and device are used).
    Returns:
        (fit, held): a Measurement on the remaining entries (full-size,
        zero-filled measurements) and the boolean held-out mask, both
        broadcastable to T's output.
    """
    lam = measurement.mask(like).expand(like.shape[-4:])
    lines = lam.all(dim=-1 if axis == -2 else -2).reshape(-1, like.shape[axis]).all(dim=0)
    measured = torch.nonzero(lines).flatten()
    distance = (measured - like.shape[axis] // 2).abs()
    protected = set(measured[torch.argsort(distance)[:keep_center]].tolist())
    held_lines = [int(i) for i in measured[::every] if int(i) not in protected]
    if not held_lines:
        raise ValueError("too few measured lines to hold any out")
    shape = [1, 1, 1, 1]
    shape[axis] = like.shape[axis]
    held = torch.zeros(like.shape[axis], dtype=torch.bool, device=like.device)
    held[held_lines] = True
    held = held.view(shape)
    fit = Measurement(measurement.transform, BooleanMask(lam & ~held), measurement.noise_std)
    return fit, held


def holdout_error(x: torch.Tensor, measurement: Measurement, full: torch.Tensor, held: torch.Tensor) -> float:
    """Relative squared error of T x on the held-out entries of the full measurement."""
    diff = (measurement.T(x) - full) * held
    return float(diff.abs().pow(2).sum() / (full * held).abs().pow(2).sum())


def _load_dump(path: Path | None) -> list[dict[str, float]]:
    if path is None or not path.exists():
        return []
    return json.loads(path.read_text())["history"]


def _save_dump(path: Path | None, history: list[dict[str, float]], meta: dict) -> None:
    if path is None:
        return
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps({"meta": meta, "history": history}, indent=2))


def tune(objective: Callable[[float, float], float], snr_range: tuple[float, float], calls: int = 40,
         seed: int = 0, dump: Path | None = None, meta: dict | None = None,
         progress: Callable[[int, dict[str, float]], None] | None = None) -> TuneResult:
    """Maximise ``objective(lam, snr)`` by Gaussian-process Bayesian optimisation.

    Args:
        objective: score to maximise (e.g. mean validation SSIM).
        snr_range: search interval of snr; lambda searches [0, 1].
        calls: total objective evaluations, counting those already in ``dump``.
        dump: JSON file of evaluated points; read to resume, rewritten after each call.
        progress: called with (call number, point) after each evaluation.
    """
    from skopt import gp_minimize
    from skopt.space import Real

    history = _load_dump(dump)
    space = [Real(0.0, 1.0, name="lam"), Real(*snr_range, name="snr")]

    def negative(point: list[float]) -> float:
        lam, snr = float(point[0]), float(point[1])
        score = float(objective(lam, snr))
        history.append({"lam": lam, "snr": snr, "score": score})
        _save_dump(dump, history, meta or {})
        if progress is not None:
            progress(len(history), history[-1])
        return -score

    remaining = calls - len(history)
    if remaining > 0:
        x0 = [[h["lam"], h["snr"]] for h in history] or None
        y0 = [-h["score"] for h in history] or None
        n_initial = max(0, min(10, calls // 4) - len(history))
        gp_minimize(negative, space, n_calls=remaining, n_initial_points=n_initial, x0=x0, y0=y0,
                    random_state=seed, acq_func="EI")
    best = max(history, key=lambda h: h["score"])
    return TuneResult(best={"lam": best["lam"], "snr": best["snr"]}, best_score=best["score"], history=history)


def save_convergence_plot(result: TuneResult, path: Path, metric: str) -> Path:
    """Score per call and running best, as a PNG (atomic write)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    scores = np.array([h["score"] for h in result.history])
    fig, ax = plt.subplots(figsize=(5, 3.2))
    ax.plot(np.arange(1, len(scores) + 1), scores, "o", ms=3, label="call")
    ax.plot(np.arange(1, len(scores) + 1), np.maximum.accumulate(scores), "-", label="best so far")
    ax.set_xlabel("call")
    ax.set_ylabel(metric)
    ax.set_title(f"best lambda {result.best['lam']:.3f}, snr {result.best['snr']:.3f}", fontsize=9)
    ax.legend()
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    plt.close(fig)
    return path
