"""Score-based reconstruction: the PC sampler with the proximal step and the paper's baselines.

One entry point, :func:`reconstruct`, runs any sampler of :data:`SAMPLERS`:

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

from dataclasses import dataclass
from typing import Callable

import torch

from priors.discretisation import DEFAULT_SNR, STEP_NORMS
from recon.errors import InputError
from recon.samplers import ald, core, decomposed, langevin, pc, score_sde
from recon.samplers.consistency import (FORMS, STABLE_FBP_WINDOWS, DataConsistency, default_form, project,
                                       projection_form_is_stable)
from recon.samplers.likelihood import GaussianLikelihood, operator_norm_squared


@dataclass(frozen=True)
class SamplerSpec:
    """A registered sampler.

    Attributes:
        run: ``run(x, ctx) -> x`` from N(0, sigma_max^2 I) to the last level.
        steps: default number of noise levels N (the paper's).
        corrector_steps: default Langevin steps per level.
        proximal: uses the proximal step (``lam``, ``form``, final projection).
        likelihood: uses the likelihood gradient (``rho``).
        description: one line for help texts.
        options: the parameters it reads (snr, lam, rho, eta, cg_steps, gamma, start_sigma, start_from).
        denoise_at_end: finish with a Tweedie denoise at sigma_min (one more NFE).
    """

    run: Callable[[torch.Tensor, core.Context], torch.Tensor]
    steps: int
    corrector_steps: int
    proximal: bool
    likelihood: bool
    description: str
    options: tuple[str, ...]
    denoise_at_end: bool = True


DEFAULT_SAMPLER = "dds"
"""The sampler of ``recon ct/mri/mar`` and ``recon tune`` without ``--sampler``: the fastest one
found within 0.3 dB / 0.005 SSIM of pc at 2000 NFE on the validation split (benchmarks/RESULTS.md).
With the shipped priors and their tuned profiles it runs 50 levels, on MRI warm-started from
CS-TV, and is within that target on the test slices too (CT far above pc-2000; MRI +0.08 dB,
+0.011 SSIM). ``--sampler pc`` is the paper's."""

SAMPLERS: dict[str, SamplerSpec] = {
    "pc": SamplerSpec(pc.run, 1000, 1, True, False,
                      "predictor-corrector with the proximal data-consistency step (the paper's method)",
                      ("snr", "lam")),
    "ald": SamplerSpec(ald.run, 700, 3, True, False, "ALD + ours: annealed Langevin with the proximal step",
                       ("snr", "lam")),
    "langevin": SamplerSpec(langevin.run, 700, 3, False, True,
                            "Langevin (Jalal et al. 2021): annealed Langevin with a likelihood gradient",
                            ("snr", "rho")),
    "score-sde": SamplerSpec(score_sde.run, 1000, 1, False, True,
                             "Score SDE: PC with a likelihood gradient against the noisy measurement", ("snr", "rho")),
    "dds": SamplerSpec(decomposed.run_dds, 50, 0, True, False,
                       "fast: Tweedie estimate + conjugate-gradient data steps + DDIM re-noising",
                       ("eta", "cg_steps", "gamma", "start_sigma", "start_from"), denoise_at_end=False),
    "ddim": SamplerSpec(decomposed.run_ddim, 50, 0, True, False,
                        "fast: Tweedie estimate + the proximal step + DDIM re-noising",
                        ("eta", "lam", "start_sigma", "start_from"),
                        denoise_at_end=False),
}

# Published settings, used when neither the caller nor the prior's metadata
# gives one: thesis B.6.4 for pc (LIDC 320 CT and MAR, BraTS MRI), the
# released BraTS configs for the other samplers, and the released code's VE
# default snr otherwise.
FALLBACK_DEFAULTS: dict[str, dict[str | None, dict[str, float]]] = {
    "pc": {None: {"snr": DEFAULT_SNR, "lam": 1.0}, "ct-sparse-view": {"snr": 0.246, "lam": 0.841},
           "ct-mar": {"snr": 0.209, "lam": 0.227}, "mri": {"snr": 0.577, "lam": 0.982}},
    "ald": {None: {"snr": 0.386, "lam": 1.0}},
    "langevin": {None: {"snr": 0.212, "rho": 0.713}},
    "score-sde": {None: {"snr": 0.608, "rho": 1.231}},
    "dds": {None: {"eta": 1.0, "cg_steps": 5, "gamma": 0.0, "start_sigma": None, "start_from": "cgls"}},
    "ddim": {None: {"eta": 1.0, "lam": 1.0, "start_sigma": None, "start_from": "cgls"}},
}


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


# Each option's validity test and its description for error messages.
OPTION_RULES: dict[str, tuple[Callable[[float | str], bool], str]] = {
    "snr": (lambda v: v > 0, "> 0"),
    "lam": (lambda v: 0 <= v <= 1, "in [0, 1]"),
    "rho": (lambda v: v > 0, "> 0"),
    "eta": (lambda v: 0 <= v <= 1, "in [0, 1]"),
    "cg_steps": (lambda v: int(v) == v and v >= 0, "an integer >= 0"),
    "gamma": (lambda v: v >= 0, ">= 0"),
    "start_sigma": (lambda v: v > 0, "> 0"),
    "start_from": (lambda v: v in decomposed.warm_starts(), f"one of {', '.join(decomposed.warm_starts())}"),
}


def sampler_defaults(prior, sampler: str, task: str | None) -> dict[str, float]:
    """Option defaults (snr, lam, rho, eta, ...): the prior's ``meta["defaults"][task]`` over the published fallbacks.

    For ``pc`` the task's top-level ``snr`` and ``lam`` apply; any sampler also
    reads a sub-dictionary named after it, e.g.
    ``{"mri": {"snr": 0.58, "lam": 0.98, "langevin": {"snr": 0.21, "rho": 0.71}}}``.
    That sub-dictionary may also hold ``steps``, the sampler's default number of
    noise levels for the task (``recon tune --save-steps``).
    """
    fallback = FALLBACK_DEFAULTS[sampler]
    values = dict(fallback[None])
    values.update(fallback.get(task, {}))
    tuned = (getattr(prior, "meta", {}) or {}).get("defaults", {}).get(task, {}) if task else {}
    if sampler == "pc":
        values.update({k: v for k, v in tuned.items() if k in ("snr", "lam")})
    values.update(tuned.get(sampler, {}))
    return values


def defaults_source(prior, sampler: str, task: str | None):
    """Where the prior's defaults for ``task``/``sampler`` came from (a profile entry, a note, or None)."""
    source = (getattr(prior, "meta", {}) or {}).get("defaults_source")
    if isinstance(source, dict):
        source = source.get(task)
        if isinstance(source, dict):
            source = source.get(sampler, source.get("other"))
    return source


def _check(condition: bool, message: str) -> None:
    if not condition:
        raise InputError(message)


def check_option_values(options: dict[str, float | str | None]) -> None:
    """Raise an InputError for a value outside its range (:data:`OPTION_RULES`); None values and
    names without a rule pass. Needs no prior, so commands run it before loading anything."""
    for name, value in options.items():
        if value is not None and name in OPTION_RULES:
            _check(OPTION_RULES[name][0](value),
                   f"--{name.replace('_', '-')}: must be {OPTION_RULES[name][1]}, got {value}")


def check_warm_start(start_from: str | None, warm: bool) -> None:
    """Raise an InputError for a ``start_from`` given to a run without a warm start (no ``start_sigma``)."""
    _check(start_from is None or warm, "--start-from: needs --start-sigma (the noise level of the warm start)")


def check_options(prior, sampler: str, options: dict[str, float | None]) -> None:
    """Raise an InputError for an option ``sampler`` does not read, a value outside its range
    (:data:`OPTION_RULES`) or a ``start_sigma`` outside the prior's noise levels; None values pass."""
    spec = SAMPLERS[sampler]
    unused = sorted(name for name, value in options.items() if value is not None and name not in spec.options)
    check_option_values({name: value for name, value in options.items() if name in spec.options})
    _check(not unused, f"sampler {sampler} does not use {', '.join(unused)}; it reads {', '.join(spec.options)}")
    start_sigma = options.get("start_sigma")
    _check(start_sigma is None or prior.sde.sigma_min < start_sigma <= prior.sde.sigma_max,
           f"--start-sigma: must lie in ({prior.sde.sigma_min}, {prior.sde.sigma_max:.4g}] for this prior, "
           f"got {start_sigma}")


def _context(prior, sigmas: torch.Tensor, generator: torch.Generator, snr: float, corrector_steps: int,
             step_norm: str, progress: bool, callback, label: str) -> core.Context:
    return core.Context(core.CountedScore(prior), sigmas, generator, snr, corrector_steps, step_norm,
                        callback=callback, progress=progress, label=label)


def _tweedie(ctx: core.Context, x: torch.Tensor) -> torch.Tensor:
    """x + sigma_min^2 s(x, sigma_min)."""
    sigma_min = float(ctx.sigmas[-1])
    return x + sigma_min ** 2 * ctx.score(x, sigma_min)


def reconstruct(prior, measurement, y: torch.Tensor, sampler: str = DEFAULT_SAMPLER, *, steps: int | None = None,
                snr: float | None = None, lam: float | None = None, corrector_steps: int | None = None,
                n_samples: int = 1, seed: int = 0, form: str | None = None, progress: bool = True,
                callback: Callable[[int, int, torch.Tensor], None] | None = None, task: str | None = None,
                rho: float | None = None, eta: float | None = None, cg_steps: int | None = None,
                gamma: float | None = None, start_sigma: float | None = None, start_from: str | None = None,
                likelihood_scale: float | None = None,
                step_norm: str = "image", final_projection: bool | None = None, projection_tol: float = 1e-4,
                projection_max_iter: int = 1000) -> Reconstruction:
    """Sample the posterior p(x | y) with a score prior and return the mean of K samples.

    Args:
        prior: a :class:`priors.base.ScorePrior` (``sde``, ``meta``, ``score``).
        measurement: an :class:`operators.Measurement` (A = P(Lambda) T).
        y: (B, ...) measurements as returned by ``measurement.measure``; their
            device is the device of the whole run.
        sampler: a key of :data:`SAMPLERS`.
        steps: noise levels N (default: the prior's tuned ``steps`` for this task and sampler, else
            the sampler's: 1000 for pc/score-sde, 700 for ald/langevin, 50 for dds/ddim).
        snr: corrector signal-to-noise ratio (default: :func:`sampler_defaults`).
        lam: proximal weight in [0, 1] (pc, ald; default: :func:`sampler_defaults`).
        corrector_steps: Langevin steps per level (default: 1 for pc/score-sde, 3 for ald/langevin).
        n_samples: K posterior samples; their mean is the output, their std the uncertainty.
        seed: seed of the run's torch.Generator (same seed, same device: same output).
        form: ``"projection"`` or ``"residual"`` proximal step. Default: the
            projection form; for CT it runs with the hann FBP window as T^-1
            (whatever the measurement's own window), the only stable one (see
            :mod:`recon.samplers.consistency`).
        progress: show a progress bar.
        callback: ``callback(level, n_levels, x)`` after every noise level.
        task: ``"ct-sparse-view"``, ``"ct-mar"``, ``"mri"`` or None: selects defaults.
        rho: likelihood std / sigma of the baselines (langevin, score-sde).
        eta: stochastic share of the fast samplers' re-noising (dds, ddim; 0: deterministic).
        cg_steps: conjugate-gradient iterations per level of ``dds``.
        gamma: ``dds``'s weight of ||x - x0||^2 in its data step (0 for noiseless data).
        start_sigma: first noise level of ``dds`` / ``ddim``, started from a first
            reconstruction (``start_from``) plus noise of this std (None: sigma_max, pure noise).
        start_from: the image of that warm start: a key of :data:`recon.baselines.BASELINES`
            (default: the prior's profile for the task, else ``"cgls"``, a few least-squares steps).
        A sampler given an option it does not read (see ``SAMPLERS[name].options``)
        raises an InputError.
        likelihood_scale: L of the baselines' gradient (default ||A||^2, see
            :mod:`recon.samplers.likelihood`).
        step_norm: ``"image"`` (per-image norms in the snr step size) or ``"batch"``.
        final_projection: project the denoised sample onto {A x = y} (default:
            for proximal samplers with lam > 0 when ``measurement.noise_std == 0``).
        projection_tol, projection_max_iter: stopping rule of that projection.
    """
    _check(sampler in SAMPLERS, f"--sampler: unknown sampler {sampler!r}; choose one of {', '.join(SAMPLERS)}")
    spec = SAMPLERS[sampler]
    defaults = sampler_defaults(prior, sampler, task)
    steps = int(defaults.get("steps", spec.steps)) if steps is None else int(steps)
    corrector_steps = spec.corrector_steps if corrector_steps is None else int(corrector_steps)
    if form is None and SAMPLERS.get(sampler, SAMPLERS["pc"]).proximal and not projection_form_is_stable(measurement):
        measurement = measurement.with_window(STABLE_FBP_WINDOWS[0])  # T^-1 of the proximal step only
    form = default_form(measurement) if form is None else form
    _check(steps >= 1, f"--steps: must be >= 1, got {steps}")
    _check(corrector_steps >= 0, f"corrector steps must be >= 0, got {corrector_steps}")
    _check(n_samples >= 1, f"--samples: must be >= 1, got {n_samples}")
    _check(form in FORMS, f"unknown data-consistency form {form!r}; choose one of {', '.join(FORMS)}")
    _check(step_norm in STEP_NORMS, f"step_norm must be one of {', '.join(STEP_NORMS)}, got {step_norm!r}")
    given = {"snr": snr, "lam": lam, "rho": rho, "eta": eta, "cg_steps": cg_steps, "gamma": gamma,
             "start_sigma": start_sigma, "start_from": start_from}
    values = {name: defaults[name] if given[name] is None else given[name] for name in spec.options}
    check_options(prior, sampler, {**{k: v for k, v in given.items() if v is not None}, **values})
    check_warm_start(start_from, values.get("start_sigma") is not None)
    params = {"sampler": sampler, "task": task, "steps": steps, "corrector_steps": corrector_steps,
              "step_norm": step_norm, "n_samples": n_samples, "seed": seed, **values}
    lam = values.get("lam", 1.0)
    if spec.proximal:
        _check(form == "residual" or projection_form_is_stable(measurement),
               f"the projection form diverges with the {getattr(measurement.transform, 'window', '?')} FBP window "
               "(FBP R amplifies); build the CT measurement with window='hann' or use form='residual'")
        params.update(form=form)
        if hasattr(measurement.transform, "window"):
            params["fbp_window"] = measurement.transform.window

    device = y.device
    with torch.no_grad():
        like = measurement.A_adjoint(y)  # (B, 1, H, W) real images
        size = (getattr(prior, "meta", {}) or {}).get("size")
        if isinstance(size, int):
            _check(tuple(like.shape[-2:]) == (size, size),
                   f"prior {prior.meta.get('id')!r} is for {size}x{size} images but the measurement is "
                   f"{like.shape[-2]}x{like.shape[-1]}")
        if spec.likelihood:
            rho = values["rho"]
            likelihood_scale = operator_norm_squared(measurement, like) if likelihood_scale is None \
                else float(likelihood_scale)
            params.update(rho=rho, likelihood_scale=likelihood_scale)
        project_at_end = spec.proximal and lam > 0 and measurement.noise_std == 0 if final_projection is None \
            else bool(final_projection)
        start_sigma = values.get("start_sigma")
        sigmas = prior.sde.discrete_sigmas(steps, device=device, start=start_sigma)
        params.update(sigma_max=prior.sde.sigma_max, sigma_min=prior.sde.sigma_min, final_projection=project_at_end,
                      prior=(getattr(prior, "meta", {}) or {}).get("id"), device=str(device))

        # Samples run as one batch (K * B images) unless the mask differs per image (MAR).
        per_image_mask = measurement.mask(torch.empty(1, device=device)).shape[0] > 1 and n_samples > 1
        groups = [1] * n_samples if per_image_mask else [n_samples]
        # the warm start's first reconstruction, once for every sample (baselines are deterministic)
        first = None if start_sigma is None else decomposed.warm_start_image(values["start_from"], measurement, y)
        generator = torch.Generator(device=device).manual_seed(seed)
        outputs, nfe, projection = [], 0, {"iterations": 0, "relative_residual": None}
        for g, k in enumerate(groups):
            y_k = y.repeat(k, *([1] * (y.dim() - 1)))
            label = sampler if len(groups) == 1 else f"{sampler} {g + 1}/{len(groups)}"
            ctx = _context(prior, sigmas, generator, values.get("snr", 0.0), corrector_steps, step_norm, progress,
                           callback, label)
            ctx.eta, ctx.cg_steps, ctx.gamma = (values.get(k, getattr(ctx, k)) for k in ("eta", "cg_steps", "gamma"))
            if spec.proximal:
                ctx.consistency = DataConsistency(measurement, y_k, lam, form)
            if spec.likelihood:
                ctx.likelihood = GaussianLikelihood(measurement, y_k, rho, like, likelihood_scale)
            x = sigmas[0] * torch.randn((k * like.shape[0], *like.shape[1:]), generator=generator,
                                        device=device, dtype=like.dtype)
            if first is not None:  # the first reconstruction under the noise
                x = x + first.repeat(k, *([1] * (first.dim() - 1)))
            x = spec.run(x, ctx)
            if spec.denoise_at_end:
                x = _tweedie(ctx, x)
            if project_at_end:
                x, info = project(measurement, x, y_k, projection_tol, projection_max_iter)
                projection = {"iterations": max(projection["iterations"], info["iterations"]),
                              "relative_residual": max(projection["relative_residual"] or 0.0,
                                                       info["relative_residual"])}
            outputs.append(x.reshape(k, *like.shape))
            nfe = ctx.score.calls
    samples = torch.cat(outputs)
    if project_at_end:
        params.update(projection_iterations=projection["iterations"],
                      projection_relative_residual=projection["relative_residual"])
    params["nfe"] = nfe
    std = samples.std(dim=0) if n_samples > 1 else None
    return Reconstruction(mean=samples.mean(dim=0), std=std, samples=samples, nfe=nfe, params=params)


def sample(prior, n: int, sampler: str = "pc", *, shape: tuple[int, int] | None = None, steps: int | None = None,
           snr: float = DEFAULT_SNR, corrector_steps: int | None = None, step_norm: str = "image", seed: int = 0,
           device: torch.device | str = "cpu", progress: bool = True) -> torch.Tensor:
    """n unconditional samples (n, 1, H, W) from the prior with ``pc`` or ``ald`` (Tweedie-denoised).

    ``shape`` defaults to the prior's ``meta["size"]`` (an int side or [H, W]).
    """
    _check(sampler in ("pc", "ald"), f"unconditional sampling needs pc or ald, got {sampler!r}")
    spec = SAMPLERS[sampler]
    if shape is None:
        size = prior.meta["size"]
        shape = (size, size) if isinstance(size, int) else tuple(size)
    steps = spec.steps if steps is None else steps
    corrector_steps = spec.corrector_steps if corrector_steps is None else corrector_steps
    generator = torch.Generator(device=device).manual_seed(seed)
    sigmas = prior.sde.discrete_sigmas(steps, device=device)
    with torch.no_grad():
        ctx = _context(prior, sigmas, generator, snr, corrector_steps, step_norm, progress, None, sampler)
        x = sigmas[0] * torch.randn((n, 1, *shape), generator=generator, device=device)
        return _tweedie(ctx, spec.run(x, ctx))


__all__ = ["FALLBACK_DEFAULTS", "FORMS", "Reconstruction", "SAMPLERS", "SamplerSpec", "check_option_values",
           "check_options", "check_warm_start", "reconstruct", "sample", "sampler_defaults"]
