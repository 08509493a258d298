"""Supervised post-processing networks across measurement settings (the generalisation test).

Usage:
    python benchmarks/supervised.py --model priors/bundled/supervised/fbpconvnet-ct-23 \\
        --data /work/data/ct128.h5 [--views 10 20 23 40] [--n 32]
    python benchmarks/supervised.py --model priors/bundled/supervised/unet-mri-8 \\
        --data /work/data/mri128.h5 [--accels 24 8 4] [--n 32]

Each ``--model`` (one or more, all of one modality) is a network trained by
``python -m recon.supervised.train`` at one view count or acceleration; it
is applied, unchanged, to the direct reconstruction (FBP / zero-filled) of
noiseless measurements at every setting listed, on the first ``--n`` slices
of ``/{split}/images`` (default the test split). The direct reconstruction
itself is listed as a reference row.

PSNR / SSIM (:mod:`recon.metrics`): data range 1 on model units, whole
image, reconstructions clipped to [0, 1]; MRI adds the fastMRI convention
(data range = reference max). Prints markdown tables of mean ± std over
slices, headed by the command, commit, machine and threads.
"""
from __future__ import annotations

import argparse
import platform
import subprocess
import sys
import time
from pathlib import Path

import h5py
import numpy as np
import torch

from recon.metrics import fastmri_psnr, fastmri_ssim, psnr, ssim
from recon.supervised.baseline import load_postprocessing
from recon.supervised.tasks import direct_reconstruction, task_of, training_task

CT_VIEWS = (10, 20, 23, 40, 64)
MRI_ACCELS = (24, 8, 4)


def load(path: Path, split: str, n: int) -> torch.Tensor:
    """First ``n`` images of ``/{split}/images`` as (n, 1, H, W) float32."""
    with h5py.File(path, "r") as f:
        return torch.from_numpy(np.asarray(f[f"{split}/images"][:n], dtype=np.float32))


def summary(values: list[float]) -> str:
    v = np.asarray(values, dtype=float)
    return f"{v.mean():.2f} ± {v.std():.2f}" if v.mean() > 1.5 else f"{v.mean():.3f} ± {v.std():.3f}"


def evaluate(images: torch.Tensor, task: str, settings: list[float], models: dict, device: torch.device,
             batch: int) -> list[dict]:
    """One row per (setting, method): metric lists and seconds per slice."""
    metrics = {"psnr": psnr, "ssim": ssim}
    if task == "mri":
        metrics.update(fastmri_psnr=fastmri_psnr, fastmri_ssim=fastmri_ssim)
    direct = "FBP" if task == "ct-sparse-view" else "zero-filled"
    rows = []
    for setting in settings:
        key = {"n_views": int(setting)} if task == "ct-sparse-view" else {"accel": setting}
        setting_task = training_task(task, images.shape[-1], **key)
        m = setting_task.measurement(images.shape[-1])
        methods = {direct: lambda y: direct_reconstruction(m, y)}
        methods.update({name: (lambda y, net=net: net(m, y)) for name, net in models.items()})
        scores = {name: {k: [] for k in metrics} for name in methods}
        seconds = {name: 0.0 for name in methods}
        for start in range(0, images.shape[0], batch):
            x = images[start:start + batch].to(device)
            y = m.A(x)
            for name, method in methods.items():
                t0 = time.perf_counter()
                out = method(y)
                seconds[name] += time.perf_counter() - t0
                for k, fn in metrics.items():
                    scores[name][k] += list(fn(out, x))
        rows += [{"setting": setting_task.label, "method": name, **scores[name], "seconds": seconds[name] / images.shape[0]}
                 for name in methods]
    return rows


def markdown(rows: list[dict], fastmri: bool) -> str:
    head = "| setting | method | PSNR | SSIM |" + (" PSNR (fastMRI) | SSIM (fastMRI) |" if fastmri else "")
    head += " s / slice |"
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    for r in rows:
        cells = [r["setting"], r["method"], summary(r["psnr"]), summary(r["ssim"])]
        if fastmri:
            cells += [summary(r["fastmri_psnr"]), summary(r["fastmri_ssim"])]
        cells.append(f"{r['seconds']:.4f}")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _commit() -> str:
    out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                         cwd=Path(__file__).resolve().parent)
    return out.stdout.strip() or "unknown"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", nargs="+", required=True, help="trained network(s): prefix, .json or bundled name")
    parser.add_argument("--data", type=Path, required=True, help="HDF5 with /{split}/images in model units")
    parser.add_argument("--split", default="test")
    parser.add_argument("--n", type=int, default=32, help="first n slices")
    parser.add_argument("--views", type=int, nargs="+", default=CT_VIEWS, help="CT view counts")
    parser.add_argument("--accels", type=float, nargs="+", default=MRI_ACCELS, help="MRI accelerations")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args(argv)
    device = torch.device(args.device)
    nets = [load_postprocessing(name) for name in args.model]
    tasks = {net.meta["task"] for net in nets}
    if len(tasks) != 1:
        raise SystemExit(f"--model: networks of one task only, got {sorted(tasks)}")
    task = tasks.pop()
    models = {}
    for net in nets:
        at = task_of(net.meta["measurement"])[0].label
        models[f"{net.meta['id']} (trained at {at}, {net.meta['training']['steps']} steps)"] = net
    images = load(args.data, args.split, args.n)
    settings = list(args.views) if task == "ct-sparse-view" else list(args.accels)
    print(f"# supervised post-processing, {args.data.name} {args.split} split, first {images.shape[0]} slices")
    print(f"command: python {' '.join([sys.argv[0], *(argv if argv is not None else sys.argv[1:])])}")
    print(f"commit {_commit()}; {platform.node()}, {platform.processor() or platform.machine()}, device {device}, "
          f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    print("PSNR / SSIM: data range 1 on model units, reconstruction clipped to [0, 1], whole image; "
          "mean ± std over slices; noiseless measurements.\n")
    print(markdown(evaluate(images, task, settings, models, device, args.batch), fastmri=task == "mri"))


if __name__ == "__main__":
    main()
