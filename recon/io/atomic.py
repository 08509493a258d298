"""Atomic writes: every output goes to a temporary file in its own folder and is
renamed onto its final name only when all outputs of the call were written, so
an error leaves no partial output behind. Inputs are never overwritten."""
from __future__ import annotations

import os
import secrets
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from recon.errors import InputError


def temporary_name(path: Path) -> Path:
    """A hidden sibling of ``path`` that keeps its suffixes (``.nii.gz``, ``.npy``, ...),
    so that writers choosing a format by extension still do the right thing."""
    return path.parent / f".tmp-{secrets.token_hex(4)}-{path.name}"


def refuse_overwriting_inputs(targets: Iterable[Path], inputs: Iterable[Path]) -> None:
    """Raise :class:`InputError` when an output path is one of the input files."""
    protected = {Path(p).resolve() for p in inputs}
    for target in targets:
        if Path(target).resolve() in protected:
            raise InputError(f"{target}: refusing to overwrite the input file; choose another output folder")


@contextmanager
def atomic_outputs(paths: Sequence[Path], inputs: Iterable[Path] = ()) -> Iterator[list[Path]]:
    """Yield one temporary path per final path; write to those.

    On normal exit every temporary file is renamed onto its final path
    (``os.replace``); on an exception all of them are deleted and the
    exception propagates. ``inputs`` are paths that must never be replaced.
    """
    finals = [Path(p) for p in paths]
    refuse_overwriting_inputs(finals, inputs)
    for final in finals:
        final.parent.mkdir(parents=True, exist_ok=True)
    temps = [temporary_name(p) for p in finals]
    try:
        yield temps
        missing = [t for t in temps if not t.exists()]
        if missing:
            raise RuntimeError(f"internal error: {missing[0]} was not written")
    except BaseException:
        for temp in temps:
            temp.unlink(missing_ok=True)
        raise
    for temp, final in zip(temps, finals):
        os.replace(temp, final)


@contextmanager
def atomic_path(path: Path | str, inputs: Iterable[Path] = ()) -> Iterator[Path]:
    """Single-file form of :func:`atomic_outputs`: yields the temporary path."""
    with atomic_outputs([Path(path)], inputs) as temps:
        yield temps[0]
