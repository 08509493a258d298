"""Score-based reconstruction: the samplers with the proximal step, the paper's baselines and the fast ones.

One entry point, :func:`reconstruct`, runs any sampler of :data:`SAMPLERS` with its options
(:mod:`recon.samplers.options`, resolved once by :func:`resolve_options`):

* ``pc``: predictor-corrector with the proximal data-consistency step (the method);
* ``ald``: "ALD + ours", annealed Langevin dynamics with the proximal step;
* ``langevin``: Jalal et al.'s annealed Langevin with a likelihood gradient;
* ``score-sde``: PC on the prior score plus a likelihood gradient against y_t;
* ``dds`` and ``ddim``: the fast samplers (one network evaluation per level:
  Tweedie's estimate, a CG or proximal data step, DDIM re-noising; see
  :mod:`recon.samplers.decomposed`).

Every sampler starts from N(0, sigma_max^2 I) (the fast ones, given
``start_sigma``, from a first reconstruction plus noise of that std) and counts network evaluations
the same way (score calls per image per sample); the Langevin-type samplers
end with a Tweedie denoise x + sigma_min^2 s(x, sigma_min) (one more
evaluation), the fast ones end on their own denoised estimate.
Samplers with the proximal step finish, for noiseless data, with the exact
projection onto {A x = y}. :func:`sample` draws unconditional samples.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Callable

import torch

from operators import Regridded, on_grid
from recon.baselines.fista_tv import image_side
from recon.errors import InputError
from recon.samplers import ald, core, decomposed, defer, langevin, pc, score_sde
from recon.samplers.consistency import DataConsistency, default_form, project, proximal_measurement
from recon.samplers.likelihood import GaussianLikelihood, default_scale
from recon.samplers.options import (DEFAULT_SNR, OPTION_RULES, OPTIONS, SamplerOptions, check_option_values,
                                    defaults_source, flag, option_names, resolve_options, sampler_defaults)
from recon.samplers.streams import SliceStreams


@dataclass(frozen=True)
class SamplerSpec:
    """A registered sampler.

    Attributes:
        run: ``run(x, ctx) -> x`` from the first noise level to the last.
        proximal: uses the proximal step (``lam``, ``form``, final projection).
        likelihood: uses the likelihood gradient (``rho``).
        description: one line for help texts.
        denoise_at_end: finish with a Tweedie denoise at sigma_min (one more NFE).
    """

    run: Callable[[torch.Tensor, core.Context], torch.Tensor]
    proximal: bool
    likelihood: bool
    description: str
    denoise_at_end: bool = True


DEFAULT_SAMPLER = "dds"
"""The sampler of ``recon ct/mri/mar`` and ``recon tune`` without ``--sampler``: the fastest one
found within 0.3 dB / 0.005 SSIM of pc at 2000 NFE on the validation split (benchmarks/RESULTS.md).
With the shipped priors and their tuned profiles it runs 50 levels, on MRI warm-started from
CS-TV, and is within that target on the test slices too (CT far above pc-2000; MRI +0.08 dB,
+0.011 SSIM). ``--sampler pc`` is the paper's."""

SAMPLERS: dict[str, SamplerSpec] = {
    "pc": SamplerSpec(run=pc.run, proximal=True, likelihood=False,
                      description="predictor-corrector with the proximal data-consistency step (the paper's method)"),
    "ald": SamplerSpec(run=ald.run, proximal=True, likelihood=False,
                       description="ALD + ours: annealed Langevin with the proximal step"),
    "langevin": SamplerSpec(run=langevin.run, proximal=False, likelihood=True,
                            description="Langevin (Jalal et al. 2021): annealed Langevin with a likelihood gradient"),
    "score-sde": SamplerSpec(run=score_sde.run, proximal=False, likelihood=True,
                             description="Score SDE: PC with a likelihood gradient against the noisy measurement"),
    "dds": SamplerSpec(run=decomposed.run_dds, proximal=True, likelihood=False, denoise_at_end=False,
                       description="fast: Tweedie estimate + conjugate-gradient data steps + DDIM re-noising"),
    "ddim": SamplerSpec(run=decomposed.run_ddim, proximal=True, likelihood=False, denoise_at_end=False,
                        description="fast: Tweedie estimate + the proximal step + DDIM re-noising"),
}
"""Every sampler by name; its options are :data:`recon.samplers.options.OPTIONS` of the same name."""

PROJECTION_TOL, PROJECTION_MAX_ITER = 1e-4, 1000
"""Stopping rule of the final projection onto {A x = y}: relative residual, iterations."""


