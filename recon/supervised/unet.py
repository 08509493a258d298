"""A small residual U-Net for image-domain post-processing (FBPConvNet style).

The network maps a direct reconstruction (FBP for CT, zero-filled for MRI)
to a correction that is added to it: ``out = x + unet(x)``. As in FBPConvNet
(Jin et al. 2017) each level has two 3x3 convolutions, the resolution is
halved by 2x2 max pooling and doubled by a stride-2 transposed convolution,
and channels double per level; here GroupNorm replaces BatchNorm (batch
independent, so training and evaluation agree) and the last 1x1
convolution starts at zero, so an untrained network returns its input.

Shapes: (B, 1, H, W) -> (B, 1, H, W), any H and W (inputs are padded by
edge replication to a multiple of 2^depth and the output cropped back).
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn


@dataclass(frozen=True)
class UNetConfig:
    """Architecture of :class:`ResidualUNet`.

    Attributes:
        base_channels: channels at full resolution; level i has base * 2^i.
        depth: number of 2x down-samplings (levels below full resolution).
        groups: GroupNorm groups (reduced to a divisor of the channel count).
    """

    base_channels: int = 16
    depth: int = 4
    groups: int = 8

    def __post_init__(self) -> None:
        for name in ("base_channels", "depth", "groups"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"UNetConfig.{name} must be an integer >= 1, got {value!r}")

    def to_dict(self) -> dict[str, int]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "UNetConfig":
        unknown = set(data) - {"base_channels", "depth", "groups"}
        if unknown:
            raise ValueError(f"unknown U-Net settings {sorted(unknown)}")
        return cls(**data)


def _double_conv(c_in: int, c_out: int, groups: int) -> nn.Sequential:
    g = math.gcd(groups, c_out)
    return nn.Sequential(
        nn.Conv2d(c_in, c_out, 3, padding=1), nn.GroupNorm(g, c_out), nn.ReLU(inplace=True),
        nn.Conv2d(c_out, c_out, 3, padding=1), nn.GroupNorm(g, c_out), nn.ReLU(inplace=True),
    )


class ResidualUNet(nn.Module):
    """Residual U-Net: ``forward(x) = x + correction(x)`` for (B, 1, H, W) images."""

    def __init__(self, config: UNetConfig = UNetConfig()) -> None:
        super().__init__()
        self.config = config
        ch = [config.base_channels * 2 ** i for i in range(config.depth + 1)]
        self.down = nn.ModuleList([_double_conv(1, ch[0], config.groups)] +
                                  [_double_conv(ch[i - 1], ch[i], config.groups) for i in range(1, len(ch))])
        self.upsample = nn.ModuleList([nn.ConvTranspose2d(ch[i + 1], ch[i], 2, stride=2)
                                       for i in range(config.depth)])
        self.up = nn.ModuleList([_double_conv(2 * ch[i], ch[i], config.groups) for i in range(config.depth)])
        self.head = nn.Conv2d(ch[0], 1, 1)
        nn.init.zeros_(self.head.weight)
        nn.init.zeros_(self.head.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 4 or x.shape[1] != 1:
            raise ValueError(f"expected images of shape (B, 1, H, W), got {tuple(x.shape)}")
        h, w = x.shape[-2:]
        multiple = 2 ** self.config.depth
        pad_h, pad_w = -h % multiple, -w % multiple
        z = F.pad(x, (0, pad_w, 0, pad_h), mode="replicate") if pad_h or pad_w else x
        skips = []
        for i, block in enumerate(self.down):
            z = block(z if i == 0 else F.max_pool2d(z, 2))
            skips.append(z)
        for i in reversed(range(self.config.depth)):
            z = self.up[i](torch.cat([skips[i], self.upsample[i](z)], dim=1))
        return x + self.head(z)[..., :h, :w]
