"""Safe storage of score models: safetensors for tensors, JSON for the rest.

Nothing here unpickles. Two kinds of files:

- A *prior*: ``NAME.safetensors`` (network weights, the EMA copy) plus
  ``NAME.json`` (architecture, SDE, modality, intensity convention, sampler
  defaults, dataset manifest and hash, training record, and the sha256 of
  the weights file). :func:`read_prior` verifies the hash.
- A *training checkpoint* in ``RUN/checkpoints/``: ``step-XXXXXXXX.safetensors``
  (model, EMA and optimiser tensors) plus ``step-XXXXXXXX.json`` (step,
  configs, optimiser scalars, RNG states as base64/lists, the weights hash).
  The JSON is written after the tensors, both atomically, so the newest JSON
  always describes a complete checkpoint.

Pickle-based files (``.pt``, ``.pth``, ``.ckpt``, ``.pkl``, ``.bin``, or any
file starting with a pickle or zip header) are refused with a clear message.
"""
from __future__ import annotations

import base64
import hashlib
import json
import os
import tempfile
import warnings
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load as st_load
from safetensors.torch import save as st_save

from priors.errors import PriorError

PRIOR_FORMAT = "scoreprior-recon.prior"
CHECKPOINT_FORMAT = "scoreprior-recon.checkpoint"
FORMAT_VERSION = 1
PICKLE_SUFFIXES = (".pt", ".pth", ".ckpt", ".pkl", ".pickle", ".bin", ".tar")
_PICKLE_MAGIC = (b"\x80", b"PK\x03\x04")  # pickle protocol >= 2; torch.save zip archive
_UMASK = os.umask(0o022)
os.umask(_UMASK)


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def sha256_file(path: str | Path, chunk: int = 1 << 24) -> str:
    """Hex sha256 of a file, read in chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def write_bytes_atomic(path: str | Path, data: bytes) -> None:
    """Write to a temporary file in the same folder, fsync, then os.replace."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp makes 0600; give the usual permissions
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_json_atomic(path: str | Path, data: Any) -> None:
    write_bytes_atomic(path, (json.dumps(data, indent=1, sort_keys=True) + "\n").encode())


def refuse_pickle(path: str | Path) -> None:
    """Raise PriorError if ``path`` looks like a pickle-based checkpoint."""
    path = Path(path)
    head = b""
    if path.is_file():
        with open(path, "rb") as f:
            head = f.read(9)
    # safetensors: an 8-byte little-endian header length, then the JSON header's "{"; the
    # length's first byte may equal pickle's 0x80 opcode, so a safetensors layout is not a pickle.
    safetensors_layout = head[8:9] == b"{"
    pickle_magic = any(head.startswith(m) for m in _PICKLE_MAGIC) and not safetensors_layout
    if path.suffix.lower() in PICKLE_SUFFIXES or pickle_magic:
        raise PriorError(f"{path}: refusing a pickle-based checkpoint (unpickling can run arbitrary code); "
                         "use safetensors weights with their JSON metadata")


def _read_json(path: Path) -> dict[str, Any]:
    refuse_pickle(path)
    try:
        data = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise PriorError(f"{path}: not valid JSON metadata ({exc})") from None
    if not isinstance(data, dict):
        raise PriorError(f"{path}: metadata must be a JSON object")
    return data


def _read_tensors(path: Path, sha256: str | None) -> dict[str, torch.Tensor]:
    """Read a safetensors file after checking its sha256 against the metadata."""
    refuse_pickle(path)
    if not path.is_file():
        raise PriorError(f"{path}: weights file named in the metadata is missing")
    data = path.read_bytes()
    if not sha256:
        raise PriorError(f"{path}: the metadata records no sha256 for the weights; refusing unverified weights")
    if sha256_bytes(data) != sha256:
        raise PriorError(f"{path}: sha256 of the weights does not match the metadata (file changed or corrupted)")
    try:
        return st_load(data)
    except (SafetensorError, ValueError) as exc:
        raise PriorError(f"{path}: not a valid safetensors file ({exc})") from None


def _weights_record(meta: dict[str, Any], where: Path) -> dict[str, Any]:
    """The metadata's ``weights`` entry ({"file": str, "sha256": str, ...}), its types checked."""
    record = meta.get("weights", {})
    if not isinstance(record, dict) or not all(isinstance(record.get(k, ""), str) for k in ("file", "sha256")):
        raise PriorError(f"{where}: 'weights' must be an object with the weights' \"file\" and \"sha256\" as text")
    return record


def _tensors_bytes(tensors: dict[str, torch.Tensor]) -> bytes:
    return st_save({k: v.detach().to("cpu").contiguous() for k, v in tensors.items()})


# ---------------------------------------------------------------- priors

def prior_paths(prefix: str | Path) -> tuple[Path, Path]:
    """(weights, metadata) paths of a prior given as a prefix, .json or .safetensors path."""
    p = Path(prefix)
    if p.suffix in (".json", ".safetensors"):
        p = p.with_suffix("")
    return p.with_name(p.name + ".safetensors"), p.with_name(p.name + ".json")


def save_prior(prefix: str | Path, weights: dict[str, torch.Tensor], meta: dict[str, Any],
               dtype: torch.dtype = torch.float32) -> tuple[Path, Path]:
    """Write ``PREFIX.safetensors`` and ``PREFIX.json``.

    Kernels and matrices (tensors with >= 2 dimensions) are stored in
    ``dtype``; vectors (biases, norms, the Fourier frequencies, whose large
    values float16 would round badly) stay float32. ``meta`` gains
    ``format``, ``format_version`` and ``weights`` (file name, sha256, dtype,
    parameter count). Returns the two paths.
    """
    wpath, jpath = prior_paths(prefix)
    wpath.parent.mkdir(parents=True, exist_ok=True)
    cast = {k: v.to(dtype) if v.is_floating_point() and v.dim() >= 2 else v.float() if v.is_floating_point() else v
            for k, v in weights.items()}
    data = _tensors_bytes(cast)
    write_bytes_atomic(wpath, data)
    meta = dict(meta, format=PRIOR_FORMAT, format_version=FORMAT_VERSION,
                weights={"file": wpath.name, "sha256": sha256_bytes(data), "dtype": str(dtype).replace("torch.", ""),
                         "parameters": int(sum(v.numel() for v in weights.values()))})
    write_json_atomic(jpath, meta)
    return wpath, jpath


