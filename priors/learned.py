"""A trained score network as a :class:`priors.base.ScorePrior`.

A prior may have a *profile* next to it, ``PREFIX.profile.json`` (``RUN/profile.json``
for a training run folder), written by ``recon tune``: sampler option values
tuned per task and sampler, with where they came from::

    {"ct-sparse-view": {"pc": {"values": {"lam": 0.8, "snr": 0.2}, "sampler": "pc",
                               "steps": 100, "metric": "ssim", "value": 0.91,
                               "prior_sha256": "...", "date": "...", "source": "recon tune ct ..."}}}

Loading merges it over the metadata: ``meta["defaults"][task][sampler]``
gains the values (the sub-dictionary :func:`recon.samplers.sampler_defaults`
reads last) and ``meta["defaults_source"][task][sampler]`` the rest of the
entry plus the profile's path (the metadata's own note moves to
``meta["defaults_source"][task]["other"]``). Entries tuned for other weights (another
``prior_sha256``) are skipped with a warning.
"""
from __future__ import annotations

import copy
import json
import warnings
from pathlib import Path
from typing import Any

import torch

from priors.checkpoint import read_prior
from priors.config import is_number, network_from_dict
from priors.errors import PriorError
from priors.ncsnpp import NCSNpp
from priors.sde import VESDE

PROFILE_SUFFIX = ".profile.json"


def profile_path(path: str | Path) -> Path:
    """Where the profile of the prior at ``path`` (prefix, .json, .safetensors or run folder) lives."""
    p = Path(path)
    if p.is_dir():
        return p / "profile.json"
    if p.suffix in (".json", ".safetensors"):
        p = p.with_suffix("")
    return p.with_name(p.name + PROFILE_SUFFIX)


def read_profile(path: str | Path) -> dict[str, dict[str, dict[str, Any]]]:
    """A profile as {task: {sampler: entry}}; {} when the file does not exist."""
    path = Path(path)
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise PriorError(f"{path}: not a valid prior profile ({exc})") from None
    valid = isinstance(data, dict) and all(
        isinstance(samplers, dict) and all(isinstance(e, dict) and isinstance(e.get("values"), dict)
                                           for e in samplers.values()) for samplers in data.values())
    if not valid:
        raise PriorError(f"{path}: a prior profile must map task -> sampler -> {{\"values\": {{...}}, ...}}")
    return data


def apply_profile(meta: dict[str, Any], profile: dict[str, dict[str, dict[str, Any]]],
                  where: str | Path) -> dict[str, Any]:
    """A copy of ``meta`` with the profile's tuned values merged into its defaults (see the module doc)."""
    if not profile:
        return meta
    meta = copy.deepcopy(meta)
    defaults = meta.setdefault("defaults", {})
    original = meta.get("defaults_source")
    sources = dict(original) if isinstance(original, dict) else {t: original for t in defaults if original}
    weights_sha = meta.get("weights", {}).get("sha256")
    for task, samplers in profile.items():
        for sampler, entry in samplers.items():
            tuned_for = entry.get("prior_sha256")
            if weights_sha and tuned_for and tuned_for != weights_sha:
                warnings.warn(f"{where}: {task}/{sampler} values were tuned for other weights of this prior; "
                              "ignored (run recon tune again)", stacklevel=2)
                continue
            defaults.setdefault(task, {}).setdefault(sampler, {}).update(entry["values"])
            task_sources = sources.get(task)
            if not isinstance(task_sources, dict):  # a note on every sampler's values: keep it for the others
                sources[task] = {"other": task_sources} if task_sources else {}
            sources[task][sampler] = {"profile": str(where), **{k: v for k, v in entry.items() if k != "values"}}
    meta["defaults_source"] = sources
    return meta