@dataclass
class Reconstruction:
    """Result of :func:`reconstruct`.

    Attributes:
        mean: (B, 1, H, W) mean over the K posterior samples (the output).
        std: (B, 1, H, W) per-pixel standard deviation over samples when K > 1, else None.
        samples: (K, B, 1, H, W) the posterior samples.
        nfe: network (score) evaluations per image per sample.
        params: every parameter used.
    """

    mean: torch.Tensor
    std: torch.Tensor | None
    samples: torch.Tensor
    nfe: int
    params: dict


def _check(condition: bool, message: str) -> None:
    if not condition:
        raise InputError(message)


def _context(prior, sigmas: torch.Tensor, generator: SliceStreams, options: SamplerOptions, progress: bool,
             callback, label: str) -> core.Context:
    return core.Context(core.CountedScore(prior), sigmas, generator, options, callback=callback, progress=progress,
                        label=label)


def _tweedie(ctx: core.Context, x: torch.Tensor) -> torch.Tensor:
    """x + sigma_min^2 s(x, sigma_min)."""
    sigma_min = float(ctx.sigmas[-1])
    return x + sigma_min ** 2 * ctx.score(x, sigma_min)


@dataclass
class _Run:
    """What every sample group of one :func:`reconstruct` call shares."""

    prior: object
    measurement: object
    y: torch.Tensor
    options: SamplerOptions
    spec: SamplerSpec
    like: torch.Tensor  # A^T y: (B, 1, H, W), shape/device/dtype of the images
    sigmas: torch.Tensor
    first: torch.Tensor | None  # the warm start's first reconstruction
    likelihood_scale: float | None
    project_at_end: bool


def _prepare(prior, measurement, y: torch.Tensor, options: SamplerOptions) -> tuple[_Run, dict]:
    """Everything a run needs before its first sample, and the parameters it records."""
    spec = SAMPLERS[options.name]
    params = {"sampler": options.name, **options.values()}
    if spec.proximal:
        measurement = proximal_measurement(measurement, options.form)
        params["form"] = options.form or default_form(measurement)
        if hasattr(measurement.transform, "window"):
            params["fbp_window"] = measurement.transform.window
    like = measurement.A_adjoint(y)
    size = (getattr(prior, "meta", {}) or {}).get("size")
    _check(not isinstance(size, int) or tuple(like.shape[-2:]) == (size, size),
           f"prior {(getattr(prior, 'meta', {}) or {}).get('id')!r} is for {size}x{size} images but the "
           f"measurement is {like.shape[-2]}x{like.shape[-1]}")
    scale = None
    if spec.likelihood:
        scale = options.likelihood_scale
        scale = default_scale(measurement, like) if scale is None else float(scale)
        params["likelihood_scale"] = scale
    project_at_end = _projects_at_end(options, spec, measurement)
    start_sigma = getattr(options, "start_sigma", None)
    sigmas = prior.sde.discrete_sigmas(options.steps, device=y.device, start=start_sigma)
    first = None if start_sigma is None else decomposed.warm_start_image(options.start_from, measurement, y)
    params.update(sigma_max=prior.sde.sigma_max, sigma_min=prior.sde.sigma_min, final_projection=project_at_end,
                  prior=(getattr(prior, "meta", {}) or {}).get("id"), device=str(y.device))
    return _Run(prior, measurement, y, options, spec, like, sigmas, first, scale, project_at_end), params


def _projects_at_end(options: SamplerOptions, spec: SamplerSpec, measurement) -> bool:
    """Whether a run ends with the exact projection onto {A x = y}; decided here only.

    Never on the prior's grid through A R (the resampled image cannot fit the data exactly); else as
    ``final_projection`` says, and when it is None: for noiseless data with lam > 0 and no refinement to
    follow (``refine_tv`` > 0: the refinement fits the data itself)."""
    if not spec.proximal or isinstance(measurement.transform, Regridded):
        return False
    if options.final_projection is not None:
        return options.final_projection
    return getattr(options, "lam", 1.0) > 0 and measurement.noise_std == 0 and options.refine_tv == 0


def _draw(run: _Run, k: int, ctx: core.Context) -> tuple[torch.Tensor, dict | None]:
    """k samples of every image at once, (k B, 1, H, W), and the final projection's record (None: none)."""
    m, like = run.measurement, run.like
    y_k = run.y.repeat(k, *([1] * (run.y.dim() - 1)))
    if run.spec.proximal:
        ctx.consistency = DataConsistency(m, y_k, getattr(run.options, "lam", 1.0), run.options.form
                                          or default_form(m))
    if run.spec.likelihood:
        ctx.likelihood = GaussianLikelihood(m, y_k, run.options.rho, like, run.likelihood_scale)
    x = run.sigmas[0] * ctx.noise(like.repeat(k, *([1] * (like.dim() - 1))))
    if run.first is not None:  # the first reconstruction under the noise
        x = x + run.first.repeat(k, *([1] * (run.first.dim() - 1)))
    x = run.spec.run(x, ctx)
    if run.spec.denoise_at_end:
        x = _tweedie(ctx, x)
    if not run.project_at_end:
        return x, None
    return project(m, x, y_k, PROJECTION_TOL, PROJECTION_MAX_ITER)


