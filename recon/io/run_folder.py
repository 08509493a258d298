"""A run's output folder, written whole.

Everything a run writes goes into a hidden staging folder beside the destination
(``.NAME.staging-PID@HOST-TOKEN``, same filesystem); when all of it is written, the staging folder takes
the destination's place in one step (``renameat2(RENAME_EXCHANGE)`` where the kernel and filesystem
offer it, else two renames), so the destination holds either the earlier run or the new one, never
a mix. A killed run leaves only its staging folder, which the next run in that destination removes.

The checks of :meth:`RunFolder.open` run before any reconstruction: the destination is not a file,
holds nothing but an earlier run (the files its ``metrics.json`` lists), does not contain an input,
its parent is writable and has room for the estimated output.
"""
from __future__ import annotations

import ctypes
import json
import os
import shutil
from pathlib import Path

from recon.errors import InputError
from recon.io.atomic import TEMPORARY_PREFIX, owner_tag, remove_leftovers

RUN_MANIFEST = "metrics.json"
_RENAME_EXCHANGE = 2
_AT_FDCWD = -100


def _exchange(a: Path, b: Path) -> bool:
    """Swap two paths atomically (Linux renameat2); False where the system cannot."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        renameat2 = libc.renameat2
    except (OSError, AttributeError):
        return False
    renameat2.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    return renameat2(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE) == 0


def _earlier_run_files(destination: Path) -> set[str] | None:
    """Names of the files an earlier run wrote into ``destination`` (from its manifest); None: no run there."""
    try:
        report = json.loads((destination / RUN_MANIFEST).read_text())
        return {Path(p).name for p in report.get("files", [])} | {RUN_MANIFEST}
    except (OSError, ValueError, AttributeError, TypeError):
        return None


class RunFolder:
    """The staging folder of one run (``path``) and the destination it replaces on :meth:`commit`."""

    def __init__(self, destination: Path, path: Path):
        self.destination, self.path = destination, path

    @staticmethod
    def open(destination: Path, inputs: list[Path], estimate_bytes: int) -> "RunFolder":
        """Check the destination, remove leftovers of killed runs there, create the staging folder."""
        destination = Path(destination)
        if destination.exists() and not destination.is_dir():
            raise InputError(f"{destination}: is a file, not an output folder")
        if destination.is_dir():
            for source in inputs:
                if destination.resolve() in Path(source).resolve().parents:
                    raise InputError(f"{source}: the input lies inside the output folder {destination}, which is "
                                     "replaced as a whole; choose another output folder")
            present = {p.name for p in destination.iterdir() if not p.name.startswith(TEMPORARY_PREFIX)}
            earlier = _earlier_run_files(destination)
            if present and (earlier is None or not present <= earlier):
                strangers = sorted(present - (earlier or set()))
                raise InputError(f"{destination}: holds files that are not a recon run ({', '.join(strangers[:3])}); "
                                 "the output folder is replaced as a whole, so choose a new or empty one")
        parent = destination.absolute().parent
        try:
            parent.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise InputError(f"{destination}: cannot create its folder {parent} ({error.strerror})") from None
        _remove_leftovers(destination)
        free = shutil.disk_usage(parent).free
        if free < estimate_bytes:
            raise InputError(f"{destination}: needs about {estimate_bytes / 2**20:.0f} MB, but only "
                             f"{free / 2**20:.0f} MB are free there")
        path = parent / f".{destination.name}.staging-{owner_tag()}"
        try:
            path.mkdir()
        except OSError as error:
            raise InputError(f"{destination}: cannot write there ({error.strerror})") from None
        return RunFolder(destination, path)

    def final(self, path: Path) -> Path:
        """Where a file written into the staging folder will be once committed."""
        return self.destination / Path(path).relative_to(self.path)

    def commit(self) -> None:
        """Put the staging folder in the destination's place; the earlier run, if any, is removed."""
        if not self.destination.exists():
            os.rename(self.path, self.destination)
            return
        if not _exchange(self.path, self.destination):
            old = self.path.with_name(self.path.name.replace(".staging-", ".old-", 1))
            os.rename(self.destination, old)
            os.rename(self.path, self.destination)
            self.path = old
        shutil.rmtree(self.path, ignore_errors=True)

    def discard(self) -> None:
        """Remove the staging folder (the destination is left as it was)."""
        shutil.rmtree(self.path, ignore_errors=True)


def _remove_leftovers(destination: Path) -> None:
    """Remove the staging (and half-swapped) folders of ended runs into ``destination``."""
    for kind in ("staging", "old"):
        remove_leftovers(destination.absolute().parent, f".{destination.name}.{kind}-")
