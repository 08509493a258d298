"""Atomic writes: every output goes to a temporary file in its own folder and is
renamed onto its final name only when all outputs of the call were written, so
an error leaves no partial output behind. Inputs are never overwritten.

Temporary names carry the writing process (``PID@HOST``), so the leftovers of a
killed process are recognised and removed by the next write into that folder.
"""
from __future__ import annotations

import os
import re
import secrets
import shutil
import socket
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from recon.errors import InputError


TEMPORARY_PREFIX = ".tmp-"
HOST = re.sub(r"[^A-Za-z0-9.]", "_", socket.gethostname()) or "host"


def owner_tag() -> str:
    """``PID@HOST-TOKEN``: names a temporary entry after the process that writes it."""
    return f"{os.getpid()}@{HOST}-{secrets.token_hex(4)}"


def temporary_name(path: Path) -> Path:
    """A hidden sibling of ``path`` that keeps its suffixes (``.nii.gz``, ``.npy``, ...),
    so that writers choosing a format by extension still do the right thing."""
    return path.parent / f"{TEMPORARY_PREFIX}{owner_tag()}-{path.name}"


def _process_ended(tag: str) -> bool:
    """Whether the process named by ``tag`` (``PID@HOST-...``) ran on this host and has ended."""
    pid, _, rest = tag.partition("@")
    if not pid.isdigit() or not rest.startswith(f"{HOST}-"):
        return False  # another host's (or an unrecognised) entry: leave it
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


def remove_leftovers(folder: Path, prefix: str) -> None:
    """Remove the entries of ``folder`` named ``prefix`` + ``PID@HOST-...`` whose process has ended."""
    if not folder.is_dir():
        return
    for leftover in folder.iterdir():
        if leftover.name.startswith(prefix) and _process_ended(leftover.name[len(prefix):]):
            if leftover.is_dir() and not leftover.is_symlink():
                shutil.rmtree(leftover, ignore_errors=True)
            else:
                leftover.unlink(missing_ok=True)


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
    for folder in {final.parent for final in finals}:
        folder.mkdir(parents=True, exist_ok=True)
        remove_leftovers(folder, TEMPORARY_PREFIX)
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
