"""Denoising score matching training of an NCSN++ prior (``recon train``).

Data: an HDF5 file with ``/train/images`` (N, 1, H, W) float32 in model units
and a root attribute ``manifest`` (JSON). The training split is held in
memory (:mod:`priors.training_data`).

Schedule: Adam (lr 2e-4, linear warm-up), gradient norm clipped to 1, EMA
0.999 of the weights (the EMA copy is what sampling and export use). The VE
SDE's sigma_max is the largest pairwise distance between training images
(on sampled pairs when there are many), recorded in the metadata.

Determinism and resume: the global batch of step k (image indices, flips,
times t, noise z) is drawn from generators seeded by (seed, k) and by
(seed, epoch) for the data order, so it does not depend on history. A
checkpoint holds model, EMA and optimiser tensors (safetensors) plus step,
configs and the torch/numpy/python RNG states (JSON); resuming from it
continues bit-for-bit as if never interrupted (on the same device and
thread count). Under ``torchrun`` each process takes its slice of the same
global batch, so N processes with batch B match one process with batch B.

Outputs in the run folder: ``checkpoints/step-*.{safetensors,json}``,
``train_log.csv``, ``samples/step-*.png`` and ``config.json``. With several
nodes the run folder must be on a file system they share (rank 0 writes,
every rank reads the checkpoint when resuming).
"""
from __future__ import annotations

import copy
import csv
import dataclasses
import io
import math
import os
import random
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
from torch.nn.parallel import DistributedDataParallel
from tqdm import tqdm

from priors import checkpoint as ckpt
from priors.config import PRESETS, RunConfig, network_to_dict
from priors.discretisation import DEFAULT_SNR, pc_level
from priors.distributed import DistInfo, barrier, hardware, mean_over_ranks, setup, teardown
from priors.errors import PriorError
from priors.losses import dsm_loss, sample_times
from priors.ncsnpp import NCSNpp
from priors.sde import SIGMA_MIN, T_EPS, VESDE, largest_pairwise_distance
from priors.training_data import BatchPlan, images_sha256, read_images, same_training_data, seed_of

INTENSITY = {
    "ct": "ct: x = (HU + 1000) / 4000 (recon.units.hu_to_model)",
    "mri": "mri: magnitude / 99.5th percentile of the magnitude (recon.units.robust_scale)",
}
LOG_FIELDS = ("step", "loss_per_pixel", "grad_norm", "lr", "images_per_s", "wall_time_s")


# ---------------------------------------------------------------- sampling for progress grids

ScoreFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def ema_decay(ema: float, step: int) -> float:
    """EMA decay at optimiser step ``step`` (0-based): min(ema, (1 + step) / (10 + step)).

    The warm-up keeps the randomly initialised weights from lingering in the
    average: with a constant 0.999 they still weigh 0.999^k (22 % after 1500
    steps), which shrank the EMA network's scores by a third in a short CPU
    run. Long runs reach ``ema`` after about 9000 steps.
    """
    return min(ema, (1.0 + step) / (10.0 + step))


@torch.no_grad()
def pc_sample(score_fn: ScoreFn, sde: VESDE, shape: tuple[int, ...], n_steps: int,
              generator: torch.Generator, device: torch.device | str = "cpu", snr: float = DEFAULT_SNR
              ) -> torch.Tensor:
    """Unconditional PC sampling (:func:`~priors.discretisation.pc_level`, one corrector step per level).

    The noise is drawn from ``generator`` on the CPU, then moved to ``device``.
    2 n_steps + 1 score evaluations; returns the Tweedie-denoised final state
    x + sigma_min^2 s(x, sigma_min) (shape).
    """
    def score(x: torch.Tensor, sigma: float) -> torch.Tensor:
        return score_fn(x, torch.full((shape[0],), sigma, device=device))

    def noise(like: torch.Tensor) -> torch.Tensor:
        return torch.randn(like.shape, generator=generator).to(device)

    sigmas = sde.discrete_sigmas(n_steps).tolist()
    x = sde.prior_sample(shape, generator=generator).to(device)
    for sigma, sigma_next in zip(sigmas, sigmas[1:] + [0.0]):
        x = pc_level(x, score, sigma, sigma_next, snr, 1, noise)
    return x + sigmas[-1] ** 2 * score(x, sigmas[-1])


