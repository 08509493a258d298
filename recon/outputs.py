"""The end of a run: the reconstruction in the input's format, the PNG panel and ``metrics.json``."""
from __future__ import annotations

import json
import platform
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from recon.io.run_folder import RUN_MANIFEST, RunFolder
from recon.resample import resize
from recon.tasks import Task
from recon.tasks.base import Scan
from recon.units import hu_to_model

NO_REFERENCE_NOTE = ("no PSNR/SSIM: there is no reference image (the input is the measured scan itself); "
                     "data_residual says how closely each result fits the measurements")


@dataclass
class RunResult:
    """A whole volume's results at the input's size, (S, 1, side, side) in model units.

    Attributes:
        output, baseline: the method's and the task's baseline's reconstructions.
        std: posterior std over samples (None: one sample or a classical method).
        keep: the pixels the metrics count (None: all).
        has_reference: the input images are the ground truth.
        residual, baseline_residual: (S,) relative data residuals ||A x - y|| / ||y|| of the two.
        nfe: network evaluations per slice and sample; params: the sampler's parameters.
        wall: seconds; size: the side reconstructed at (the prior's); side: the input's.
    """

    output: torch.Tensor
    baseline: torch.Tensor
    std: torch.Tensor | None
    keep: torch.Tensor | None
    has_reference: bool
    residual: torch.Tensor
    baseline_residual: torch.Tensor
    nfe: int
    params: dict
    wall: float
    size: int
    side: int

    @staticmethod
    def gather(parts: list[dict], wall: float, size: int, side: int) -> "RunResult":
        """Every process's batches in slice order, resized back from ``size`` to ``side``."""
        batches = sorted((b for part in parts for b in part["batches"]), key=lambda b: b["start"])
        nfe, params = next(((p["nfe"], p["params"]) for p in parts if p["params"]), (0, {}))

        def stacked(key: str) -> torch.Tensor | None:
            return torch.cat([b[key] for b in batches]) if batches[0][key] is not None else None

        output, baseline, std, keep, residual, baseline_residual = (
            stacked(k) for k in ("output", "baseline", "std", "keep", "residual", "baseline_residual"))
        if size != side:
            output, baseline = resize(output, side), resize(baseline, side)
            std = resize(std, side) if std is not None else None
            keep = resize(keep.float(), side) > 0.999 if keep is not None else None  # drop pixels near excluded ones
        return RunResult(output, baseline, std, keep, all(b["has_reference"] for b in batches), residual,
                         baseline_residual, nfe, params, wall, size, side)


def write_outputs(task: Task, source: Path, settings, scan: Scan, prior, result: RunResult,
                  reference: torch.Tensor | None, device: torch.device, shard, folder: RunFolder) -> dict:
    """Write the volume (and std map) in ``scan``'s format, the panel and metrics.json into the staging
    ``folder``; returns the report written to metrics.json (its ``files``: where they will be once committed)."""
    from recon import io
    from recon.samplers import defaults_source

    volume = scan.volume
    stem = source.name.split(".")[0] or "input"
    method = settings.method if prior is None else f"score-{result.params['sampler']}"
    measurement = scan.describe()
    written = io.write_volume(volume, result.output[:, 0].numpy(), folder.path, f"{stem}_{method}",
                              description=f"{method} reconstruction, {measurement}")
    if result.std is not None:
        offset = hu_to_model(0.0) if task.modality == "ct" else 0.0  # so the writer's HU shift leaves std in HU
        written += io.write_volume(volume, (result.std[:, 0] + offset).numpy(), folder.path,
                                   f"{stem}_{method}_std", kind="std",
                                   description=f"posterior standard deviation ({settings.samples} samples), "
                                               f"{measurement}")
    panel = _panel(task, folder.path / f"{stem}_{method}.png", written, volume, method, result, reference,
                   measurement)
    metrics = {} if reference is None else _metrics(result, reference, task)
    report = {
        "task": task.name, "input": str(source), "measurement": measurement,
        "method": method, "prior": None if prior is None else prior.meta.get("id"),
        "slices": int(result.output.shape[0]), "size": result.side,
        "resampled_to": result.size if result.size != result.side else None,
        "nfe_per_slice": result.nfe * settings.samples, "wall_time_s": round(result.wall, 3),
        "wall_time_per_slice_s": round(result.wall / result.output.shape[0], 3),
        "device": str(device), "processes": 1 if shard is None else shard.world_size, "host": platform.node(),
        "parameters": {**task.record(), **settings.record(), **result.params},
        "defaults_source": None if prior is None else defaults_source(prior, result.params["sampler"],
                                                                       task.defaults_key),
        "metrics_note": NO_REFERENCE_NOTE if reference is None else scan.metrics_note,
        "data_residual": _residuals(task, result), **metrics, "files": [str(folder.final(p)) for p in [*written, panel]],
    }
    _write_json(folder.path / RUN_MANIFEST, report)
    return report


