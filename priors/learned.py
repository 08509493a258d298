"""A trained score network as a :class:`priors.base.ScorePrior`."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from priors.checkpoint import read_prior
from priors.config import network_from_dict
from priors.ncsnpp import NCSNpp
from priors.sde import VESDE
from recon.errors import InputError


def build_network(weights: dict[str, torch.Tensor], meta: dict[str, Any], where: str = "prior") -> NCSNpp:
    """The network described by ``meta["network"]`` carrying ``weights``.

    Raises InputError when the weights do not fit that architecture (missing,
    unexpected or mis-shaped tensors).
    """
    if "network" not in meta:
        raise InputError(f"{where}: metadata has no 'network' architecture")
    net = NCSNpp(network_from_dict(meta["network"]))
    expected = net.state_dict()
    missing = sorted(set(expected) - set(weights))
    unexpected = sorted(set(weights) - set(expected))
    shapes = sorted(k for k in set(expected) & set(weights) if expected[k].shape != weights[k].shape)
    if missing or unexpected or shapes:
        detail = "; ".join(f"{label}: {', '.join(keys[:3])}{' ...' if len(keys) > 3 else ''}"
                           for label, keys in (("missing", missing), ("unexpected", unexpected),
                                               ("wrong shape", shapes)) if keys)
        raise InputError(f"{where}: weights do not match the architecture in the metadata ({detail})")
    net.load_state_dict(weights)
    return net.eval().requires_grad_(False)


class LearnedPrior:
    """Score prior backed by an NCSN++ network (EMA weights).

    Attributes:
        network: the torch module, in eval mode, without gradients.
        sde: the VE SDE the network was trained for.
        meta: the prior's JSON metadata (id, modality, size, intensity,
            defaults, network, sde, dataset, training, weights).
    """

    def __init__(self, network: NCSNpp, meta: dict[str, Any]) -> None:
        # channels_last makes CPU evaluation about 30% faster (benchmarks/priors_speed.py).
        self.network = network.to(memory_format=torch.channels_last)
        self.meta = meta
        sde = meta.get("sde", {})
        self.sde = VESDE(sigma_max=float(sde["sigma_max"]), sigma_min=float(sde.get("sigma_min", 0.01)))

    @classmethod
    def from_path(cls, path: str | Path, device: str | torch.device = "cpu") -> "LearnedPrior":
        """Load a prior file (prefix, .json or .safetensors) or a training run folder."""
        weights, meta = read_prior(path)
        if "sigma_max" not in meta.get("sde", {}):
            raise InputError(f"{path}: metadata has no sde.sigma_max")
        return cls(build_network(weights, meta, str(path)), meta).to(device)

    @property
    def device(self) -> torch.device:
        return next(self.network.parameters()).device

    def to(self, device: str | torch.device) -> "LearnedPrior":
        self.network.to(device)
        return self

    def score(self, x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
        """s(x, sigma) ~ grad log p_sigma(x): x (B, 1, H, W), sigma (B,) -> (B, 1, H, W), no gradients."""
        with torch.no_grad():
            xin = x.to(self.device, torch.float32).contiguous(memory_format=torch.channels_last)
            out = self.network(xin, sigma.to(self.device, torch.float32))
        return out.to(device=x.device, dtype=x.dtype).contiguous()
