"""Score priors: the VE SDE, the NCSN++ score network, training, safe checkpoints.

``load(name_or_path)`` returns a :class:`LearnedPrior`; bundled priors are
named by the files under ``priors/bundled/`` (``ct-128`` ->
``priors/bundled/ct-128.json`` + ``ct-128.safetensors``). Tuned sampler
defaults from ``recon tune`` live in a profile next to the prior
(``ct-128.profile.json``, see :mod:`priors.learned`) and are merged on loading.
"""
from __future__ import annotations

from pathlib import Path

import torch

from priors.base import ScorePrior
from priors.config import PRESETS, NetworkConfig, RunConfig, TrainConfig, load_config
from priors.errors import PriorError
from priors.learned import PROFILE_SUFFIX, LearnedPrior, profile_path
from priors.ncsnpp import NCSNpp
from priors.sde import VESDE, largest_pairwise_distance

BUNDLED_DIR = Path(__file__).resolve().parent / "bundled"

__all__ = ["BUNDLED_DIR", "LearnedPrior", "NCSNpp", "NetworkConfig", "PRESETS", "RunConfig", "ScorePrior",
           "TrainConfig", "VESDE", "bundled_names", "largest_pairwise_distance", "load", "load_config", "profile_path"]


def bundled_names() -> list[str]:
    """Names of the priors shipped under ``priors/bundled/``."""
    return sorted(p.stem for p in BUNDLED_DIR.glob("*.json") if not p.name.endswith(PROFILE_SUFFIX))


def load(name_or_path: str | Path, device: str | torch.device = "cpu") -> LearnedPrior:
    """A learned prior by bundled name ("ct-128", "mri-128") or by path.

    Paths may be a prior's ``.json``/``.safetensors``/prefix or a training run
    folder (its newest checkpoint's EMA weights). Pickle files are refused and
    weights are checked against the sha256 in the metadata.
    """
    text = str(name_or_path)
    if text in bundled_names():
        return LearnedPrior.from_path(BUNDLED_DIR / text, device)
    path = Path(text)
    if path.exists() or path.with_name(path.name + ".json").exists():
        return LearnedPrior.from_path(path, device)
    names = ", ".join(bundled_names()) or "none installed"
    raise PriorError(f"prior {text}: not a bundled prior ({names}) nor an existing file or run folder")
