"""Configurations of the score network and of training, with named presets.

A run is described by a :class:`RunConfig` (network + training). Presets are
named starting points (``tiny`` for tests at 32x32, ``small``/``base``/``large``
for 128x128 priors); a JSON file ``{"network": {...}, "train": {...}}`` may
override any field.

Forward times of the presets on CPU are measured by
``benchmarks/priors_speed.py``; ``base`` is the size of the bundled 128x128
priors (2.7 M parameters, 11 MB in float32).
"""
from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from priors.errors import PriorError


@dataclass(frozen=True)
class NetworkConfig:
    """Size of the NCSN++-style U-Net (see :mod:`priors.ncsnpp`).

    Attributes:
        image_size: side of the square input images (pixels).
        channels: image channels (1 for CT and MRI magnitude).
        nf: channels at the first resolution.
        ch_mult: channel multiplier of each resolution level; the U-Net has
            len(ch_mult) levels, halving the resolution between them.
        num_res_blocks: residual blocks per level on the way down.
        attn_resolutions: feature-map sides (pixels) with self-attention.
        dropout: dropout rate inside the residual blocks.
        fourier_scale: std of the random Gaussian Fourier features of log(sigma).
    """

    image_size: int = 128
    channels: int = 1
    nf: int = 32
    ch_mult: tuple[int, ...] = (1, 2, 2, 2)
    num_res_blocks: int = 2
    attn_resolutions: tuple[int, ...] = (16,)
    dropout: float = 0.0
    fourier_scale: float = 16.0

    def __post_init__(self) -> None:
        _check_network_types(self)
        levels = len(self.ch_mult)
        if self.image_size % (2 ** (levels - 1)):
            raise PriorError(f"network config: image_size {self.image_size} is not divisible by "
                             f"2^{levels - 1} for ch_mult {self.ch_mult}")
        if self.nf < 4 or self.num_res_blocks < 1 or levels < 1:
            raise PriorError("network config: need nf >= 4, num_res_blocks >= 1 and a non-empty ch_mult")


