"""Supervised training of a post-processing U-Net (FBPConvNet / MRI U-Net).

    python -m recon.supervised.train --data set.h5 --task ct-sparse-view --views 23 \\
        -o priors/bundled/supervised/fbpconvnet-ct-23 --steps 2000
    python -m recon.supervised.train --data set.h5 --task mri --accel 8 \\
        -o priors/bundled/supervised/unet-mri-8 --steps 2000

Data: ``/train/images`` (N, 1, H, H) float32 in model units, held in
memory. Each step draws a batch of training images, simulates their
noiseless measurements (:mod:`recon.supervised.tasks`) and reconstructs
them directly (FBP or zero-filled) on the fly; the network
(:class:`recon.supervised.unet.ResidualUNet`) learns to map that input to
the image under the mean squared error per pixel. Adam, learning rate on a
cosine from ``lr`` down to ``lr / 20`` over ``steps``, gradient norm clipped
to 1. MRI images are flipped left-right at random (off for CT, as for the
score priors).

Determinism and resume: the batch of step k (indices, flips) comes from
generators seeded by (seed, k) and (seed, epoch) (:class:`priors.training_data.BatchPlan`),
so it does not depend on history. Every ``ckpt_every`` steps the run folder
gets a checkpoint (:func:`priors.checkpoint.save_checkpoint`: model and Adam
tensors as safetensors, step, settings and training log as JSON); a run
started again with the same settings resumes from the newest one, losing at
most one interval, and ends with the same weights as an uninterrupted run
(same device and thread count). ``steps`` may be raised on resume.

Outputs once ``steps`` are done: ``PREFIX.safetensors``, ``PREFIX.json``
(:mod:`recon.supervised.storage`) and ``PREFIX.train.csv``.
"""
from __future__ import annotations

import argparse
import csv
import io
import math
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from tqdm import tqdm

from priors import checkpoint as ckpt
from priors.distributed import hardware
from priors.training_data import BatchPlan, read_images
from recon.errors import InputError
from recon.supervised.storage import save_postprocessing
from recon.supervised.tasks import TASKS, network_input, task_record, training_task
from recon.supervised.unet import ResidualUNet, UNetConfig

LOG_FIELDS = ("step", "loss_per_pixel", "lr", "images_per_s", "wall_time_s")
LR_FLOOR = 0.05  # the cosine ends at this fraction of the initial learning rate
KIND = {"ct-sparse-view": "fbpconvnet", "mri": "unet-mri"}


@dataclass(frozen=True)
class TrainSettings:
    """Optimisation settings of :func:`train_postprocessing`."""

    steps: int = 2000
    batch_size: int = 8
    lr: float = 1e-3
    seed: int = 0
    ckpt_every: int = 100
    log_every: int = 10
    grad_clip: float = 1.0

    def __post_init__(self) -> None:
        for name in ("steps", "batch_size", "ckpt_every", "log_every"):
            if getattr(self, name) < 1:
                raise InputError(f"--{name.replace('_', '-')} must be >= 1, got {getattr(self, name)}")
        if not self.lr > 0:
            raise InputError(f"--lr must be > 0, got {self.lr}")

    def learning_rate(self, step: int) -> float:
        """Cosine decay from ``lr`` (step 0) to ``LR_FLOOR * lr`` (step ``steps``)."""
        cosine = 0.5 * (1 + math.cos(math.pi * min(step, self.steps) / self.steps))
        return self.lr * (LR_FLOOR + (1 - LR_FLOOR) * cosine)


def optimise(model: torch.nn.Module, opt: torch.optim.Optimizer, inputs: torch.Tensor, target: torch.Tensor,
             lr: float, grad_clip: float) -> float:
    """One Adam step on the mean squared error of ``model(inputs)`` against ``target``; returns the loss."""
    for group in opt.param_groups:
        group["lr"] = lr
    model.train()
    loss = torch.mean((model(inputs) - target) ** 2)
    opt.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
    opt.step()
    return loss.item()


def _device(name: str) -> torch.device:
    try:
        device = torch.device(name)
    except RuntimeError:
        raise InputError(f"--device {name!r}: not a torch device (use cpu, cuda or cuda:N)") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise InputError(f"--device {name}: CUDA is not available on this machine")
    return device


