"""Random streams per slice: a slice's result depends on its seed alone, not on the batch it shares.

Slice i of a batch draws from its own generator, seeded by the run's seed plus i (the pipeline passes the
seed plus the index of the batch's first slice in the volume), so ``--batch-size 1`` and ``--batch-size 4``
give the same slices. K posterior samples of a batch are stacked sample-major, (K B, 1, H, W): row
s B + i is sample s of slice i and draws from slice i's stream.
"""
from __future__ import annotations

import torch


class SliceStreams:
    """One torch.Generator per slice, seeded ``seeds[i]``, on ``device``."""

    def __init__(self, seeds: list[int], device: torch.device | str):
        self.generators = [torch.Generator(device=device).manual_seed(int(s)) for s in seeds]

    def randn_like(self, like: torch.Tensor) -> torch.Tensor:
        """Standard normal noise shaped like ``like`` (K B, ...), row s B + i from stream i."""
        n = len(self.generators)
        if like.shape[0] % n:
            raise ValueError(f"{like.shape[0]} images do not split over {n} slice streams")
        k = like.shape[0] // n
        draws = [torch.randn((k, *like.shape[1:]), generator=g, device=like.device, dtype=like.dtype)
                 for g in self.generators]
        return torch.stack(draws, dim=1).reshape(like.shape)


def randn_like(like: torch.Tensor, source: SliceStreams | torch.Generator | None) -> torch.Tensor:
    """Standard normal noise shaped like ``like`` from slice streams or one generator (None: torch's global one)."""
    if isinstance(source, SliceStreams):
        return source.randn_like(like)
    return torch.randn(like.shape, generator=source, device=like.device, dtype=like.dtype)
