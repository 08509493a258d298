"""Training data of the priors: reading the images, their identity, and the batch of each step.

Data: an HDF5 file with ``/<split>/images`` (N, 1, H, W) float32 in model
units and a root attribute ``manifest`` (JSON); a split is held in memory.
A run records the images' content hash (:func:`images_sha256`), so it
resumes on a rebuilt file holding the same images.

Batches: :class:`BatchPlan` draws the global batch of step k from
generators seeded by (seed, k) and by (seed, epoch) for the data order, so
it does not depend on history (deterministic resume).
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import torch

from priors import checkpoint as ckpt
from priors.errors import PriorError


def read_images(path: str | Path, split: str = "train") -> tuple[torch.Tensor, dict[str, Any]]:
    """(N, 1, H, W) float32 images of one split and the file's manifest dict."""
    path = Path(path)
    try:
        with h5py.File(path, "r") as f:
            key = f"{split}/images"
            if key not in f:
                raise PriorError(f"{path}: no dataset /{key}")
            images = torch.from_numpy(np.asarray(f[key], dtype=np.float32))
            raw = f.attrs.get("manifest", "{}")
    except OSError as exc:
        raise PriorError(f"{path}: cannot read as HDF5 ({exc})") from None
    if images.dim() != 4 or images.shape[1] != 1 or images.shape[2] != images.shape[3] or images.shape[0] < 2:
        raise PriorError(f"{path}: /{split}/images must be (N>=2, 1, H, H), got {tuple(images.shape)}")
    if not torch.isfinite(images).all():
        raise PriorError(f"{path}: /{split}/images contains NaN or infinite values")
    manifest = json.loads(raw.decode() if isinstance(raw, bytes) else str(raw))
    return images, manifest if isinstance(manifest, dict) else {"manifest": manifest}


def images_sha256(images: torch.Tensor) -> str:
    """sha256 of the images' float32 bytes in C order: the training data's identity, whatever file holds it."""
    return ckpt.sha256_bytes(images.detach().cpu().to(torch.float32).contiguous().numpy().tobytes())


def same_training_data(stored: dict[str, Any], path: Path, digest: str, n_images: int, manifest: dict[str, Any]
                       ) -> bool:
    """Whether the ``n_images`` training images of ``path`` (content hash ``digest``, :func:`images_sha256`;
    file manifest ``manifest``) are the data a run's metadata ``stored`` describes.

    Runs record the images' content hash, so a dataset rebuilt by ``recon data build`` (a new file:
    its manifest stamps the build time) still resumes. Runs from before that recorded the file's
    hash only; for them the same file, or the same manifest apart from its ``created`` time (the
    generator, its version, seeds and counts) and the same number of images, is accepted.
    """
    if "images_sha256" in stored:
        return digest == stored["images_sha256"]
    if ckpt.sha256_file(path) == stored.get("sha256"):
        return True
    recipe = _recipe(stored.get("manifest"))
    return bool(recipe) and recipe == _recipe(manifest) and stored.get("n_train") == n_images


def _recipe(manifest: dict[str, Any] | None) -> dict[str, Any]:
    """A dataset manifest without its build time."""
    return {k: v for k, v in (manifest or {}).items() if k != "created"}


def seed_of(*keys: int) -> int:
    """A well-mixed 63-bit seed from integer keys."""
    return int(np.random.SeedSequence([int(k) for k in keys]).generate_state(1, dtype=np.uint64)[0] >> 1)


class BatchPlan:
    """Global batch indices for step k from per-epoch permutations seeded by (seed, epoch)."""

    def __init__(self, n: int, batch_size: int, seed: int) -> None:
        self.n, self.batch_size, self.seed = n, batch_size, seed
        self._perms: dict[int, torch.Tensor] = {}

    def _perm(self, epoch: int) -> torch.Tensor:
        if epoch not in self._perms:
            self._perms = {e: p for e, p in self._perms.items() if e >= epoch - 1}
            gen = torch.Generator().manual_seed(seed_of(self.seed, 1, epoch))
            self._perms[epoch] = torch.randperm(self.n, generator=gen)
        return self._perms[epoch]

    def indices(self, step: int) -> torch.Tensor:
        pos = step * self.batch_size + torch.arange(self.batch_size)
        return torch.stack([self._perm(int(p) // self.n)[int(p) % self.n] for p in pos])

    def generator(self, step: int) -> torch.Generator:
        return torch.Generator().manual_seed(seed_of(self.seed, 2, step))
