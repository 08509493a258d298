"""A lazy torch Dataset over one split of a slice dataset file (see :mod:`recon.data.build`)."""
from __future__ import annotations

import json
import os
from pathlib import Path

import h5py
import numpy as np
import torch
from torch.utils.data import Dataset

from recon.errors import InputError


class SliceDataset(Dataset):
    """Items are (1, H, W) float32 tensors in model units from ``/{split}/images``.

    The HDF5 file is opened lazily, once per process (so DataLoader workers
    each get their own handle); only the requested slice is read.
    """

    def __init__(self, path: Path | str, split: str = "train") -> None:
        self.path, self.split = Path(path), split
        if not self.path.exists():
            raise InputError(f"{self.path}: no such file")
        try:
            with h5py.File(self.path, "r") as handle:
                if f"{split}/images" not in handle:
                    raise InputError(f"{self.path}: no '{split}/images' dataset (splits: {', '.join(handle)})")
                self.shape = tuple(handle[f"{split}/images"].shape)
                self.manifest = json.loads(handle.attrs.get("manifest", "{}"))
        except OSError:
            raise InputError(f"{self.path}: not an HDF5 file") from None
        self._handle: h5py.File | None = None
        self._pid: int | None = None

    def __len__(self) -> int:
        return int(self.shape[0])

    def _images(self) -> h5py.Dataset:
        if self._handle is None or self._pid != os.getpid():
            self._handle = h5py.File(self.path, "r")
            self._pid = os.getpid()
        return self._handle[f"{self.split}/images"]

    def __getitem__(self, index: int) -> torch.Tensor:
        if not -len(self) <= index < len(self):
            raise IndexError(f"index {index} out of range for {len(self)} slices")
        return torch.from_numpy(np.asarray(self._images()[index], dtype=np.float32))

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        state["_handle"], state["_pid"] = None, None
        return state
