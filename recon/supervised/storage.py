"""Files of a trained post-processing network: ``PREFIX.safetensors`` + ``PREFIX.json``.

The weights are float32 safetensors; the JSON (format
``scoreprior-recon.postprocessing``) records the task and its measurement,
the U-Net configuration, the training record and log, the data set's hash
and the sha256 of the weights file, which :func:`read_postprocessing`
checks. Nothing is unpickled: pickle-style names (``.pt``, ``.pth`` ...)
are refused, the JSON is parsed as JSON and the weights as safetensors.
(The weights' first byte is not checked for a pickle opcode: a safetensors
file starts with its header length, whose low byte may well be 0x80.)
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import json

import torch
from safetensors import SafetensorError
from safetensors.torch import load as st_load
from safetensors.torch import save as st_save

from priors import checkpoint as ckpt
from recon.errors import InputError

FORMAT = "scoreprior-recon.postprocessing"
FORMAT_VERSION = 1


def save_postprocessing(prefix: str | Path, weights: dict[str, torch.Tensor],
                        meta: dict[str, Any]) -> tuple[Path, Path]:
    """Atomically write the weights (float32) then the metadata; returns (weights, JSON) paths.

    ``meta`` gains ``format``, ``format_version`` and ``weights`` (file name,
    sha256, parameter count).
    """
    wpath, jpath = ckpt.prior_paths(prefix)
    wpath.parent.mkdir(parents=True, exist_ok=True)
    data = st_save({k: v.detach().to("cpu", torch.float32).contiguous() for k, v in weights.items()})
    ckpt.write_bytes_atomic(wpath, data)
    meta = dict(meta, format=FORMAT, format_version=FORMAT_VERSION,
                weights={"file": wpath.name, "sha256": ckpt.sha256_bytes(data),
                         "parameters": int(sum(v.numel() for v in weights.values()))})
    ckpt.write_json_atomic(jpath, meta)
    return wpath, jpath


def read_postprocessing(path: str | Path) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """(weights, metadata) of a post-processing network given as prefix, .json or .safetensors.

    Raises InputError for a missing file, another format, a pickle, or
    weights whose sha256 differs from the metadata's.
    """
    if Path(path).suffix.lower() in ckpt.PICKLE_SUFFIXES:
        ckpt.refuse_pickle(path)
    wpath, jpath = ckpt.prior_paths(path)
    if not jpath.is_file():
        raise InputError(f"{path}: no post-processing network metadata at {jpath}")
    try:
        meta = json.loads(jpath.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise InputError(f"{jpath}: not valid JSON metadata ({exc})") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise InputError(f"{jpath}: not a post-processing network metadata file")
    record = meta.get("weights", {})
    wfile = jpath.with_name(Path(record.get("file") or wpath.name).name)
    if not wfile.is_file():
        raise InputError(f"{wfile}: weights file named in the metadata is missing")
    data = wfile.read_bytes()
    if ckpt.sha256_bytes(data) != record.get("sha256"):
        raise InputError(f"{wfile}: sha256 of the weights does not match the metadata (file changed or corrupted)")
    try:
        return st_load(data), meta
    except (SafetensorError, ValueError) as exc:
        raise InputError(f"{wfile}: not a valid safetensors file ({exc})") from None
