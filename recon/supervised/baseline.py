"""Trained post-processing networks as reconstruction baselines.

:func:`fbpconvnet` (CT) and :func:`unet_mri` (MRI) follow the signature of
:data:`recon.baselines.BASELINES`: ``fn(measurement, y, model=...)`` returns
real (B, 1, N, N) images in model units on the device of ``y``. They
compute the direct reconstruction of ``y`` for *that* measurement (FBP of
its views, zero-filled of its columns) and apply the network, whatever view
count or acceleration it was trained at: that mismatch is the
generalisation test of the paper's claim (1).

``model`` is a file prefix / ``.json`` / ``.safetensors`` path, a name of a
network under ``priors/bundled/supervised/``, or a :class:`PostProcessor`.
"""
from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import torch

from operators import CTTransform, Fourier, Measurement
from priors import BUNDLED_DIR
from priors.checkpoint import PICKLE_SUFFIXES, prior_paths, refuse_pickle
from recon.errors import InputError
from recon.supervised.storage import read_postprocessing
from recon.supervised.tasks import direct_reconstruction
from recon.supervised.unet import ResidualUNet, UNetConfig

SUPERVISED_DIR = BUNDLED_DIR / "supervised"
DEFAULT_MODELS = {"ct": "fbpconvnet-ct-23", "mri": "unet-mri-8"}


class PostProcessor:
    """A trained :class:`ResidualUNet` (eval mode, no gradients) and its metadata.

    Attributes:
        network: the module. meta: the JSON metadata (task, modality, size,
            measurement it was trained on, network, training, dataset).
    """

    def __init__(self, network: ResidualUNet, meta: dict[str, Any]) -> None:
        self.network = network.eval().requires_grad_(False)
        self.meta = meta

    @torch.no_grad()
    def __call__(self, measurement: Measurement, y: torch.Tensor) -> torch.Tensor:
        """Direct reconstruction of y, then the network: (B, 1, N, N) on y's device."""
        modality = "ct" if isinstance(measurement.transform, CTTransform) else \
            "mri" if isinstance(measurement.transform, Fourier) else None
        if modality != self.meta["modality"]:
            raise InputError(f"post-processing network {self.meta['id']} is for {self.meta['modality']}, "
                             f"not this {modality or type(measurement.transform).__name__} measurement")
        x0 = direct_reconstruction(measurement, y)
        if x0.shape[-1] != self.meta["size"] or x0.shape[-2] != self.meta["size"]:
            raise InputError(f"post-processing network {self.meta['id']} was trained on {self.meta['size']}x"
                             f"{self.meta['size']} images, got {x0.shape[-2]}x{x0.shape[-1]}")
        net = self.network.to(x0.device)
        return net(x0.float()).to(x0.dtype)


def _resolve(model: str | Path) -> Path:
    """JSON path of a network given by path or by bundled name."""
    path = Path(model)
    if path.suffix.lower() in PICKLE_SUFFIXES:
        refuse_pickle(path)
    for candidate in (path, SUPERVISED_DIR / path):
        if prior_paths(candidate)[1].is_file():
            return prior_paths(candidate)[1].resolve()
    raise InputError(f"post-processing network {model}: no such file, nor a name under {SUPERVISED_DIR} "
                     "(train one with python -m recon.supervised.train)")


@functools.lru_cache(maxsize=8)
def _load_cached(json_path: Path, version: tuple[int, int]) -> PostProcessor:
    weights, meta = read_postprocessing(json_path)
    try:
        net = ResidualUNet(UNetConfig.from_dict({k: v for k, v in meta["network"].items() if k != "type"}))
        net.load_state_dict(weights)
    except (KeyError, TypeError, ValueError, RuntimeError) as exc:
        raise InputError(f"{json_path}: weights do not match the network in the metadata "
                         f"({str(exc).splitlines()[0]})") from None
    return PostProcessor(net, meta)


def load_postprocessing(model: str | Path) -> PostProcessor:
    """Load (hash-checked, cached per file version) a post-processing network by path or bundled name."""
    json_path = _resolve(model)
    weights_path = prior_paths(json_path)[0]
    version = (json_path.stat().st_mtime_ns, weights_path.stat().st_mtime_ns if weights_path.is_file() else 0)
    return _load_cached(json_path, version)


def postprocess(measurement: Measurement, y: torch.Tensor, model: str | Path | PostProcessor) -> torch.Tensor:
    """Direct reconstruction of y followed by the network ``model``; (B, 1, N, N) on y's device."""
    net = model if isinstance(model, PostProcessor) else load_postprocessing(model)
    return net(measurement, y)


def fbpconvnet(measurement: Measurement, y: torch.Tensor,
               model: str | Path | PostProcessor = DEFAULT_MODELS["ct"]) -> torch.Tensor:
    """FBPConvNet: sparse-view FBP then the CT post-processing U-Net (default: trained at 23 views)."""
    return postprocess(measurement, y, model)


def unet_mri(measurement: Measurement, y: torch.Tensor,
             model: str | Path | PostProcessor = DEFAULT_MODELS["mri"]) -> torch.Tensor:
    """Zero-filled reconstruction then the MRI post-processing U-Net (default: trained at 8x)."""
    return postprocess(measurement, y, model)
