"""The ``recon`` console script: one sub-command per task.

Errors in the user's input (:class:`recon.errors.InputError`, ``ValueError``,
missing files) print one line ``recon: error: ...`` and exit with status 2;
set ``RECON_DEBUG=1`` to see the traceback instead.
"""
from __future__ import annotations

import argparse
import importlib
import os
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


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
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
    except KeyboardInterrupt:
        print("recon: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
