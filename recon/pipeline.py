"""One reconstruction run: file -> model units -> task -> problems -> method -> model units -> files.

:func:`run` reads the input, asks the task (:mod:`recon.tasks`) for each slice batch's problem,
reconstructs it with the score prior (options resolved once, :func:`recon.samplers.resolve_options`)
or a classical method, and writes the reconstruction in the input's format, a PNG panel and
``metrics.json``. It sees no command-line arguments: a :class:`RunSettings` says how to run.

Launched by ``torchrun`` (WORLD_SIZE > 1), the slice batches are shared out round-robin between the
processes (gloo on CPU, NCCL on GPU ``cuda:LOCAL_RANK``), gathered back in slice order on rank 0, and
only rank 0 writes outputs. Each batch is seeded by the settings' seed plus the index of its first
slice, so the result does not depend on the number of processes.
"""
from __future__ import annotations

import dataclasses
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from recon.errors import InputError
from recon.io.reading import ReadOptions
from recon.tasks import Task



@dataclass(frozen=True)
class RunSettings:
    """How to run a reconstruction (everything but the task and the input).

    Attributes:
        output: output folder.
        method: "score" (the learned prior) or a classical baseline.
        sampler: score sampler (None: the default one).
        options: sampler options the user set (steps, snr, lam, eta, ...); None values are not set.
        samples: posterior samples K (K > 1 also writes a std map).
        batch_size: slices reconstructed together.
        resample: resize slices to the prior's size and reconstruct there (False: on the slice's own grid,
            the prior sampling on its grid through A R, :func:`recon.samplers.reconstruct`).
        reading: how the input becomes slices (:class:`recon.io.ReadOptions`: non-square slices padded by default,
            --force-modality, --volume, --rescale).
        seed: seed of simulated noise and of the sampler (plus the index of the batch's first slice).
        prior: bundled prior name or checkpoint (None: the modality's).
        device: "cpu", "cuda", "cuda:1" ... (None: cuda when available).
        quiet: no progress bars.
    """

    output: Path = Path("out")
    method: str = "score"
    sampler: str | None = None
    options: dict[str, Any] = field(default_factory=dict)
    samples: int = 1
    batch_size: int = 8
    resample: bool = False
    reading: ReadOptions = ReadOptions(square="pad")
    seed: int = 0
    prior: str | None = None
    device: str | None = None
    quiet: bool = False

    def __post_init__(self) -> None:
        from recon.samplers import check_option_values

        if self.samples < 1:
            raise InputError(f"--samples must be >= 1, got {self.samples}")
        if self.batch_size < 1:
            raise InputError(f"--batch-size must be >= 1, got {self.batch_size}")
        check_option_values(self.options)

    def record(self) -> dict[str, Any]:
        """The settings as JSON values."""
        values = dataclasses.asdict(self)
        values["output"] = str(self.output)
        values.update(values.pop("options"))
        reading = values.pop("reading")
        reading["force_modality"] = reading.pop("force")
        values.update(reading)
        return values


def device_from(name: str | None) -> torch.device:
    """The torch device for ``--device`` (None: cuda when available)."""
    if name is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise InputError(f"--device {name}: not a device name (cpu, cuda, cuda:1 ...)") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise InputError(f"--device {name}: no CUDA GPU is available")
    return device


def load_prior(task: Task, name: str | None, device: torch.device):
    """The prior for ``task`` (None: the modality's bundled one), checked against the task's modality."""
    import priors

    prior = priors.load(name or f"{task.modality}-128", device)
    if prior.meta.get("modality") not in (task.modality, "synthetic"):
        raise InputError(f"prior {prior.meta.get('id')} was trained on {prior.meta.get('modality')} images, "
                         f"not {task.modality}")
    return prior


def size_mismatch(prior, side: int, source: str) -> str | None:
    """The problem with slices of side ``side`` for ``prior`` (None: they fit)."""
    size = prior.meta["size"]
    if size == side:
        return None
    return f"{source}: slices are {side}x{side} but prior {prior.meta['id']} expects {size}x{size}"


