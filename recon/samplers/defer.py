"""Deferring to the data: a TV-regularised refinement anchored at the sampler's result.

A score prior trained on one kind of anatomy pulls unfamiliar content towards what it knows, and more
measurements do not stop it (real slices, benchmarks/RESULTS.md). With ``refine_tv`` > 0 the samplers
finish with

    x = argmin_x  1/(2L) ||A x - y||^2 + refine_tv TV(x) + mu/2 ||x - a||^2,   x >= 0 (one-channel images)

where ``a`` is the sampler's result and L = ||A||^2 (so mu is relative to the strongest data direction).
mu = 0 is FISTA-TV started at ``a``; large mu returns ``a``. mu is chosen per slice by the data
themselves: every HOLDOUT_EVERY-th measured line (sinogram view, k-space column outside the fully sampled
centre) is held out, the sampler runs on the rest, each mu of ANCHORS refines on the rest, and the mu
whose image predicts the held-out lines best is kept (of those within TOLERANCE of the best, the largest).
The sampler then runs again on all lines, and the final image refines that result with the chosen mu
(FINAL_ITERATIONS). Where the prior knows the anatomy the held-out lines pick a positive mu; where it
does not they pick mu near 0, the TV answer. The sampler runs twice (twice its NFE): an anchor from the
fitted lines alone was 1-3 dB worse than one from all of them.

Measured on the real validation slices and generated phantoms: benchmarks/RESULTS.md, "Deferring to the
data" (``python benchmarks/defer_choice.py``).
"""
from __future__ import annotations

import torch

from operators import BooleanMask, CTTransform, Fourier, Measurement, ViewMask
from recon.baselines.fista_tv import fista, operator_norm_sq, tv_prox
from recon.errors import InputError

ANCHORS = (0.0, 1e-4, 3e-4, 1e-3, 3e-3, 1e-2, 3e-2)
"""The anchor weights mu tried per slice (0: plain TV from the sampler's image)."""
TOLERANCE = 0.02
"""Held-out errors within 2 % of the smallest count as equal, and the largest such mu is chosen."""
HOLDOUT_EVERY = 6
"""Every 6th measured line is held out for the choice (23 views: 4 of them)."""
ITERATIONS = 100
"""FISTA iterations of each refinement on the fitted lines, started at the anchor."""
FINAL_ITERATIONS = 300
"""FISTA iterations of the final refinement on all lines: FISTA-TV's own, so that mu = 0 gives its answer."""
INNER_ITERATIONS = 10
"""Dual iterations of each TV proximal step (warm-started)."""


# ---------------------------------------------------------------- held-out lines

def _lines(mask: torch.Tensor, like: torch.Tensor, axis: int) -> torch.Tensor:
    """(L,) bool: lines along ``axis`` of T's output with at least one measured entry in any image."""
    other = -1 if axis == -2 else -2
    full = mask.expand(like.shape)
    return full.any(dim=other).reshape(-1, like.shape[axis]).any(dim=0)


