"""Sampler options as data: one frozen dataclass per sampler, and the one step that resolves them.

Values come, later ones winning, from: the published settings (each dataclass's defaults, plus
:data:`PUBLISHED_BY_TASK`), the prior's metadata and its tuned profile (``meta["defaults"][task]``,
see :func:`priors.learned.apply_profile`), and the user's flags. :func:`resolve_options` merges them
and validates the result once; the samplers read the frozen result.

The published settings: thesis B.6.4 for pc (LIDC 320 CT and MAR, BraTS MRI), the released BraTS
configs for ald / langevin / score-sde, the released code's VE snr otherwise; dds and ddim as tuned
in benchmarks/RESULTS.md (eta 1: fresh noise; 5 CG steps).
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Callable, ClassVar

from priors.discretisation import DEFAULT_SNR, STEP_NORMS
from recon.errors import InputError
from recon.methods import BASELINES
from recon.samplers.consistency import FORMS


REFINEMENT = ("refine_tv", "choice_steps")
"""The options of the refinement that defers to the data, which every sampler has and a profile may set."""


@dataclass(frozen=True)
class SamplerOptions:
    """Options every sampler has.

    Attributes:
        steps: noise levels N.
        step_norm: ``"image"`` (per-image norms in the corrector's snr step size) or ``"batch"``.
        refine_tv: TV weight of the refinement that defers to the data (:mod:`recon.samplers.defer`);
            0: none, the sampler's result is the output.
        choice_steps: noise levels of the sampler's run on the fitted lines that chooses the refinement's
            anchor weight (``refine_tv`` > 0; None: ``steps``).
    """

    steps: int = 50
    step_norm: str = "image"
    refine_tv: float = 0.0
    choice_steps: int | None = None

    name: ClassVar[str]
    tuned: ClassVar[tuple[str, ...]] = ()
    """The options a user or a profile may set (CLI flags and ``recon tune``), besides ``steps``."""

    def values(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class ProximalOptions(SamplerOptions):
    """Options of the samplers with the proximal data-consistency step.

    Attributes:
        form: ``"projection"`` or ``"residual"`` step (None: projection, with the hann FBP window as T^-1
            for CT; see :mod:`recon.samplers.consistency`).
        final_projection: project the result onto {A x = y} (None: when the data are noiseless, lam > 0 and
            no refinement follows, ``refine_tv`` = 0).
    """

    form: str | None = None
    final_projection: bool | None = None


@dataclass(frozen=True)
class PCOptions(ProximalOptions):
    """pc: snr of the Langevin corrector, lam in [0, 1] of the proximal step, corrector steps per level."""

    steps: int = 1000
    snr: float = DEFAULT_SNR
    lam: float = 1.0
    corrector_steps: int = 1
    name: ClassVar[str] = "pc"
    tuned: ClassVar[tuple[str, ...]] = ("snr", "lam", *REFINEMENT)


@dataclass(frozen=True)
class ALDOptions(PCOptions):
    """ald: annealed Langevin with the proximal step (pc's options, other published values)."""

    steps: int = 700
    snr: float = 0.386
    corrector_steps: int = 3
    name: ClassVar[str] = "ald"


@dataclass(frozen=True)
class LangevinOptions(SamplerOptions):
    """langevin: rho = likelihood std over sigma; likelihood_scale = L of the gradient (None: ||A||^2)."""

    steps: int = 700
    snr: float = 0.212
    rho: float = 0.713
    corrector_steps: int = 3
    likelihood_scale: float | None = None
    name: ClassVar[str] = "langevin"
    tuned: ClassVar[tuple[str, ...]] = ("snr", "rho", *REFINEMENT)


@dataclass(frozen=True)
class ScoreSDEOptions(LangevinOptions):
    """score-sde: PC with a likelihood gradient against the noisy measurement (langevin's options)."""

    steps: int = 1000
    snr: float = 0.608
    rho: float = 1.231
    corrector_steps: int = 1
    name: ClassVar[str] = "score-sde"


@dataclass(frozen=True)
class DDSOptions(ProximalOptions):
    """dds: eta = share of fresh noise when re-noising; cg_steps CG iterations on
    ||A x - y||^2 + gamma ||x - x0||^2 per level; a warm start from ``start_from`` plus noise of std
    ``start_sigma`` (None: pure noise at sigma_max)."""

    eta: float = 1.0
    cg_steps: int = 5
    gamma: float = 0.0
    start_sigma: float | None = None
    start_from: str = "cgls"
    name: ClassVar[str] = "dds"
    tuned: ClassVar[tuple[str, ...]] = ("eta", "cg_steps", "gamma", "start_sigma", "start_from", *REFINEMENT)


@dataclass(frozen=True)
class DDIMOptions(ProximalOptions):
    """ddim: the proximal step on Tweedie's estimate, DDIM re-noising, the same warm start as dds."""

    eta: float = 1.0
    lam: float = 1.0
    start_sigma: float | None = None
    start_from: str = "cgls"
    name: ClassVar[str] = "ddim"
    tuned: ClassVar[tuple[str, ...]] = ("eta", "lam", "start_sigma", "start_from", *REFINEMENT)


OPTIONS: dict[str, type[SamplerOptions]] = {cls.name: cls for cls in (
    PCOptions, ALDOptions, LangevinOptions, ScoreSDEOptions, DDSOptions, DDIMOptions)}

PUBLISHED_BY_TASK: dict[str, dict[str, dict[str, float]]] = {
    "pc": {"ct-sparse-view": {"snr": 0.246, "lam": 0.841}, "ct-mar": {"snr": 0.209, "lam": 0.227},
           "mri": {"snr": 0.577, "lam": 0.982}},
}
"""The published settings that differ by task (thesis B.6.4); the dataclass defaults hold the rest."""


def warm_starts() -> tuple[str, ...]:
    """Names ``start_from`` accepts: the methods of :data:`recon.methods.BASELINES`."""
    return tuple(BASELINES)


_AT_LEAST_ONE = (lambda v: int(v) == v and v >= 1, "an integer >= 1")

# Each option's validity test and its description for error messages.
OPTION_RULES: dict[str, tuple[Callable[[Any], bool], str | Callable[[], str]]] = {
    "snr": (lambda v: v > 0, "> 0"),
    "lam": (lambda v: 0 <= v <= 1, "in [0, 1]"),
    "rho": (lambda v: v > 0, "> 0"),
    "eta": (lambda v: 0 <= v <= 1, "in [0, 1]"),
    "cg_steps": (lambda v: int(v) == v and v >= 0, "an integer >= 0"),
    "gamma": (lambda v: v >= 0, ">= 0"),
    "refine_tv": (lambda v: v >= 0, ">= 0"),
    "start_sigma": (lambda v: v > 0, "> 0"),
    "start_from": (lambda v: v in warm_starts(), lambda: f"one of {', '.join(warm_starts())}"),
    "steps": _AT_LEAST_ONE,
    "choice_steps": _AT_LEAST_ONE,
    "corrector_steps": (lambda v: int(v) == v and v >= 0, "an integer >= 0"),
    "step_norm": (lambda v: v in STEP_NORMS, f"one of {', '.join(STEP_NORMS)}"),
    "form": (lambda v: v in FORMS, f"one of {', '.join(FORMS)}"),
}


def flag(name: str) -> str:
    """The command-line flag of an option."""
    return "--" + name.replace("_", "-")


def check_option_values(options: dict[str, Any], source: str | None = None) -> None:
    """Raise an InputError for a value outside its range (:data:`OPTION_RULES`); None values and names
    without a rule pass. ``source`` names where the values came from (None: the user's flags). Needs no
    prior, so commands run it before loading anything."""
    for name, value in options.items():
        if value is not None and name in OPTION_RULES and not OPTION_RULES[name][0](value):
            where = flag(name) if source is None else f"{source}: {name}"
            rule = OPTION_RULES[name][1]
            raise InputError(f"{where}: must be {rule() if callable(rule) else rule}, got {value}")


def sampler_defaults(prior, sampler: str, task: str | None) -> dict[str, Any]:
    """The tuned options' defaults for ``sampler`` on ``task``: published values, then the prior's
    ``meta["defaults"][task]`` (for pc its top-level ``snr`` and ``lam``; for any sampler a sub-dictionary
    named after it, which may also hold ``steps``)."""
    cls = OPTIONS[sampler]
    values = {f.name: f.default for f in dataclasses.fields(cls) if f.name in cls.tuned}
    values.update(PUBLISHED_BY_TASK.get(sampler, {}).get(task, {}))
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


def resolve_options(prior, sampler: str, task: str | None = None, **given: Any) -> SamplerOptions:
    """The options of one run: published values -> the prior's metadata and profile for ``task`` ->
    ``given`` (None values are not given), validated once.

    Raises InputError for an unknown sampler, an option the sampler does not read, a value outside its
    range (naming the flag when the user gave it, the prior's profile otherwise), a ``start_sigma``
    outside the prior's noise levels, or a ``start_from`` without a warm start.
    """
    if sampler not in OPTIONS:
        raise InputError(f"--sampler: unknown sampler {sampler!r}; choose one of {', '.join(OPTIONS)}")
    cls = OPTIONS[sampler]
    given = {k: v for k, v in given.items() if v is not None}
    known = {f.name for f in dataclasses.fields(cls)}
    unused = sorted(set(given) - known)
    if unused:
        raise InputError(f"sampler {sampler} does not use {', '.join(unused)}; it reads "
                         f"{', '.join(('steps', *cls.tuned))}")
    check_option_values(given)
    profile = {k: v for k, v in sampler_defaults(prior, sampler, task).items() if k in known}
    check_option_values(profile, f"the prior's defaults for {task or 'any task'} / {sampler}")
    options = cls(**{**profile, **given})
    if getattr(options, "start_sigma", None) is not None and prior is not None:
        sde = prior.sde
        if not sde.sigma_min < options.start_sigma <= sde.sigma_max:
            raise InputError(f"--start-sigma: must lie in ({sde.sigma_min}, {sde.sigma_max:.4g}] for this prior, "
                             f"got {options.start_sigma}")
    if "start_from" in given and getattr(options, "start_sigma", None) is None:
        raise InputError("--start-from: needs --start-sigma (the noise level of the warm start)")
    return options


def option_names() -> tuple[str, ...]:
    """Every option a user may set on some sampler (besides ``steps``), in a stable order."""
    return tuple(dict.fromkeys(name for cls in OPTIONS.values() for name in cls.tuned))