# Ranges a network description may take: wide enough for any prior this project trains, narrow
# enough that a tampered metadata file cannot make the loader allocate gigabytes.
_INT_RANGES = {"image_size": (8, 4096), "channels": (1, 8), "nf": (4, 512), "num_res_blocks": (1, 16)}
_MAX_LEVELS, _MAX_MULT = 10, 16


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def is_number(value: Any) -> bool:
    """An int or float read from JSON (booleans, which Python counts as ints, are not numbers here)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _check_network_types(cfg: "NetworkConfig") -> None:
    """Refuse fields of the wrong type or outside :data:`_INT_RANGES` (one line naming the field)."""
    for name, (low, high) in _INT_RANGES.items():
        value = getattr(cfg, name)
        if not _is_int(value) or not low <= value <= high:
            raise PriorError(f"network config: {name} must be an integer in [{low}, {high}], got {value!r}")
    for name, high in (("ch_mult", _MAX_MULT), ("attn_resolutions", 4096)):
        value = getattr(cfg, name)
        if not isinstance(value, tuple) or not all(_is_int(v) and 1 <= v <= high for v in value):
            raise PriorError(f"network config: {name} must be a list of integers in [1, {high}], got {value!r}")
    if len(cfg.ch_mult) > _MAX_LEVELS:
        raise PriorError(f"network config: ch_mult has {len(cfg.ch_mult)} levels, at most {_MAX_LEVELS}")
    for name, low, high in (("dropout", 0.0, 0.99), ("fourier_scale", 1e-3, 1e3)):
        value = getattr(cfg, name)
        if not is_number(value) or not low <= value <= high:
            raise PriorError(f"network config: {name} must be a number in [{low}, {high}], got {value!r}")


@dataclass(frozen=True)
class TrainConfig:
    """Hyper-parameters of denoising score matching training.

    Attributes:
        steps: total optimiser steps (training stops there; resuming may raise it).
        batch_size: global batch size (split evenly over DDP processes).
        lr: Adam learning rate after warm-up.
        warmup: linear learning-rate warm-up steps.
        grad_clip: max global gradient norm.
        ema: EMA decay of the weights used for sampling.
        ckpt_every: steps between checkpoints.
        sample_every: steps between PNG sample grids (0: never).
        sample_steps: noise levels of the PC sampler used for the grids.
        n_samples: images per sample grid.
        log_every: steps between rows of the training log.
        seed: seed of data order, noise, and the network initialisation.
        hflip: random left-right flips of training images; None decides by
            modality: on for MRI (brains are nearly symmetric), off for CT
            (the heart, aorta and liver are lateralised, and flipped slices
            would teach the prior mirrored anatomy; the procedural CT set
            is large enough without augmentation).
        sigma_max: VE SDE sigma_max; None computes the training set's largest
            pairwise distance.
        max_pairs: pairs sampled for that distance.
        amp: run the forward pass under bfloat16 autocast (weights, optimiser
            and loss stay float32); about 1.8x faster training on CPUs with
            AVX512-BF16 and on recent GPUs.
    """

    steps: int = 100_000
    batch_size: int = 16
    lr: float = 2e-4
    warmup: int = 5000
    grad_clip: float = 1.0
    ema: float = 0.999
    ckpt_every: int = 1000
    sample_every: int = 5000
    sample_steps: int = 100
    n_samples: int = 16
    log_every: int = 50
    seed: int = 0
    hflip: bool | None = None
    sigma_max: float | None = None
    max_pairs: int = 10_000
    amp: bool = False


@dataclass(frozen=True)
class RunConfig:
    """Network plus training configuration of one run."""

    network: NetworkConfig = field(default_factory=NetworkConfig)
    train: TrainConfig = field(default_factory=TrainConfig)

    def to_dict(self) -> dict[str, Any]:
        return {"network": network_to_dict(self.network), "train": dataclasses.asdict(self.train)}

    @staticmethod
    def from_dict(data: dict[str, Any]) -> "RunConfig":
        return RunConfig(network=network_from_dict(data.get("network", {})),
                         train=_build(TrainConfig, data.get("train", {}), "train"))


def network_to_dict(cfg: NetworkConfig) -> dict[str, Any]:
    """JSON-ready dict of a network config (tuples become lists)."""
    return {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(cfg).items()}


def network_from_dict(data: dict[str, Any]) -> NetworkConfig:
    """Inverse of :func:`network_to_dict`; unknown keys, wrong types and absurd sizes are refused."""
    if not isinstance(data, dict):
        raise PriorError(f"network config: expected an object of named fields, got {type(data).__name__}")
    data = {k: tuple(v) if isinstance(v, list) else v for k, v in data.items()}
    return _build(NetworkConfig, data, "network")


def _build(cls: type, data: dict[str, Any], where: str) -> Any:
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - names)
    if unknown:
        raise PriorError(f"config: unknown {where} option(s) {', '.join(unknown)}")
    return cls(**data)


def _preset(size: int, nf: int, ch_mult: tuple[int, ...], blocks: int, attn: tuple[int, ...],
            **train: Any) -> RunConfig:
    return RunConfig(NetworkConfig(image_size=size, nf=nf, ch_mult=ch_mult, num_res_blocks=blocks,
                                   attn_resolutions=attn), TrainConfig(**train))


# Named presets. "base" is the shipped 128x128 size, the architecture of the
# paper's BraTS prior (nf 32, ch_mult (1,1,2,2,2), 2 residual blocks): about
# 50 ms per evaluation at batch 1 on a 2-core CPU (benchmarks/priors_speed.py),
# so a 2000-evaluation PC sampler takes under two minutes per slice.
PRESETS: dict[str, RunConfig] = {
    "tiny": _preset(32, 8, (1, 2), 1, (16,), batch_size=8, warmup=10, ckpt_every=50, sample_every=0,
                    sample_steps=10, n_samples=4, log_every=1, steps=100),
    "small": _preset(128, 16, (1, 2, 2, 2), 1, (16,)),
    "base": _preset(128, 32, (1, 1, 2, 2, 2), 2, (16,)),
    "large": _preset(128, 64, (1, 1, 2, 2, 2), 2, (16,)),
}


def load_config(name_or_path: str) -> RunConfig:
    """A preset by name, or a JSON file overriding the ``base`` preset.

    The JSON file may name its starting preset with a top-level ``"preset"``.
    """
    if name_or_path in PRESETS:
        return PRESETS[name_or_path]
    path = Path(name_or_path)
    if not path.is_file():
        raise PriorError(f"--config {name_or_path}: neither a preset ({', '.join(PRESETS)}) nor a JSON file")
    try:
        data = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise PriorError(f"{path}: not valid JSON ({exc})") from None
    if not isinstance(data, dict):
        raise PriorError(f"{path}: expected a JSON object with 'network' and/or 'train'")
    base = PRESETS.get(data.pop("preset", "base"))
    if base is None:
        raise PriorError(f"{path}: unknown preset; choose one of {', '.join(PRESETS)}")
    unknown = sorted(set(data) - {"network", "train"})
    if unknown:
        raise PriorError(f"{path}: unknown key(s) {', '.join(unknown)}; expected 'network', 'train', 'preset'")
    merged = base.to_dict()
    merged["network"].update(data.get("network", {}))
    merged["train"].update(data.get("train", {}))
    return RunConfig.from_dict(merged)
