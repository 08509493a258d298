"""The end of a run: the reconstruction in the input's format, the PNG panel and ``metrics.json``."""
from __future__ import annotations

import json
import platform
from contextlib import ExitStack
from pathlib import Path

import numpy as np
import torch

from recon.io.run_folder import RUN_MANIFEST, RunFolder
from recon.resample import resize, resize_mask
from recon.tasks import Task
from recon.tasks.base import Scan
from recon.units import HU_PER_UNIT, hu_to_model

NO_REFERENCE_NOTE = ("no PSNR/SSIM: there is no reference image (the input is the measured scan itself); "
                     "data_residual says how closely each result fits the measurements")


class RunWriter:
    """Writes a run's outputs into the staging ``folder`` batch by batch, so a long series is never held whole.

    :meth:`add` takes each batch of :func:`recon.batches.reconstruct_batches` (in any order): it resizes the
    results from the reconstruction grid ``size`` back to the scan's side, writes the slices of the volume
    (and std map) through :class:`recon.io.VolumeWriter`, scores them against the scan's reference and
    keeps the middle slice for the panel. :meth:`finish` completes the volume files, draws the panel and
    writes ``metrics.json``. Use as a context manager: leaving it with an error removes what was written.

    Args:
        method: the result's name in file names and metrics ("fista-tv", "score-dds").
        spacing: the pixel spacing record of :func:`recon.spacing.spacing_record`.
    """

    def __init__(self, task: Task, source: Path, settings, scan: Scan, prior, method: str, size: int,
                 folder: RunFolder, spacing: dict):
        self.task, self.source, self.settings, self.scan, self.prior = task, source, settings, scan, prior
        self.method, self.size, self.folder, self.spacing = method, size, folder, spacing
        self.stem = source.name.split(".")[0] or "input"
        self.middle = scan.n_slices // 2
        self.panel: dict = {}
        self.scores: dict[str, dict[str, list[tuple[int, list[float]]]]] | None = {}  # None: no reference
        self.residuals: dict[str, list[tuple[int, list[float]]]] = {"method": [], task.baseline: []}
        self.nfe, self.params, self.settled = 0, {}, []
        self._files = ExitStack()
        self._image = self._files.enter_context(self._writer(f"{self.stem}_{method}", "image"))
        self._std = None

    def _writer(self, stem: str, kind: str):
        from recon import io

        what = (f"{self.method} reconstruction" if kind == "image"
                else f"posterior standard deviation ({self.settings.samples} samples)")
        return io.VolumeWriter(self.scan.volume, self.folder.path, stem, f"{what}, {self.scan.describe()}", kind)

    def __enter__(self) -> "RunWriter":
        return self

    def __exit__(self, kind, error, trace) -> None:
        if error is not None:
            self._files.__exit__(kind, error, trace)

    def add(self, batch: dict) -> None:
        """One batch of :func:`recon.batches.reconstruct_batches`."""
        start, side = batch["start"], self.scan.side
        output, baseline, std, keep = (batch[k] for k in ("output", "baseline", "std", "keep"))
        if self.size != side:
            output, baseline = resize(output, side), resize(baseline, side)
            std = resize(std, side) if std is not None else None
            keep = resize_mask(keep, side) if keep is not None else None
        stop = start + output.shape[0]
        self._image.add(start, output[:, 0].numpy())
        if std is not None:
            if self._std is None:
                self._std = self._files.enter_context(self._writer(f"{self.stem}_{self.method}_std", "std"))
            offset = hu_to_model(0.0) if self.task.modality == "ct" else 0.0  # the writer's HU shift leaves std in HU
            self._std.add(start, (std[:, 0] + offset).numpy())
        reference = self.scan.reference_slices(start, stop) if batch["has_reference"] else None
        self._score(start, output, baseline, reference, keep)
        self.residuals["method"].append((start, batch["residual"].tolist()))
        self.residuals[self.task.baseline].append((start, batch["baseline_residual"].tolist()))
        self.settled += batch["settled"]
        if batch["params"]:  # none where every slice of the batch was settled
            self.nfe, self.params = batch["nfe"], batch["params"]
        if start <= self.middle < stop:
            k = self.middle - start
            self.panel = {"output": output[k, 0].numpy(), "baseline": baseline[k, 0].numpy(),
                          "std": None if std is None else std[k, 0].numpy(),
                          "keep": None if keep is None else keep[k, 0].numpy(),
                          "reference": None if reference is None else reference[k, 0].numpy()}

    def _score(self, start: int, output: torch.Tensor, baseline: torch.Tensor, reference: torch.Tensor | None,
               keep: torch.Tensor | None) -> None:
        """Per-slice PSNR/SSIM of the batch (MRI also in fastMRI's convention); none once a batch has no
        reference."""
        if reference is None or self.scores is None:
            self.scores = None
            return
        from recon.metrics import fastmri_psnr, fastmri_ssim, psnr, ssim

        functions = {"psnr": psnr, "ssim": ssim}
        if self.task.modality == "mri":
            functions.update(fastmri_psnr=fastmri_psnr, fastmri_ssim=fastmri_ssim)
        for name, images in (("method", output), (self.task.baseline, baseline)):
            per_metric = self.scores.setdefault(name, {metric: [] for metric in functions})
            for metric, fn in functions.items():
                values = np.atleast_1d(np.asarray(fn(images, reference, mask=keep), dtype=float)).tolist()
                per_metric[metric].append((start, values))

    def finish(self, wall: float, device: torch.device, shard) -> dict:
        """Complete the volume files, write the panel and metrics.json; returns the report (its ``files``:
        where they will be once the folder is committed)."""
        from recon.samplers import defaults_source

        self._files.close()
        written = self._image.paths + (self._std.paths if self._std is not None else [])
        measurement, task, settings, prior = self.scan.describe(), self.task, self.settings, self.prior
        panel = _panel(task, self.folder.path / f"{self.stem}_{self.method}.png", written, self.scan, self.method,
                       self.panel, measurement, self.middle)
        metrics = {} if not self.scores else _metrics(self.scores, task)
        report = {
            "task": task.name, "input": str(self.source), "measurement": measurement,
            "method": self.method, "prior": None if prior is None else prior.meta.get("id"),
            "slices": self.scan.n_slices, "size": self.scan.side,
            "resampled_to": self.size if self.size != self.scan.side else None, "pixel_spacing": self.spacing,
            "nfe_per_slice": self.nfe * settings.samples, "wall_time_s": round(wall, 3),
            "wall_time_per_slice_s": round(wall / self.scan.n_slices, 3),
            "device": str(device), "processes": 1 if shard is None else shard.world_size, "host": platform.node(),
            "parameters": {**task.record(), **settings.record(), **self.params},
            "defaults_source": None if prior is None or not self.params else defaults_source(
                prior, self.params["sampler"], task.defaults_key),
            "unchanged_slices": self.settled,
            "metrics_note": NO_REFERENCE_NOTE if not self.scores else self.scan.metrics_note,
            "data_residual": _residuals(task, {k: _in_order(v) for k, v in self.residuals.items()}), **metrics,
            "files": [str(self.folder.final(p)) for p in [*written, panel]],
        }
        _write_json(self.folder.path / RUN_MANIFEST, report)
        return report