def build_network(weights: dict[str, torch.Tensor], meta: dict[str, Any], where: str = "prior") -> NCSNpp:
    """The network described by ``meta["network"]`` carrying ``weights``.

    Raises PriorError when the weights do not fit that architecture (missing,
    unexpected or mis-shaped tensors).
    """
    if "network" not in meta:
        raise PriorError(f"{where}: metadata has no 'network' architecture")
    try:
        config = network_from_dict(meta["network"])
    except PriorError as error:
        raise PriorError(f"{where}: {error}") from None
    with torch.device("meta"):  # shapes only: nothing is allocated before the weights are known to fit
        expected = NCSNpp(config).state_dict()
    missing = sorted(set(expected) - set(weights))
    unexpected = sorted(set(weights) - set(expected))
    shapes = sorted(k for k in set(expected) & set(weights) if expected[k].shape != weights[k].shape)
    if missing or unexpected or shapes:
        detail = "; ".join(f"{label}: {', '.join(keys[:3])}{' ...' if len(keys) > 3 else ''}"
                           for label, keys in (("missing", missing), ("unexpected", unexpected),
                                               ("wrong shape", shapes)) if keys)
        raise PriorError(f"{where}: weights do not match the architecture in the metadata ({detail})")
    net = NCSNpp(config)
    net.load_state_dict(weights)
    return net.eval().requires_grad_(False)


def _check_sde(meta: dict[str, Any], where: str | Path) -> None:
    """Refuse an ``sde`` entry without positive numbers sigma_min < sigma_max."""
    sde = meta.get("sde")
    sigmas = (sde.get("sigma_min", 0.01), sde.get("sigma_max")) if isinstance(sde, dict) else (None, None)
    if not all(is_number(s) for s in sigmas) or not 0 < sigmas[0] < sigmas[1] < 1e6:
        raise PriorError(f"{where}: metadata needs sde.sigma_max (and optional sde.sigma_min) as numbers with "
                         f"0 < sigma_min < sigma_max, got {sde!r}")


class LearnedPrior:
    """Score prior backed by an NCSN++ network (EMA weights).

    Attributes:
        network: the torch module, in eval mode, without gradients.
        sde: the VE SDE the network was trained for.
        meta: the prior's JSON metadata (id, modality, size, intensity,
            defaults, network, sde, dataset, training, weights), with its
            profile merged in.
        profile: path of the prior's profile (it may not exist), set by
            :meth:`from_path`; None for a prior built in memory.
    """

    profile: Path | None = None

    def __init__(self, network: NCSNpp, meta: dict[str, Any]) -> None:
        # channels_last makes CPU evaluation about 30% faster (benchmarks/priors_speed.py).
        self.network = network.to(memory_format=torch.channels_last)
        self.meta = meta
        sde = meta.get("sde", {})
        self.sde = VESDE(sigma_max=float(sde["sigma_max"]), sigma_min=float(sde.get("sigma_min", 0.01)))

    @classmethod
    def from_path(cls, path: str | Path, device: str | torch.device = "cpu") -> "LearnedPrior":
        """Load a prior file (prefix, .json or .safetensors) or a training run folder, and its profile."""
        weights, meta = read_prior(path)
        _check_sde(meta, path)
        profile = profile_path(path)
        meta = apply_profile(meta, read_profile(profile), profile)
        prior = cls(build_network(weights, meta, str(path)), meta).to(device)
        prior.profile = profile
        return prior

    @property
    def device(self) -> torch.device:
        return next(self.network.parameters()).device

    @property
    def pixel_spacing_range(self) -> tuple[float, float] | None:
        """(smallest, largest) pixel spacing in mm of the images it was trained on (its data set's manifest:
        ``pixel_spacing_range_mm``); None when the manifest does not say."""
        manifest = (self.meta.get("dataset") or {}).get("manifest") or {}
        value = manifest.get("pixel_spacing_range_mm")
        if not isinstance(value, (list, tuple)) or len(value) != 2:
            return None
        return float(value[0]), float(value[1])

    def to(self, device: str | torch.device) -> "LearnedPrior":
        self.network.to(device)
        return self

    def score(self, x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
        """s(x, sigma) ~ grad log p_sigma(x): x (B, 1, H, W), sigma (B,) -> (B, 1, H, W), no gradients."""
        with torch.no_grad():
            xin = x.to(self.device, torch.float32).contiguous(memory_format=torch.channels_last)
            out = self.network(xin, sigma.to(self.device, torch.float32))
        return out.to(device=x.device, dtype=x.dtype).contiguous()