def run(task: Task, source: Path, settings: RunSettings) -> int:
    """Reconstruct every slice of ``source`` for ``task``; returns an exit code."""
    device = device_from(settings.device)
    shard = None
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        from priors import distributed

        shard = distributed.setup(str(device))
        device = shard.device
    try:
        return _run(task, source, settings, device, shard)
    finally:
        if shard is not None:
            distributed.teardown(shard)


def _run(task: Task, source: Path, settings: RunSettings, device: torch.device, shard) -> int:
    settings.reading.check(source)  # measured k-space and sinograms are read without read_volume
    scan = task.read(source, settings.reading)
    prior, options, size = None, None, scan.side
    if settings.method == "score":
        from recon.samplers import DEFAULT_SAMPLER, resolve_options

        prior = load_prior(task, settings.prior, device)
        options = resolve_options(prior, settings.sampler or DEFAULT_SAMPLER, task.defaults_key, **settings.options)
        if settings.resample:
            size = prior.meta["size"]

    from recon.spacing import spacing_record

    spacing = spacing_record(prior, scan.volume, scan.side)
    if spacing["warning"] and (shard is None or shard.is_main):
        print(f"warning: {spacing['warning']}", file=sys.stderr)
    folder = _open_output(settings, scan.volume, shard)
    try:
        report = _reconstruct(task, source, settings, (scan, size, spacing), (prior, options), device, shard, folder)
        if folder is not None:
            folder.commit()
    except BaseException:
        if folder is not None:
            folder.discard()
        raise
    if report is not None:
        summary = ", ".join(f"{k} {v:.2f}" for k, v in report.get("mean", {}).items())
        kept = len(report["unchanged_slices"])
        note = f" ({kept} of {report['slices']} slices had nothing to reconstruct and were kept)" if kept else ""
        print(f"wrote {len(report['files']) + 1} files to {settings.output}{note}"
              + (f"; {summary}" if summary else ""))
    return 0


def _open_output(settings: RunSettings, volume, shard):
    """The staging folder of this run's output (None on the ranks that write nothing), checked before any work."""
    from recon.io.run_folder import RunFolder

    if shard is not None and not shard.is_main:
        return None
    copies = 2 if settings.samples > 1 else 1  # the image and its std map
    estimate = volume.data.nbytes * copies * 2 + (8 << 20)  # twice: the earlier run stays until the swap
    return RunFolder.open(settings.output, volume.meta.get("files", [volume.source]), estimate)


def _reconstruct(task: Task, source: Path, settings: RunSettings, data: tuple, model: tuple, device: torch.device,
                 shard, folder) -> dict | None:
    """Reconstruct ``data`` = (scan, reconstruction size, pixel spacing record) with ``model`` = (prior, options)
    and write the outputs into ``folder`` batch by batch; returns the report (None on ranks other than 0)."""
    from recon.batches import reconstruct_batches
    from recon.outputs import RunWriter

    scan, size, spacing = data
    prior, options = model
    started = time.perf_counter()
    starts = list(range(0, scan.n_slices, settings.batch_size))
    if shard is not None:
        starts = starts[shard.rank::shard.world_size]
    show_progress = not settings.quiet and (shard is None or shard.is_main)
    batches = reconstruct_batches(task, settings, prior, options, scan, size, starts, device, show_progress)
    if shard is not None:  # every process's batches, gathered on rank 0
        batches = _gather(list(batches), shard)
        if batches is None:
            return None  # not rank 0: rank 0 writes everything
    method = settings.method if prior is None else f"score-{options.name}"
    with RunWriter(task, source, settings, scan, prior, method, size, folder, spacing) as writer:
        for batch in batches:
            writer.add(batch)
        return writer.finish(time.perf_counter() - started, device, shard)


def _gather(local: list[dict], shard) -> list[dict] | None:
    """Every process's batches on rank 0, in slice order (None on the other ranks)."""
    import torch.distributed as dist

    parts = [None] * shard.world_size if shard.is_main else None
    dist.gather_object(local, parts, dst=0)
    if parts is None:
        return None
    return sorted((batch for part in parts for batch in part), key=lambda batch: batch["start"])