def _panel(task: Task, path: Path, written: list[Path], volume, method: str, result: RunResult,
           reference: torch.Tensor | None, measurement: str) -> Path:
    """The middle slice: input or reference | baseline | method (| error | std), titled ``measurement``."""
    from recon.panel import save_panel

    middle = result.output.shape[0] // 2
    images = {}
    if reference is not None:
        images["reference"] = reference[middle, 0].numpy()
    elif not volume.meta.get("measured"):  # measured data have no input image to show
        images["input"] = volume.data[middle]
    images.update({task.baseline: result.baseline[middle, 0].numpy(), method: result.output[middle, 0].numpy()})
    error = None
    if reference is not None:
        error = np.abs(result.output[middle, 0].numpy() - reference[middle, 0].numpy())
        if result.keep is not None:
            error = error * result.keep[middle, 0].numpy()  # excluded pixels (metal) would swamp the colour scale
    std_scale = 4000.0 if task.modality == "ct" else volume.scale
    if path in written:  # PNG/TIFF inputs: the volume writer's own PNG preview has that name
        path = path.with_name(f"{path.stem}_panel.png")
    return save_panel(path, images, task.modality, error=error,
                      std=None if result.std is None else result.std[middle, 0].numpy() * std_scale,
                      std_unit="HU" if task.modality == "ct" else "",
                      title=f"{measurement}; slice {middle + 1}/{result.output.shape[0]}")


def _residuals(task: Task, result: RunResult) -> dict:
    """The relative data residuals ||A x - y|| / ||y|| of the method and the baseline: mean and per slice."""
    return {"note": "||A x - y|| / ||y|| on the measurements, before any post-processing (metal reinsertion)",
            "method": float(result.residual.mean()), task.baseline: float(result.baseline_residual.mean()),
            "per_slice": {"method": result.residual.tolist(), task.baseline: result.baseline_residual.tolist()}}


def _write_json(path: Path, payload: dict) -> None:
    from recon.io import atomic_path

    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(payload, indent=2, default=float))


METRICS_CHUNK = 8  # slices scored at once: bounds the metrics' float64 copies on long series


def _metrics(result: RunResult, reference: torch.Tensor, task: Task) -> dict:
    """Per-slice and mean PSNR/SSIM of the method and the baseline, on the ``keep`` pixels (None: all);
    MRI also in fastMRI's convention (fastmri_psnr, fastmri_ssim)."""
    from recon.metrics import fastmri_psnr, fastmri_ssim, psnr, ssim

    functions = {"psnr": psnr, "ssim": ssim}
    if task.modality == "mri":
        functions.update(fastmri_psnr=fastmri_psnr, fastmri_ssim=fastmri_ssim)
    per_method = {}
    for name, images in (("method", result.output), (task.baseline, result.baseline)):
        scores = {metric: [] for metric in functions}
        for start in range(0, images.shape[0], METRICS_CHUNK):  # float64 copies of a few slices at a time
            part = slice(start, start + METRICS_CHUNK)
            keep = None if result.keep is None else result.keep[part]
            for metric, fn in functions.items():
                scores[metric] += np.atleast_1d(np.asarray(fn(images[part], reference[part], mask=keep),
                                                           dtype=float)).tolist()
        per_method[name] = scores
    mean = {metric: float(np.mean(per_method["method"][metric])) for metric in functions}
    mean.update({f"{task.baseline}_{k}": float(np.mean(per_method[task.baseline][k])) for k in functions})
    return {"per_slice": per_method, "mean": mean}
