"""The ``recon`` console script: one sub-command per task.

Errors in the user's input (:class:`recon.errors.InputError`, ``ValueError``,
missing files) print one line ``recon: error: ...`` and exit with status 2;
set ``RECON_DEBUG=1`` to see the traceback instead. SIGTERM is handled like
Ctrl-C (SIGINT): the work stops, unfinished outputs are removed, and the exit
status is 128 + the signal's number.
"""
from __future__ import annotations

import argparse
import importlib
import os
import signal
import sys

# Verb modules under recon.commands, in the order `recon --help` lists them.
VERBS = ("ct", "mri", "mar", "tune", "train", "bench", "data")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="recon",
        description="Reconstruct CT and MRI images from incomplete measurements with score-based priors.",
    )
    subparsers = parser.add_subparsers(dest="verb", metavar="VERB")
    subparsers.required = True
    for verb in VERBS:
        try:
            module = importlib.import_module(f"recon.commands.{verb}")
        except ModuleNotFoundError as exc:
            if exc.name != f"recon.commands.{verb}":
                raise
            continue
        module.register(subparsers)
    return parser


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised where the program is, so that it unwinds as it would for Ctrl-C."""


def _terminate(signum: int, frame) -> None:
    raise Terminated()


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    previous = signal.signal(signal.SIGTERM, _terminate)
    try:
        return _dispatch(args)
    finally:
        signal.signal(signal.SIGTERM, previous)


def _dispatch(args: argparse.Namespace) -> int:
    """Run the verb; one line and status 2 for bad input, 130 / 143 when interrupted / terminated."""
    try:
        return int(args.func(args) or 0)
    except (ValueError, FileNotFoundError, IsADirectoryError, NotADirectoryError, PermissionError) as exc:
        if os.environ.get("RECON_DEBUG"):
            raise
        message = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        if isinstance(exc, OSError) and exc.filename and str(exc.filename) not in message:
            message = f"{exc.filename}: {message}"
        print(f"recon: error: {message}", file=sys.stderr)
        return 2
    except Terminated:
        print("recon: terminated", file=sys.stderr)
        return 128 + signal.SIGTERM
    except KeyboardInterrupt:
        print("recon: interrupted", file=sys.stderr)
        return 128 + signal.SIGINT


if __name__ == "__main__":
    sys.exit(main())