def save_grid(images: torch.Tensor, path: str | Path) -> None:
    """Write (B, 1, H, W) images, clipped to [0, 1], as a square-ish PNG grid (atomic)."""
    from PIL import Image

    b, _, h, w = images.shape
    cols = math.ceil(math.sqrt(b))
    rows = math.ceil(b / cols)
    grid = np.zeros((rows * (h + 2), cols * (w + 2)), dtype=np.uint8)
    pix = (images[:, 0].clamp(0, 1) * 255).round().to(torch.uint8).cpu().numpy()
    for i in range(b):
        r, c = divmod(i, cols)
        grid[r * (h + 2) + 1:r * (h + 2) + 1 + h, c * (w + 2) + 1:c * (w + 2) + 1 + w] = pix[i]
    buf = io.BytesIO()
    Image.fromarray(grid).save(buf, format="PNG")
    ckpt.write_bytes_atomic(path, buf.getvalue())


# ---------------------------------------------------------------- RNG state as JSON

def rng_state() -> dict[str, Any]:
    """Global RNG states of torch (CPU and CUDA), numpy and python, JSON-ready."""
    state: dict[str, Any] = {"torch": ckpt.encode_bytes(torch.get_rng_state().numpy().tobytes())}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = [ckpt.encode_bytes(s.numpy().tobytes()) for s in torch.cuda.get_rng_state_all()]
    kind, keys, pos, has_gauss, gauss = np.random.get_state()
    state["numpy"] = [kind, keys.tolist(), int(pos), int(has_gauss), float(gauss)]
    version, internal, gauss_next = random.getstate()
    state["python"] = [version, list(internal), gauss_next]
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    """Inverse of :func:`rng_state`."""
    def as_bytes(text: str) -> torch.Tensor:
        return torch.frombuffer(bytearray(ckpt.decode_bytes(text)), dtype=torch.uint8)

    torch.set_rng_state(as_bytes(state["torch"]))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([as_bytes(s) for s in state["cuda"]])
    kind, keys, pos, has_gauss, gauss = state["numpy"]
    np.random.set_state((kind, np.asarray(keys, dtype=np.uint32), pos, has_gauss, gauss))
    version, internal, gauss_next = state["python"]
    random.setstate((version, tuple(internal), gauss_next))


# ---------------------------------------------------------------- the trainer

def _parent_record(parent, init: str | Path) -> dict[str, Any]:
    """What the metadata records of a fine-tuning run's starting prior; its own ``init``, nested: the lineage."""
    meta = parent.meta
    record = {"from": str(init), "id": meta.get("id"), "weights_sha256": meta.get("weights", {}).get("sha256"),
              "training_steps": meta.get("training", {}).get("steps"), "dataset": meta.get("dataset", {}).get("file")}
    return {**record, "init": meta["init"]} if meta.get("init") else record