def reconstruct(prior, measurement, y: torch.Tensor, options: SamplerOptions | None = None, *, n_samples: int = 1,
                seed: int | list[int] = 0, progress: bool = True,
                callback: Callable[[int, int, torch.Tensor], None] | None = None,
                holdout: tuple[int, int] | None = None) -> Reconstruction:
    """Sample the posterior p(x | y) with a score prior and return the mean of K samples.

    The images are the measurement's (N² images of A). When the prior's grid is another (a 128² prior, a
    512² or a 64² scan), the sampler runs on the prior's grid against the same y through A R, R the resampling
    to the measurement's grid (:class:`operators.Regridded`: bilinear when enlarging, area average when
    shrinking), and its result is resampled to N²; with ``refine_tv`` > 0 the refinement then runs on the N²
    grid (:mod:`recon.samplers.defer`).

    Args:
        prior: a :class:`priors.base.ScorePrior` (``sde``, ``meta``, ``score``).
        measurement: an :class:`operators.Measurement` (A = P(Lambda) T).
        y: (B, ...) measurements as returned by ``measurement.measure``; their device is the run's.
        options: the sampler and its settings (:func:`resolve_options`; None: the default sampler with
            the prior's defaults for no particular task).
        n_samples: K posterior samples; their mean is the output, their std the uncertainty.
        seed: slice i of the batch draws from a random stream seeded ``seed + i`` (:mod:`recon.samplers.streams`):
            same seed, same device, same output, whatever else shares the batch; or one seed per slice (a
            batch's subset keeps its slices' streams).
        progress: show a progress bar.
        callback: ``callback(level, n_levels, x)`` after every noise level (x on the prior's grid).
        holdout: (axis, lines never held out) of the measured lines the refinement may hold out
            (``options.refine_tv`` > 0, :mod:`recon.samplers.defer`; the task's :attr:`Problem.holdout`).
    """
    options = resolve_options(prior, DEFAULT_SAMPLER) if options is None else options
    _check(n_samples >= 1, f"--samples: must be >= 1, got {n_samples}")
    run = {"n_samples": n_samples, "seed": seed, "progress": progress, "callback": callback}
    if options.refine_tv > 0:
        return _deferred(prior, measurement, y, options, holdout, run)
    return _on_prior_grid(prior, measurement, y, options, run)


def _on_prior_grid(prior, measurement, y: torch.Tensor, options: SamplerOptions, run: dict) -> Reconstruction:
    """The sampler on the prior's grid; its images resampled to the measurement's grid when that differs."""
    size = (getattr(prior, "meta", {}) or {}).get("size")
    native = image_side(measurement, y)
    if not isinstance(size, int) or size == native:
        return _sample(prior, measurement, y, options, **run)
    regridded = on_grid(measurement, size, native)
    result = _sample(prior, regridded, y, options, **run)
    to_fine = regridded.transform.to_fine
    result.params.update(prior_grid=size, output_grid=native)
    return Reconstruction(mean=to_fine(result.mean), std=None if result.std is None else to_fine(result.std),
                          samples=to_fine(result.samples), nfe=result.nfe, params=result.params)


def _sample(prior, measurement, y: torch.Tensor, options: SamplerOptions, *, n_samples: int, seed: int | list[int],
            progress: bool, callback) -> Reconstruction:
    """The sampler on the measurement's own grid (the prior's)."""
    with torch.no_grad():
        run, params = _prepare(prior, measurement, y, options)
        # Samples run as one batch (K * B images) unless the mask differs per image (MAR).
        per_image_mask = run.measurement.mask(torch.empty(1, device=y.device)).shape[0] > 1 and n_samples > 1
        groups = [1] * n_samples if per_image_mask else [n_samples]
        seeds = [seed + i for i in range(y.shape[0])] if isinstance(seed, int) else list(seed)
        _check(len(seeds) == y.shape[0], f"{len(seeds)} seeds for a batch of {y.shape[0]} slices")
        streams = SliceStreams(seeds, y.device)
        outputs, nfe, projections = [], 0, []
        for g, k in enumerate(groups):
            label = options.name if len(groups) == 1 else f"{options.name} {g + 1}/{len(groups)}"
            ctx = _context(prior, run.sigmas, streams, options, progress, callback, label)
            x, projection = _draw(run, k, ctx)
            outputs.append(x.reshape(k, *run.like.shape))
            projections += [projection] if projection else []
            nfe = ctx.score.calls
    samples = torch.cat(outputs)
    if projections:
        params.update(projection_iterations=max(p["iterations"] for p in projections),
                      projection_relative_residual=max(p["relative_residual"] for p in projections))
    params.update(n_samples=n_samples, seed=seed, nfe=nfe)
    std = samples.std(dim=0) if n_samples > 1 else None
    return Reconstruction(mean=samples.mean(dim=0), std=std, samples=samples, nfe=nfe, params=params)