def holdout_split(measurement: Measurement, like: torch.Tensor, axis: int, every: int = 4,
                  keep_center: int = 0) -> tuple[Measurement, torch.Tensor]:
    """Split the measured lines into a fitting measurement and a held-out mask.

    Every ``every``-th measured line is held out: views of a sinogram
    (``axis=-2``) or columns of k-space (``axis=-1``); only its measured
    entries count (a view crossing a metal trace keeps the trace out). The
    ``keep_center`` measured lines closest to the middle of that axis (the
    k-space centre) are never held out.

    Args:
        measurement: the full measurement A = P(Lambda) T.
        like: a tensor shaped like T's output (B, 1, M, D) (only its shape and device are used).
    Returns:
        (fit, held): the measurement on the remaining entries (sparse-view CT
        stays a view subset, other masks become boolean masks) and the boolean
        held-out mask, broadcastable to T's output.
    """
    if every < 2:
        raise InputError(f"--holdout-every: must be >= 2, got {every}")
    measured_mask = measurement.mask(like)
    measured = torch.nonzero(_lines(measured_mask, like, axis)).flatten()
    distance = (measured - like.shape[axis] // 2).abs()
    protected = set(measured[torch.argsort(distance, stable=True)[:keep_center]].tolist())
    held_lines = [int(i) for i in measured[every // 2::every] if int(i) not in protected]
    if not held_lines:
        raise InputError(f"too few measured lines ({len(measured)}) to hold every {every}th out")
    shape = [1, 1, 1, 1]
    shape[axis] = like.shape[axis]
    line = torch.zeros(like.shape[axis], dtype=torch.bool, device=like.device)
    line[held_lines] = True
    held = line.view(shape) & measured_mask
    if isinstance(measurement.sampling, ViewMask) and axis == -2:
        indices = measurement.sampling.indices
        sampling = ViewMask(measurement.sampling.n_full, indices[~line.cpu()[indices]])
    else:
        sampling = BooleanMask(measured_mask & ~line.view(shape))
    return Measurement(measurement.transform, sampling, measurement.noise_std), held


def holdout_error(x: torch.Tensor, measurement: Measurement, full: torch.Tensor, held: torch.Tensor) -> torch.Tensor:
    """Per-image relative squared error of T x on the held-out entries of the full measurement.

    Args:
        x: (B, C, H, W) reconstructions.
        full: (B, 1, M, D) zero-filled full measurement, ``measurement.P_inv(y)``.
        held: boolean held-out mask broadcastable to ``full``.
    Returns:
        (B,) float tensor, ||held (T x - full)||^2 / ||held full||^2.
    """
    diff = (measurement.T(x) - full) * held
    return diff.abs().pow(2).sum(dim=(1, 2, 3)) / (full * held).abs().pow(2).sum(dim=(1, 2, 3))


# ---------------------------------------------------------------- the refinement

def _repeat(t: torch.Tensor, copies: int) -> torch.Tensor:
    """``copies`` stacked copies of a batch (B, ...) -> (copies B, ...)."""
    return t.repeat(copies, *([1] * (t.dim() - 1)))


def _stacked(measurement: Measurement, copies: int) -> Measurement | None:
    """The measurement of ``copies`` stacked copies of its batch, or None when its transform may hold per-image
    state (coil maps, phases): only CT transforms and the plain Fourier transform are stacked."""
    if not isinstance(measurement.transform, (CTTransform, Fourier)):
        return None
    sampling = measurement.sampling
    if isinstance(sampling, BooleanMask) and sampling.mask.shape[0] > 1:  # one mask per image (metal traces)
        sampling = BooleanMask(_repeat(sampling.mask, copies))
    return Measurement(measurement.transform, sampling, measurement.noise_std)


def anchored_tv(measurement: Measurement, y: torch.Tensor, anchor: torch.Tensor, lam: float,
                mu: torch.Tensor, n_iter: int = ITERATIONS, lipschitz: torch.Tensor | None = None) -> torch.Tensor:
    """argmin 1/(2L) ||A x - y||^2 + lam TV(x) + mu/2 ||x - anchor||^2 by FISTA started at the anchor.

    Args:
        measurement, y: the problem; y (B, ...) as ``measurement.A`` returns it.
        anchor: (B, C, N, N) the sampler's images (C = 2: real and imaginary parts, no sign constraint).
        lam: TV weight in image units (as :func:`recon.baselines.fista_tv.fista_tv`'s).
        mu: (B,) anchor weight per image, >= 0.
        n_iter: FISTA iterations.
        lipschitz: ||A||^2 per image (:func:`recon.baselines.fista_tv.operator_norm_sq`; computed when not given).
    Returns:
        (B, C, N, N) refined images.
    """
    g = mu.to(anchor.dtype).view(-1, 1, 1, 1)
    lo = 0.0 if anchor.shape[1] == 1 else None
    state = {"dual": None}

    # The prox of lam TV + mu/2 ||x - a||^2 at unit step is the TV prox of (v + mu a) / (1 + mu) with
    # weight lam / (1 + mu); TV's prox is positively homogeneous (prox_{s lam}(b) = s prox_lam(b / s), the
    # bound 0 too), so one scalar weight serves every mu of the batch.
    def prox(v: torch.Tensor) -> torch.Tensor:
        x, state["dual"] = tv_prox(v + g * anchor, lam, INNER_ITERATIONS, lo, None, state["dual"])
        return x / (1 + g)

    return fista(measurement, y, prox, n_iter, x0=anchor.clone(), lipschitz=lipschitz)


def choose_anchor_weight(measurement: Measurement, anchor: torch.Tensor, lam: float,
                         split: tuple[Measurement, torch.Tensor, torch.Tensor]) -> tuple[torch.Tensor, dict]:
    """Each slice's mu of ANCHORS: the one whose refinement on the fitted lines predicts the held-out ones best.

    Args:
        measurement: the whole measurement.
        anchor: (B, C, N, N) the sampler's result from the fitted lines only.
        lam: TV weight (``refine_tv``).
        split: (fit, held, full) from :func:`holdout_split` and ``measurement.P_inv(y)``.
    Returns:
        mu (B,) and a record of the choice: mu and the held-out error of each slice.
    """
    fit, held, full = split
    y_fit, lipschitz = fit.P(full), operator_norm_sq(fit, anchor)
    copies, batch = len(ANCHORS), anchor.shape[0]
    stacked = _stacked(fit, copies)
    if stacked is None:  # one refinement per mu
        errors = torch.stack([holdout_error(anchored_tv(fit, y_fit, anchor, lam, torch.full((batch,), g), ITERATIONS,
                                                        lipschitz), measurement, full, held) for g in ANCHORS])
    else:  # every mu in one batch: about twice as fast on a CPU
        mu = torch.tensor(ANCHORS, device=anchor.device).repeat_interleave(batch)
        refined = anchored_tv(stacked, _repeat(y_fit, copies), _repeat(anchor, copies), lam, mu, ITERATIONS,
                              _repeat(lipschitz, copies))
        held = held if held.shape[0] == 1 else _repeat(held, copies)  # a mask shared by the batch stays shared
        errors = holdout_error(refined, measurement, _repeat(full, copies), held).view(copies, batch)
    # Cross-validation's one-standard-error rule: of the weights whose held-out error is within TOLERANCE of the
    # smallest, the most regularising one (the largest mu: the most trust in the prior).
    near = errors <= errors.min(0).values * (1 + TOLERANCE)
    chosen = [max(g for g, ok in zip(ANCHORS, column) if ok) for column in near.T.tolist()]
    record = {"refine_mu": chosen,
              "refine_holdout_error": [errors[ANCHORS.index(g), i].item() for i, g in enumerate(chosen)],
              "refine_holdout_every": HOLDOUT_EVERY}
    return torch.tensor(chosen, dtype=anchor.dtype, device=anchor.device), record