def _in_order(parts: list[tuple[int, list[float]]]) -> list[float]:
    """Per-batch values (first slice, values) as one list in slice order."""
    return [value for _, values in sorted(parts, key=lambda part: part[0]) for value in values]


def _panel(task: Task, path: Path, written: list[Path], scan: Scan, method: str, images: dict, measurement: str,
           middle: int) -> Path:
    """The middle slice: input or reference | baseline | method (| error | std), titled ``measurement``;
    ``images`` the middle slice's arrays kept by :meth:`RunWriter.add`."""
    from recon.panel import save_panel

    volume, reference = scan.volume, images["reference"]
    shown = {}
    if reference is not None:
        shown["reference"] = reference
    elif not volume.meta.get("measured"):  # measured data have no input image to show
        shown["input"] = np.asarray(volume.data[middle])
    shown.update({task.baseline: images["baseline"], method: images["output"]})
    error = None
    if reference is not None:
        error = np.abs(images["output"] - reference)
        if images["keep"] is not None:
            error = error * images["keep"]  # excluded pixels (metal) would swamp the colour scale
    unit = (HU_PER_UNIT, "HU") if task.modality == "ct" else (volume.scale, "")  # the input's own units
    if path in written:  # PNG/TIFF inputs: the volume writer's own PNG preview has that name
        path = path.with_name(f"{path.stem}_panel.png")
    return save_panel(path, shown, task.modality, error=error, std=images["std"], unit=unit,
                      title=f"{measurement}; slice {middle + 1}/{scan.n_slices}")


def _residuals(task: Task, per_slice: dict[str, list[float]]) -> dict:
    """The relative data residuals ||A x - y|| / ||y|| of the method and the baseline: mean and per slice."""
    return {"note": "||A x - y|| / ||y|| on the measurements, before any post-processing (metal reinsertion)",
            **{name: float(np.mean(values)) for name, values in per_slice.items()}, "per_slice": per_slice}


def _write_json(path: Path, payload: dict) -> None:
    from recon.io import atomic_path

    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(payload, indent=2, default=float))


def _metrics(scores: dict[str, dict[str, list[tuple[int, list[float]]]]], task: Task) -> dict:
    """Per-slice (in slice order) and mean scores of the method and the baseline, from :meth:`RunWriter._score`'s
    per-batch values."""
    per_method = {name: {metric: _in_order(parts) for metric, parts in metrics.items()}
                  for name, metrics in scores.items()}
    mean = {metric: float(np.mean(values)) for metric, values in per_method["method"].items()}
    mean.update({f"{task.baseline}_{metric}": float(np.mean(values))
                 for metric, values in per_method[task.baseline].items()})
    return {"per_slice": per_method, "mean": mean}
