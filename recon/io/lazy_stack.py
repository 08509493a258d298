"""A stack of slices read from their files when indexed, so a long series is never held whole.

:class:`LazyStack` stands where a reader's (S, H, W) float32 array would: it has ``shape``, ``dtype``,
``nbytes`` (of the whole stack, were it read), ``len``, integer and slice indexing (decoding only the
files asked for) and ``numpy.asarray`` (which reads everything). Each access reads its slices anew.
"""
from __future__ import annotations

from collections.abc import Callable, Iterator

import numpy as np

CHUNK = 8  # slices read at once by :func:`chunks_of`


class LazyStack:
    """(S, H, W) float32 slices, slice ``i`` produced by ``read(i)`` -> (H, W) float32 on each access.

    Args:
        read: reads one slice (checks included: it raises :class:`recon.errors.InputError` on a bad one).
        n_slices: S.
        shape: (H, W) of every slice ``read`` returns.
    """

    dtype = np.dtype(np.float32)
    ndim = 3

    def __init__(self, read: Callable[[int], np.ndarray], n_slices: int, shape: tuple[int, int]):
        self._read, self.shape = read, (int(n_slices), int(shape[0]), int(shape[1]))

    @property
    def nbytes(self) -> int:
        return int(np.prod(self.shape)) * self.dtype.itemsize

    def __len__(self) -> int:
        return self.shape[0]

    def __getitem__(self, index: int | slice) -> np.ndarray:
        if isinstance(index, slice):
            indices = range(*index.indices(self.shape[0]))
            out = np.empty((len(indices),) + self.shape[1:], dtype=self.dtype)
            for k, i in enumerate(indices):
                out[k] = self._read(i)
            return out
        i = int(index)
        if not -self.shape[0] <= i < self.shape[0]:
            raise IndexError(f"slice {i} of a stack of {self.shape[0]}")
        return np.asarray(self._read(i % self.shape[0]), dtype=self.dtype)

    def __array__(self, dtype=None, copy=None) -> np.ndarray:
        whole = self[:]
        return whole if dtype is None else whole.astype(dtype)

    def mapped(self, function: Callable[[np.ndarray], np.ndarray], shape: tuple[int, int]) -> "LazyStack":
        """A stack whose slice ``i`` is ``function(self[i])``, each of ``shape`` (H, W)."""
        return LazyStack(lambda i: function(self._read(i)), self.shape[0], shape)


def chunks_of(stack, size: int = CHUNK) -> Iterator[np.ndarray]:
    """An (S, H, W) array's or :class:`LazyStack`'s slices in order, ``size`` at a time."""
    for start in range(0, len(stack), size):
        yield np.asarray(stack[start:start + size])
