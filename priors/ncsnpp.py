"""NCSN++-style score network (Song et al. 2021, appendix B.5.8 of the seeds).

A U-Net conditioned on the noise level through random Gaussian Fourier
features of log(sigma) (scale 16), built from BigGAN-type residual blocks
(GroupNorm, SiLU, resampling inside the block), self-attention at low
resolutions, every residual/skip sum rescaled by 1/sqrt(2), and the output
divided by sigma so that the network predicts -z for x_t = x_0 + sigma z.

Simplifications against the official model: resampling is 2x2 average
pooling / nearest-neighbour upsampling instead of FIR filters, and there is
no progressive-growing input/output pyramid.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from priors.config import NetworkConfig

SKIP_SCALE = 1.0 / math.sqrt(2.0)


def _group_norm(channels: int) -> nn.GroupNorm:
    return nn.GroupNorm(num_groups=min(channels // 4, 32), num_channels=channels, eps=1e-6)


def _zero(module: nn.Module) -> nn.Module:
    """Zero-initialise a layer so a residual branch starts as the identity."""
    for p in module.parameters():
        nn.init.zeros_(p)
    return module


class GaussianFourierFeatures(nn.Module):
    """[sin(2 pi W s), cos(2 pi W s)] for scalars s (B,) -> (B, 2 * half).

    W ~ N(0, scale^2) is fixed (a buffer, saved with the weights).
    """

    def __init__(self, half: int, scale: float) -> None:
        super().__init__()
        self.register_buffer("W", torch.randn(half) * scale)

    def forward(self, s: torch.Tensor) -> torch.Tensor:
        proj = 2 * math.pi * s[:, None] * self.W[None, :]
        return torch.cat([proj.sin(), proj.cos()], dim=1)


class ResBlock(nn.Module):
    """BigGAN-type residual block with noise-level embedding and optional resampling.

    (B, c_in, H, W) -> (B, c_out, H', W') with H' = H/2 (down), 2H (up) or H.
    """

    def __init__(self, c_in: int, c_out: int, emb_dim: int, dropout: float,
                 up: bool = False, down: bool = False) -> None:
        super().__init__()
        self.up, self.down = up, down
        self.norm1 = _group_norm(c_in)
        self.conv1 = nn.Conv2d(c_in, c_out, 3, padding=1)
        self.emb = nn.Linear(emb_dim, c_out)
        nn.init.zeros_(self.emb.bias)
        self.norm2 = _group_norm(c_out)
        self.dropout = nn.Dropout(dropout)
        self.conv2 = _zero(nn.Conv2d(c_out, c_out, 3, padding=1))
        self.skip = nn.Conv2d(c_in, c_out, 1) if (c_in != c_out or up or down) else nn.Identity()

    def _resample(self, x: torch.Tensor) -> torch.Tensor:
        if self.up:
            return F.interpolate(x, scale_factor=2.0, mode="nearest")
        if self.down:
            return F.avg_pool2d(x, 2)
        return x

    def forward(self, x: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        h = F.silu(self.norm1(x))
        h = self.conv1(self._resample(h))
        h = h + self.emb(F.silu(emb))[:, :, None, None]
        h = self.conv2(self.dropout(F.silu(self.norm2(h))))
        return (self.skip(self._resample(x)) + h) * SKIP_SCALE


class AttnBlock(nn.Module):
    """Single-head self-attention over all pixels, residual with 1/sqrt(2) rescale."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.norm = _group_norm(channels)
        self.qkv = nn.Conv2d(channels, 3 * channels, 1)
        self.out = _zero(nn.Conv2d(channels, channels, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        q, k, v = self.qkv(self.norm(x)).reshape(b, 3, c, h * w).transpose(2, 3).unbind(1)
        a = F.scaled_dot_product_attention(q[:, None], k[:, None], v[:, None])[:, 0]
        return (x + self.out(a.transpose(1, 2).reshape(b, c, h, w))) * SKIP_SCALE


class NCSNpp(nn.Module):
    """Score network s(x, sigma): (B, C, H, W), (B,) -> (B, C, H, W).

    Input images are in model units (e.g. CT (HU+1000)/4000); they are mapped
    by 2x - 1 before the first convolution, as the official model does for
    [0, 1] data. The output is divided by sigma.
    """

    def __init__(self, config: NetworkConfig) -> None:
        super().__init__()
        self.config = config
        nf, emb_dim = config.nf, 4 * config.nf
        self.fourier = GaussianFourierFeatures(nf // 2, config.fourier_scale)
        self.emb = nn.Sequential(nn.Linear(2 * (nf // 2), emb_dim), nn.SiLU(), nn.Linear(emb_dim, emb_dim))
        self.stem = nn.Conv2d(config.channels, nf, 3, padding=1)

        def block(c_in: int, c_out: int, **kw: bool) -> ResBlock:
            return ResBlock(c_in, c_out, emb_dim, config.dropout, **kw)

        attn = set(config.attn_resolutions)
        self.down = nn.ModuleList()
        skips = [nf]
        ch, res = nf, config.image_size
        for level, mult in enumerate(config.ch_mult):
            for _ in range(config.num_res_blocks):
                self.down.append(block(ch, nf * mult))
                ch = nf * mult
                if res in attn:
                    self.down.append(AttnBlock(ch))
                skips.append(ch)
            if level != len(config.ch_mult) - 1:
                self.down.append(block(ch, ch, down=True))
                res //= 2
                skips.append(ch)

        self.mid = nn.ModuleList([block(ch, ch), AttnBlock(ch), block(ch, ch)])

        self.up = nn.ModuleList()
        for level, mult in reversed(list(enumerate(config.ch_mult))):
            for _ in range(config.num_res_blocks + 1):
                self.up.append(block(ch + skips.pop(), nf * mult))
                ch = nf * mult
                if res in attn:
                    self.up.append(AttnBlock(ch))
            if level != 0:
                self.up.append(block(ch, ch, up=True))
                res *= 2
        self.head = nn.Sequential(_group_norm(ch), nn.SiLU(), _zero(nn.Conv2d(ch, config.channels, 3, padding=1)))

    def forward(self, x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
        emb = self.emb(self.fourier(torch.log(sigma)))
        h = self.stem(2 * x - 1)
        hs = [h]
        for layer in self.down:
            if isinstance(layer, AttnBlock):
                h = layer(h)
                hs[-1] = h
            else:
                h = layer(h, emb)
                hs.append(h)
        for layer in self.mid:
            h = layer(h) if isinstance(layer, AttnBlock) else layer(h, emb)
        for layer in self.up:
            if isinstance(layer, AttnBlock):
                h = layer(h)
            elif layer.up:
                h = layer(h, emb)
            else:
                h = layer(torch.cat([h, hs.pop()], dim=1), emb)
        return self.head(h) / sigma.view(-1, 1, 1, 1)