def _tensors(model: torch.nn.Module, opt: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor], list]:
    """Model and Adam tensors for a checkpoint, and the JSON-ready parameter groups."""
    tensors = {f"model.{k}": v for k, v in model.state_dict().items()}
    state = opt.state_dict()
    for idx, entry in state["state"].items():
        tensors.update({f"opt.{idx}.{k}": v for k, v in entry.items()})
    return tensors, state["param_groups"]


def _restore(model: torch.nn.Module, opt: torch.optim.Optimizer, tensors: dict[str, torch.Tensor],
             param_groups: list) -> None:
    model.load_state_dict({k[len("model."):]: v for k, v in tensors.items() if k.startswith("model.")})
    opt_state: dict[int, dict[str, torch.Tensor]] = {}
    for name, value in tensors.items():
        if name.startswith("opt."):
            idx, key = name[len("opt."):].split(".", 1)
            opt_state.setdefault(int(idx), {})[key] = value
    opt.load_state_dict({"state": opt_state, "param_groups": param_groups})


def _csv(rows: list[dict[str, Any]]) -> bytes:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=LOG_FIELDS, lineterminator="\n")
    writer.writeheader()
    writer.writerows({k: f"{v:.6g}" if isinstance(v, float) else v for k, v in row.items()} for row in rows)
    return buf.getvalue().encode()


def _changed(stored: dict[str, Any], now: dict[str, Any], prefix: str = "") -> list[str]:
    """Dotted keys whose values differ between two nested settings dicts."""
    keys = sorted(set(stored) | set(now))
    out = []
    for key in keys:
        a, b = stored.get(key), now.get(key)
        if isinstance(a, dict) and isinstance(b, dict):
            out += _changed(a, b, f"{prefix}{key}.")
        elif a != b:
            out.append(prefix + key)
    return out


@dataclass
class _Run:
    """A training run's state: the network, its optimiser, how far it got, its log and settings."""

    model: ResidualUNet
    opt: torch.optim.Optimizer
    setup: dict[str, Any]
    run_dir: Path
    step: int = 0
    wall_before: float = 0.0
    log: list = field(default_factory=list)

    def save(self, wall: float) -> None:
        """A checkpoint of the run at its current step, and its CSV log."""
        tensors, groups = _tensors(self.model, self.opt)
        ckpt.save_checkpoint(self.run_dir, self.step, tensors, {"setup": self.setup, "log": self.log,
                                                                "wall_time_s": wall,
                                                                "optimizer": {"param_groups": groups}})
        ckpt.write_bytes_atomic(self.run_dir / "train_log.csv", _csv(self.log))


def _open_run(setup: dict[str, Any], network: UNetConfig, settings: TrainSettings, run_dir: Path,
              dev: torch.device) -> _Run:
    """A fresh run, or the newest checkpoint in ``run_dir`` when it holds one with the same settings."""
    torch.manual_seed(settings.seed)
    model = ResidualUNet(network).to(dev)
    run = _Run(model, torch.optim.Adam(model.parameters(), lr=settings.lr), setup, run_dir)
    latest = ckpt.load_latest_checkpoint(run_dir)
    if latest is not None:
        tensors, state = latest
        changed = _changed(state.get("setup", {}), setup)
        if changed:
            raise InputError(f"{run_dir}: holds a run with other settings ({', '.join(changed[:4])}); "
                             "use the same settings to resume, or another --run-dir")
        _restore(model, run.opt, {k: v.to(dev) for k, v in tensors.items()}, state["optimizer"]["param_groups"])
        run.step, run.wall_before, run.log = int(state["step"]), float(state["wall_time_s"]), state["log"]
    return run