def _deferred(prior, measurement, y: torch.Tensor, options: SamplerOptions, holdout: tuple[int, int] | None,
              run: dict) -> Reconstruction:
    """The anchor weight chosen with the sampler on the fitted lines (:func:`defer.choose_anchor_weight`), then
    the sampler on all lines refined with it (the mean of K samples is refined; ``std`` and ``samples`` stay the
    sampler's). The refinement runs on the measurement's grid, whatever the prior's. When no measured line can
    be held out, nothing vouches for the prior's image and mu = 0: FISTA-TV started at it."""
    if holdout is None:
        raise ValueError("refine_tv > 0 needs holdout=(axis, lines never held out), e.g. a task's Problem.holdout")
    axis, keep_center = holdout
    full = measurement.P_inv(y)
    try:
        fit, held = defer.holdout_split(measurement, full, axis, defer.HOLDOUT_EVERY, keep_center)
    except InputError as error:  # every measured line is protected (the k-space centre alone, 24x on 128 columns)
        inner = _on_prior_grid(prior, measurement, y, options, run)
        # No evidence that the prior's image predicts unseen lines: the data's answer, mu = 0 (on the real
        # validation slices at 24x, 20.9 / 24.4 dB against 15.0 / 22.0 for the sampler alone).
        mu = torch.zeros(y.shape[0], dtype=inner.mean.dtype, device=inner.mean.device)
        record = {"refine_mu": mu.tolist(), "refine": f"mu = 0, nothing to hold out: {error}"}
        chosen = None
    else:
        choice = dataclasses.replace(options, steps=options.choice_steps or options.steps)
        chosen = _on_prior_grid(prior, fit, fit.P(full), choice, run)
        with torch.no_grad():
            mu, record = defer.choose_anchor_weight(measurement, chosen.mean, options.refine_tv, (fit, held, full))
        inner = _on_prior_grid(prior, measurement, y, options, run)
    with torch.no_grad():
        mean = defer.anchored_tv(measurement, y, inner.mean, options.refine_tv, mu, defer.FINAL_ITERATIONS)
    nfe = inner.nfe + (0 if chosen is None else chosen.nfe)
    params = {**inner.params, "refine_tv": options.refine_tv, **record, "nfe": nfe}
    return Reconstruction(mean=mean, std=inner.std, samples=inner.samples, nfe=nfe, params=params)


def sample(prior, n: int, sampler: str = "pc", *, shape: tuple[int, int] | None = None, seed: int = 0,
           device: torch.device | str = "cpu", progress: bool = True, **given) -> torch.Tensor:
    """n unconditional samples (n, 1, H, W) from the prior with ``pc`` or ``ald`` (Tweedie-denoised).

    ``given``: options of the sampler (``steps``, ``snr`` (default: the released code's VE value for
    both), ``corrector_steps``, ``step_norm``). ``shape`` defaults to the prior's ``meta["size"]``
    (an int side or [H, W]).
    """
    _check(sampler in ("pc", "ald"), f"unconditional sampling needs pc or ald, got {sampler!r}")
    check_option_values(given)
    options = OPTIONS[sampler](**{"snr": DEFAULT_SNR, **given})
    if shape is None:
        size = prior.meta["size"]
        shape = (size, size) if isinstance(size, int) else tuple(size)
    sigmas = prior.sde.discrete_sigmas(options.steps, device=device)
    with torch.no_grad():
        ctx = _context(prior, sigmas, SliceStreams([seed], device), options, progress, None, sampler)
        x = sigmas[0] * ctx.noise(torch.empty((n, 1, *shape), device=device))
        return _tweedie(ctx, SAMPLERS[sampler].run(x, ctx))


__all__ = ["DEFAULT_SAMPLER", "OPTIONS", "OPTION_RULES", "Reconstruction", "SAMPLERS", "SamplerOptions", "SamplerSpec",
           "check_option_values", "defaults_source", "flag", "option_names", "reconstruct", "resolve_options",
           "sample", "sampler_defaults"]
