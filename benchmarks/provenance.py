"""The line a benchmark table starts with: what was measured, the commit, the machine, threads and torch."""
from __future__ import annotations

import platform
import subprocess

import torch


def header(what: str) -> str:
    """``what; commit abc1234; x86_64, 2 torch threads, torch 2.13.0+cpu`` for the top of a table."""
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    return (f"{what}; commit {commit}; {platform.processor() or platform.machine()}, "
            f"{torch.get_num_threads()} torch threads, torch {torch.__version__}")