def _train(run: _Run, images: torch.Tensor, measurement, settings: TrainSettings, hflip: bool,
           dev: torch.device, progress: bool) -> float:
    """Optimise until ``settings.steps``, logging and checkpointing; returns the run's wall time in seconds."""
    plan = BatchPlan(int(images.shape[0]), settings.batch_size, settings.seed)
    t0 = time.perf_counter()
    window_loss, window_n, window_t = 0.0, 0, t0
    bar = tqdm(total=settings.steps, initial=min(run.step, settings.steps), disable=not progress, unit="step",
               dynamic_ncols=True)
    try:
        while run.step < settings.steps:
            gen = plan.generator(run.step)
            flips = torch.rand(settings.batch_size, generator=gen) < 0.5
            x = images[plan.indices(run.step)]
            if hflip:
                x = torch.where(flips.view(-1, 1, 1, 1), x.flip(-1), x)
            x = x.to(dev)
            with torch.no_grad():
                inputs = network_input(measurement, x)
            lr = settings.learning_rate(run.step)
            loss = optimise(run.model, run.opt, inputs, x, lr, settings.grad_clip)
            run.step += 1
            window_loss, window_n = window_loss + loss, window_n + 1
            bar.update(1)
            if run.step % settings.log_every == 0 or run.step == settings.steps:
                now = time.perf_counter()
                ips = window_n * settings.batch_size / max(now - window_t, 1e-9)
                run.log.append({"step": run.step, "loss_per_pixel": window_loss / window_n, "lr": lr,
                                "images_per_s": ips, "wall_time_s": run.wall_before + now - t0})
                bar.set_postfix(loss=f"{window_loss / window_n:.3g}", img_s=f"{ips:.1f}")
                window_loss, window_n, window_t = 0.0, 0, now
            if run.step % settings.ckpt_every == 0 or run.step == settings.steps:
                paused = time.perf_counter()
                run.save(run.wall_before + paused - t0)
                window_t += time.perf_counter() - paused  # images/s counts training time only
    finally:
        bar.close()
    return run.wall_before + time.perf_counter() - t0