class Trainer:
    """One training run in ``run_dir``; fresh or resumed from its newest checkpoint.

    Args:
        data: HDF5 training set.
        run_dir: output folder.
        config: run configuration for a fresh run (default: the ``base``
            preset); a resumed run keeps its stored configuration, and giving a
            different network here is refused.
        overrides: training fields to change (e.g. ``{"steps": 200000}``),
            applied to fresh and resumed runs alike.
        device: "cpu", "cuda" or "cuda:N".
        modality: "ct" or "mri"; default from the data manifest.
        prior_id: id recorded in the metadata; default "<modality>-<size>".
        progress: show a tqdm bar (rank 0).
        init: a trained prior (bundled name, prefix or run folder) whose weights start a fresh run
            (fine-tuning on new data); its network architecture replaces ``config``'s. Ignored when
            resuming: the checkpoint holds the weights.
    """

    def __init__(self, data: str | Path, run_dir: str | Path, config: RunConfig | None = None,
                 overrides: dict[str, Any] | None = None, device: str = "cpu", modality: str | None = None,
                 prior_id: str | None = None, progress: bool = True, init: str | Path | None = None) -> None:
        self.dist: DistInfo = setup(device)
        self.run_dir = Path(run_dir)
        self.progress = progress and self.dist.is_main
        self.data_path = Path(data)
        if not self.data_path.is_file():
            raise PriorError(f"--data {data}: no such file")
        self.images, manifest = read_images(self.data_path)
        latest = ckpt.load_latest_checkpoint(self.run_dir)
        tensors: dict[str, torch.Tensor] = {}
        from priors import load  # the prior a fine-tuning run starts from: bundled name, prefix or run folder

        parent = None if latest is not None or init is None else load(init)
        if latest is None:
            state = None
            cfg = self._fresh_config(config or PRESETS["base"], overrides)
            if parent is not None:
                cfg = dataclasses.replace(cfg, network=dataclasses.replace(
                    parent.network.config, image_size=cfg.network.image_size))
        else:
            tensors, state = latest
            stored = RunConfig.from_dict(state["config"])
            if config is not None and dataclasses.replace(
                    config.network, image_size=stored.network.image_size) != stored.network:
                raise PriorError(f"{self.run_dir}: holds a run with a different network; "
                                 "resume without --config or choose a new -o folder")
            cfg = RunConfig.from_dict({"network": state["config"]["network"],
                                       "train": {**state["config"]["train"], **(overrides or {})}})
        self.cfg = cfg
        tc = cfg.train
        if tc.batch_size % self.dist.world_size:
            raise PriorError(f"--batch-size {tc.batch_size}: must be divisible by the {self.dist.world_size} processes")
        self.hflip = tc.hflip

        if state is None:
            dataset_sha = ckpt.sha256_file(self.data_path)
            self.meta = self._prior_meta(manifest, modality, prior_id, dataset_sha)
            if parent is not None:
                self.meta["init"] = _parent_record(parent, init)
            self.step, self.wall_before = 0, 0.0
        else:
            self.meta = state["prior_meta"]
            self.meta["training"] = self._training_record(self.meta["modality"])
            digest = images_sha256(self.images)
            if not same_training_data(self.meta["dataset"], self.data_path, digest, self.images.shape[0], manifest):
                raise PriorError(f"--data {data}: differs from the dataset this run was trained on "
                                 "(its training images' sha256); choose a new -o folder")
            self.meta["dataset"]["images_sha256"] = digest  # equal to the stored one when there is one
            self.step, self.wall_before = int(state["step"]), float(state["wall_time_s"])
        if self.hflip is None:
            self.hflip = self.meta["modality"] == "mri"
        self.sde = VESDE(sigma_max=self.meta["sde"]["sigma_max"], sigma_min=self.meta["sde"]["sigma_min"])

        torch.manual_seed(tc.seed)
        self.model = NCSNpp(cfg.network).to(self.dist.device)
        self.ema = copy.deepcopy(self.model).eval().requires_grad_(False)
        self.opt = torch.optim.Adam(self.model.parameters(), lr=tc.lr)
        if state is not None:
            self._restore(tensors, state)
        elif parent is not None:
            self.model.load_state_dict(parent.network.state_dict())
            self.ema.load_state_dict(parent.network.state_dict())
        if self.dist.distributed:
            ids = [self.dist.device] if self.dist.device.type == "cuda" else None
            self.ddp: torch.nn.Module = DistributedDataParallel(self.model, device_ids=ids)
        else:
            self.ddp = self.model
        self.plan = BatchPlan(self.images.shape[0], tc.batch_size, tc.seed)
        if self.dist.is_main:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            ckpt.write_json_atomic(self.run_dir / "config.json", cfg.to_dict())
            self._trim_log()

    # -- set-up helpers

    def _fresh_config(self, config: RunConfig, overrides: dict[str, Any] | None) -> RunConfig:
        size = int(self.images.shape[-1])
        merged = config.to_dict()
        merged["network"]["image_size"] = size
        merged["train"].update(overrides or {})
        return RunConfig.from_dict(merged)

    def _prior_meta(self, manifest: dict[str, Any], modality: str | None, prior_id: str | None,
                    dataset_sha: str) -> dict[str, Any]:
        tc = self.cfg.train
        modality = modality or manifest.get("modality")
        if modality not in ("ct", "mri"):
            raise PriorError(f"{self.data_path}: modality unknown (manifest says {manifest.get('modality')!r}); "
                             "pass --modality ct or --modality mri")
        size = int(self.images.shape[-1])
        sigma_max = tc.sigma_max or largest_pairwise_distance(
            self.images, tc.max_pairs, torch.Generator().manual_seed(seed_of(tc.seed, 3)))
        return {
            "id": prior_id or f"{modality}-{size}",
            "modality": modality,
            "size": size,
            "intensity": manifest.get("intensity", INTENSITY[modality]),
            "defaults": {},  # the samplers fall back to the published values until `recon tune` fills the profile
            "defaults_source": "published values (Song et al., thesis tables 8.1-8.3), not tuned for this prior",
            "network": network_to_dict(self.cfg.network),
            "sde": {"type": "ve", "sigma_min": SIGMA_MIN, "sigma_max": float(sigma_max), "t_eps": T_EPS,
                    "sigma_max_rule": "largest pairwise distance of training images"
                    if not tc.sigma_max else "set in the training config"},
            "dataset": {"file": self.data_path.name, "sha256": dataset_sha, "images_sha256": images_sha256(self.images),
                        "n_train": int(self.images.shape[0]), "manifest": manifest},
            "training": self._training_record(modality),
        }

    def _training_record(self, modality: str) -> dict[str, Any]:
        """Hyper-parameters and hardware of the (latest leg of the) run, for the metadata."""
        tc = self.cfg.train
        return {"batch_size": tc.batch_size, "lr": tc.lr, "warmup": tc.warmup, "ema": tc.ema,
                "ema_warmup": "decay min(ema, (1 + step) / (10 + step))", "grad_clip": tc.grad_clip,
                "seed": tc.seed, "amp_bf16": tc.amp,
                "hflip": tc.hflip if tc.hflip is not None else modality == "mri",
                "hardware": hardware(self.dist.device, self.dist.world_size),
                "world_size": self.dist.world_size, "torch": torch.__version__,
                "loss": "continuous DSM, weight sigma^2, per-image sum, t ~ U(1e-5, 1)"}

    def _restore(self, tensors: dict[str, torch.Tensor], state: dict[str, Any]) -> None:
        def part(prefix: str) -> dict[str, torch.Tensor]:
            return {k[len(prefix):]: v for k, v in tensors.items() if k.startswith(prefix)}

        self.model.load_state_dict(part("model."))
        self.ema.load_state_dict(part("ema."))
        opt_state: dict[int, dict[str, Any]] = {}
        for name, value in part("opt.").items():
            idx, key = name.split(".", 1)
            opt_state.setdefault(int(idx), {})[key] = value
        groups = state["optimizer"]["param_groups"]
        self.opt.load_state_dict({"state": opt_state, "param_groups": groups})
        set_rng_state(state["rng"])

    # -- the loop

    def _lr(self, step: int) -> float:
        tc = self.cfg.train
        return tc.lr * min(1.0, (step + 1) / tc.warmup) if tc.warmup > 0 else tc.lr

    def train_step(self, step: int) -> tuple[float, float]:
        """One optimiser step on the global batch of ``step``; returns (loss per pixel, grad norm)."""
        tc, d = self.cfg.train, self.dist
        gen = self.plan.generator(step)
        idx = self.plan.indices(step)
        flips = torch.rand(tc.batch_size, generator=gen) < 0.5
        t = sample_times(tc.batch_size, generator=gen)
        z = torch.randn((tc.batch_size, *self.images.shape[1:]), generator=gen)
        local = slice(d.rank * tc.batch_size // d.world_size, (d.rank + 1) * tc.batch_size // d.world_size)
        x0 = self.images[idx[local]]
        if self.hflip:
            x0 = torch.where(flips[local].view(-1, 1, 1, 1), x0.flip(-1), x0)
        dev = d.device
        for g in self.opt.param_groups:
            g["lr"] = self._lr(step)
        self.model.train()
        with torch.autocast(dev.type, dtype=torch.bfloat16, enabled=tc.amp):
            loss = dsm_loss(self.ddp, x0.to(dev), t[local].to(dev), z[local].to(dev), self.sde)
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        grad_norm = torch.nn.utils.clip_grad_norm_(self.model.parameters(), tc.grad_clip)
        self.opt.step()
        with torch.no_grad():
            decay = ema_decay(tc.ema, step)
            for e, p in zip(self.ema.parameters(), self.model.parameters()):
                e.lerp_(p, 1.0 - decay)
        return loss.item() / x0[0].numel(), grad_norm.item()

    def run(self) -> Path | None:
        """Train up to ``config.train.steps``; returns the newest checkpoint's JSON path."""
        tc = self.cfg.train
        start, t0 = self.step, time.perf_counter()
        bar = tqdm(total=tc.steps, initial=start, disable=not self.progress, unit="step", dynamic_ncols=True)
        window_loss, window_n, window_t = 0.0, 0, time.perf_counter()
        try:
            for step in range(start, tc.steps):
                loss, grad_norm = self.train_step(step)
                self.step = step + 1
                window_loss, window_n = window_loss + loss, window_n + 1
                bar.update(1)
                if self.step % tc.log_every == 0 or self.step == tc.steps:
                    now = time.perf_counter()
                    mean_loss = mean_over_ranks(window_loss / window_n, self.dist)
                    ips = window_n * tc.batch_size / max(now - window_t, 1e-9)
                    self._log({"step": self.step, "loss_per_pixel": mean_loss, "grad_norm": grad_norm,
                               "lr": self._lr(step), "images_per_s": ips,
                               "wall_time_s": self.wall_before + now - t0})
                    bar.set_postfix(loss=f"{mean_loss:.4f}", img_s=f"{ips:.1f}")
                    window_loss, window_n, window_t = 0.0, 0, time.perf_counter()
                paused = time.perf_counter()
                if self.step % tc.ckpt_every == 0 or self.step == tc.steps:
                    self.save(self.wall_before + paused - t0)
                if tc.sample_every and (self.step % tc.sample_every == 0 or self.step == tc.steps):
                    self.sample_grid()
                window_t += time.perf_counter() - paused  # images/s counts training time only
        finally:
            bar.close()
            teardown(self.dist)
        return ckpt.latest_checkpoint(self.run_dir)

    # -- outputs

    def save(self, wall_time_s: float) -> None:
        """Checkpoint the current step (rank 0 writes; all ranks wait)."""
        if self.dist.is_main:
            tensors = {f"model.{k}": v for k, v in self.model.state_dict().items()}
            tensors.update({f"ema.{k}": v for k, v in self.ema.state_dict().items()})
            opt = self.opt.state_dict()
            for idx, entry in opt["state"].items():
                tensors.update({f"opt.{idx}.{k}": v for k, v in entry.items()})
            state = {"config": self.cfg.to_dict(), "prior_meta": self.meta, "wall_time_s": wall_time_s,
                     "rng": rng_state(), "world_size": self.dist.world_size,
                     "optimizer": {"param_groups": opt["param_groups"]}}
            ckpt.save_checkpoint(self.run_dir, self.step, tensors, state)
        barrier(self.dist)

    def sample_grid(self) -> None:
        """PNG of unconditional EMA samples at the current step (rank 0)."""
        tc = self.cfg.train
        if self.dist.is_main:
            gen = torch.Generator().manual_seed(seed_of(tc.seed, 4))
            shape = (tc.n_samples, *self.images.shape[1:])
            x = pc_sample(self.ema, self.sde, shape, tc.sample_steps, gen, self.dist.device)
            (self.run_dir / "samples").mkdir(exist_ok=True)
            save_grid(x, self.run_dir / "samples" / f"step-{self.step:08d}.png")
        barrier(self.dist)

    def _log(self, row: dict[str, float]) -> None:
        if not self.dist.is_main:
            return
        path = self.run_dir / "train_log.csv"
        new = not path.exists()
        with open(path, "a", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=LOG_FIELDS)
            if new:
                writer.writeheader()
            writer.writerow({k: f"{v:.6g}" if isinstance(v, float) else v for k, v in row.items()})

    def _trim_log(self) -> None:
        """Drop log rows past the resumed step (they belong to the lost interval)."""
        path = self.run_dir / "train_log.csv"
        if not path.exists():
            return
        with open(path, newline="") as f:
            rows = [r for r in csv.DictReader(f) if int(r["step"]) <= self.step]
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=LOG_FIELDS, lineterminator=os.linesep)
        writer.writeheader()
        writer.writerows(rows)
        ckpt.write_bytes_atomic(path, buf.getvalue().encode())