def read_prior(path: str | Path) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Weights (float32) and metadata of a prior file or of a training run folder.

    ``path`` is a prior prefix, its ``.json`` or ``.safetensors``, or a run
    folder (then the EMA weights of its newest checkpoint are used).
    """
    p = Path(path)
    if p.is_dir():
        return _read_run(p)
    refuse_pickle(p)
    wpath, jpath = prior_paths(p)
    if not jpath.is_file():
        raise PriorError(f"{path}: no prior metadata at {jpath}")
    meta = _read_json(jpath)
    if meta.get("format") != PRIOR_FORMAT:
        raise PriorError(f"{jpath}: not a prior metadata file (format {meta.get('format')!r})")
    record = _weights_record(meta, jpath)
    wfile = jpath.with_name(Path(record.get("file") or wpath.name).name)
    tensors = _read_tensors(wfile, record.get("sha256"))
    return {k: v.float() if v.is_floating_point() else v for k, v in tensors.items()}, meta


def _read_run(run_dir: Path) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    loaded = load_latest_checkpoint(run_dir)
    if loaded is None:
        pickles = sorted(q for q in run_dir.rglob("*") if q.suffix.lower() in PICKLE_SUFFIXES)
        if pickles:
            refuse_pickle(pickles[0])
        raise PriorError(f"{run_dir}: no checkpoint found (expected checkpoints/step-*.json)")
    tensors, state = loaded
    weights = {k[len("ema."):]: v for k, v in tensors.items() if k.startswith("ema.")}
    return weights, prior_meta_from_checkpoint(state)


def prior_meta_from_checkpoint(state: dict[str, Any]) -> dict[str, Any]:
    """The prior metadata a training checkpoint describes (its EMA weights)."""
    meta = dict(state["prior_meta"])
    meta["training"] = dict(meta.get("training", {}), steps=state["step"], wall_time_s=state["wall_time_s"])
    return meta


# ---------------------------------------------------------------- training checkpoints

def encode_bytes(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def decode_bytes(text: str) -> bytes:
    return base64.b64decode(text.encode("ascii"))


def checkpoint_dir(run_dir: str | Path) -> Path:
    return Path(run_dir) / "checkpoints"


def save_checkpoint(run_dir: str | Path, step: int, tensors: dict[str, torch.Tensor], state: dict[str, Any],
                    keep: int = 2) -> Path:
    """Atomically write checkpoint ``step`` and delete all but the newest ``keep``.

    Args:
        tensors: name -> tensor (model, EMA, optimiser moments).
        state: JSON-serialisable rest; ``step`` and the weights hash are added.
    Returns:
        The checkpoint's JSON path.
    """
    cdir = checkpoint_dir(run_dir)
    cdir.mkdir(parents=True, exist_ok=True)
    stem = f"step-{step:08d}"
    data = _tensors_bytes(tensors)
    write_bytes_atomic(cdir / f"{stem}.safetensors", data)
    state = dict(state, format=CHECKPOINT_FORMAT, format_version=FORMAT_VERSION, step=step,
                 weights={"file": f"{stem}.safetensors", "sha256": sha256_bytes(data)})
    write_json_atomic(cdir / f"{stem}.json", state)
    for old in sorted(cdir.glob("step-*.json"))[:-keep]:
        old.with_suffix(".safetensors").unlink(missing_ok=True)
        old.unlink(missing_ok=True)
    return cdir / f"{stem}.json"


def latest_checkpoint(run_dir: str | Path) -> Path | None:
    """JSON path of the newest complete checkpoint of a run, or None."""
    found = sorted(checkpoint_dir(run_dir).glob("step-*.json"))
    return found[-1] if found else None


def load_latest_checkpoint(run_dir: str | Path) -> tuple[dict[str, torch.Tensor], dict[str, Any]] | None:
    """(tensors, state) of the newest checkpoint of a run that loads intact, or None when there is none.

    A newer checkpoint that is corrupted (bad JSON, missing or changed weights) is skipped with a
    warning naming it, so a damaged last write does not block resuming from the one before; when
    no checkpoint loads, the newest one's error is raised.
    """
    found = sorted(checkpoint_dir(run_dir).glob("step-*.json"), reverse=True)
    first_error: PriorError | None = None
    for path in found:
        try:
            loaded = load_checkpoint(path)
        except PriorError as error:
            first_error = first_error or error
            continue
        if first_error is not None:
            warnings.warn(f"{first_error}; resuming from the intact {path.name} instead", stacklevel=2)
        return loaded
    if first_error is not None:
        raise first_error
    return None


def load_checkpoint(json_path: str | Path) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """(tensors, state) of a training checkpoint, hash-verified."""
    jpath = Path(json_path)
    state = _read_json(jpath)
    if state.get("format") != CHECKPOINT_FORMAT:
        raise PriorError(f"{jpath}: not a training checkpoint (format {state.get('format')!r})")
    weights = _weights_record(state, jpath)
    wfile = Path(weights.get("file") or jpath.with_suffix(".safetensors").name).name
    return _read_tensors(jpath.with_name(wfile), weights.get("sha256")), state