def train_postprocessing(data_h5: str | Path, task: str, prefix: str | Path, *, n_views: int | None = None,
                         accel: float | None = None, settings: TrainSettings = TrainSettings(),
                         network: UNetConfig = UNetConfig(), run_dir: str | Path | None = None,
                         device: str = "cpu", threads: int | None = None,
                         progress: bool = True) -> tuple[Path, Path]:
    """Train (or resume) a post-processing network and write ``PREFIX.{safetensors,json,train.csv}``.

    Args:
        data_h5: HDF5 file with ``/train/images`` (N, 1, H, H) in model units.
        task: ``"ct-sparse-view"`` (give ``n_views``) or ``"mri"`` (give ``accel``).
        prefix: output prefix, e.g. ``priors/bundled/supervised/fbpconvnet-ct-23``.
        settings: optimisation settings (steps, batch size, lr, seed, intervals).
        network: U-Net architecture.
        run_dir: checkpoint folder (default ``runs/supervised/<prefix name>``).
        device: "cpu", "cuda" or "cuda:N".
        threads: torch CPU threads for the run (restored afterwards); default unchanged.
        progress: show a tqdm bar.
    Returns:
        (weights path, metadata path).
    """
    if threads is not None and threads < 1:
        raise InputError(f"--threads must be >= 1, got {threads}")
    dev = _device(device)
    data_h5 = Path(data_h5)
    if not data_h5.is_file():
        raise InputError(f"--data {data_h5}: no such file")
    images, manifest = read_images(data_h5, "train")
    size = int(images.shape[-1])
    task_setting = training_task(task, size, n_views, accel)
    modality = task_setting.modality
    if manifest.get("modality", modality) != modality:
        raise InputError(f"--data {data_h5}: holds {manifest['modality']} images, but --task {task} needs {modality}")
    run_dir = Path(run_dir) if run_dir is not None else Path("runs") / "supervised" / Path(prefix).name
    hflip = modality == "mri"
    setup = {"task": task, "measurement": task_record(task_setting, size), "network": network.to_dict(),
             "batch_size": settings.batch_size, "lr": settings.lr, "seed": settings.seed,
             "grad_clip": settings.grad_clip, "hflip": hflip,
             "dataset": {"file": data_h5.name, "sha256": ckpt.sha256_file(data_h5), "n_train": int(images.shape[0]),
                         "manifest": manifest}}
    old_threads = torch.get_num_threads()
    if threads is not None:
        torch.set_num_threads(threads)
    try:
        run = _open_run(setup, network, settings, run_dir, dev)
        wall = _train(run, images, task_setting.measurement(size), settings, hflip, dev, progress)
        rates = [row["images_per_s"] for row in run.log]
        meta = {
            "id": Path(prefix).name, "kind": KIND[task], "task": task, "modality": modality, "size": size,
            "intensity": manifest.get("intensity", modality), "measurement": setup["measurement"],
            "network": {"type": "residual-unet", **network.to_dict()},
            "training": {"steps": run.step, "batch_size": settings.batch_size, "lr": settings.lr,
                         "lr_schedule": f"cosine to {LR_FLOOR} lr", "optimizer": "adam",
                         "grad_clip": settings.grad_clip, "loss": "mean squared error per pixel",
                         "seed": settings.seed, "hflip": hflip, "wall_time_s": wall,
                         "images_per_s": sum(rates) / len(rates) if rates else None,
                         "hardware": hardware(dev, 1), "torch": torch.__version__},
            "dataset": setup["dataset"], "log": run.log,
        }
        wpath, jpath = save_postprocessing(prefix, run.model.state_dict(), meta)
        ckpt.write_bytes_atomic(jpath.with_name(jpath.stem + ".train.csv"), _csv(run.log))
        return wpath, jpath
    finally:
        torch.set_num_threads(old_threads)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m recon.supervised.train", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    d, u = TrainSettings(), UNetConfig()
    p.add_argument("--data", type=Path, required=True, help="HDF5 with /train/images (N, 1, H, H) in model units")
    p.add_argument("--task", required=True, choices=TASKS)
    p.add_argument("--views", type=int, help="ct-sparse-view: measured views (e.g. 23)")
    p.add_argument("--accel", type=float, help="mri: acceleration (e.g. 8)")
    p.add_argument("-o", "--output", type=Path, required=True, help="output prefix (.safetensors/.json/.train.csv)")
    p.add_argument("--run-dir", type=Path, help="checkpoint folder (default runs/supervised/<output name>)")
    p.add_argument("--steps", type=int, default=d.steps, help=f"optimiser steps (default {d.steps})")
    p.add_argument("--batch-size", type=int, default=d.batch_size, help=f"default {d.batch_size}")
    p.add_argument("--lr", type=float, default=d.lr, help=f"initial Adam learning rate (default {d.lr})")
    p.add_argument("--seed", type=int, default=d.seed, help="seed of initialisation and data order")
    p.add_argument("--ckpt-every", type=int, default=d.ckpt_every, help=f"default {d.ckpt_every}")
    p.add_argument("--log-every", type=int, default=d.log_every, help=f"default {d.log_every}")
    p.add_argument("--base-channels", type=int, default=u.base_channels, help=f"default {u.base_channels}")
    p.add_argument("--depth", type=int, default=u.depth, help=f"down-samplings (default {u.depth})")
    p.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N (default cpu)")
    p.add_argument("--threads", type=int, help="torch CPU threads (default: torch's choice)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if args.task == "ct-sparse-view" and args.accel is not None or args.task == "mri" and args.views is not None:
            raise InputError(f"--task {args.task}: takes {'--views' if args.task != 'mri' else '--accel'}, "
                             f"not {'--accel' if args.task != 'mri' else '--views'}")
        try:
            network = UNetConfig(args.base_channels, args.depth)
        except ValueError as exc:
            raise InputError(f"--base-channels/--depth: {exc}") from None
        settings = TrainSettings(args.steps, args.batch_size, args.lr, args.seed, args.ckpt_every, args.log_every)
        wpath, jpath = train_postprocessing(args.data, args.task, args.output, n_views=args.views, accel=args.accel,
                                            settings=settings, network=network, run_dir=args.run_dir,
                                            device=args.device, threads=args.threads, progress=not args.no_progress)
    except (ValueError, OSError) as exc:
        print(f"{build_parser().prog}: error: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}",
              file=sys.stderr)
        return 2
    print(f"wrote {wpath} and {jpath}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