def train(data: str | Path, run_dir: str | Path, config: RunConfig | None = None,
          overrides: dict[str, Any] | None = None, device: str = "cpu", modality: str | None = None,
          prior_id: str | None = None, progress: bool = True, init: str | Path | None = None) -> Path | None:
    """Train (or resume) a prior; see :class:`Trainer`. Returns the newest checkpoint's JSON path."""
    return Trainer(data, run_dir, config, overrides, device, modality, prior_id, progress, init).run()


def export(run_dir: str | Path, prefix: str | Path, dtype: torch.dtype = torch.float32,
           prior_id: str | None = None) -> tuple[Path, Path]:
    """Write a shippable prior from a run's newest checkpoint.

    Writes ``PREFIX.safetensors`` (EMA weights in ``dtype``), ``PREFIX.json``
    (metadata) and ``PREFIX.train.csv`` (the training log).
    """
    weights, meta = ckpt.read_prior(run_dir)
    if prior_id:
        meta["id"] = prior_id
    wpath, jpath = ckpt.save_prior(prefix, weights, meta, dtype)
    log = Path(run_dir) / "train_log.csv"
    if log.exists():
        ckpt.write_bytes_atomic(jpath.with_name(jpath.stem + ".train.csv"), log.read_bytes())
    return wpath, jpath
