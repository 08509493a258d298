"""Speed of the score-network presets: network evaluations/s and training images/s.

    .venv/bin/python benchmarks/priors_speed.py [--presets small base large] [--size 128]
                                                [--device cpu] [--threads N] [--repeats 5]

Prints a markdown table. "eval ms (b=1)" is one score evaluation of one
image (the cost per step of sampling one slice); "2000 NFE" is the time of
the paper's 1000-level PC sampler (corrector + predictor) on one slice.
Evaluation runs as ``LearnedPrior.score`` does (channels_last memory
format, inference mode). Training images/s is one Adam step (forward, backward, clipping, EMA) at the
given batch size, in float32 and under bfloat16 autocast (``--amp``). Each time is the median of --repeats runs after a warm-up.
"""
from __future__ import annotations

import argparse
import copy
import statistics
import time

import torch

from priors.config import PRESETS
from priors.losses import dsm_loss, sample_times
from priors.ncsnpp import NCSNpp
from priors.sde import VESDE


def _timed(fn, repeats: int, device: torch.device) -> float:
    """Median seconds of fn() over repeats, after one warm-up call."""
    def sync() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    fn()
    sync()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        sync()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def measure(preset: str, size: int, device: torch.device, repeats: int, eval_batch: int,
            train_batch: int) -> dict[str, float]:
    """Parameters, evaluation and training speed of one preset at size x size."""
    torch.manual_seed(0)
    cfg = PRESETS[preset].network
    net = NCSNpp(type(cfg)(**{**cfg.__dict__, "image_size": size})).to(device)
    ema = copy.deepcopy(net).requires_grad_(False)
    params = sum(p.numel() for p in net.parameters())
    sde = VESDE(sigma_max=50.0)

    # Evaluation as LearnedPrior.score runs it: eval mode, channels_last, no autograd.
    evaluator = copy.deepcopy(net).eval().to(memory_format=torch.channels_last)
    row = {"params_M": params / 1e6, "MB_f32": 4 * params / 2 ** 20}
    for b in (1, eval_batch):
        x = torch.rand(b, 1, size, size, device=device).contiguous(memory_format=torch.channels_last)
        sigma = torch.full((b,), 1.0, device=device)
        with torch.inference_mode():
            row[f"eval_s_b{b}"] = _timed(lambda: evaluator(x, sigma), repeats, device)

    net.train()
    opt = torch.optim.Adam(net.parameters(), lr=2e-4)
    x0 = torch.rand(train_batch, 1, size, size, device=device)

    def step(amp: bool) -> None:
        t = sample_times(train_batch, device=device)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp):
            loss = dsm_loss(net, x0, t, torch.randn_like(x0), sde)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(net.parameters(), 1.0)
        opt.step()
        with torch.no_grad():
            for e, p in zip(ema.parameters(), net.parameters()):
                e.lerp_(p, 1e-3)

    row["train_s"] = _timed(lambda: step(False), max(2, repeats // 2), device)
    row["train_amp_s"] = _timed(lambda: step(True), max(2, repeats // 2), device)
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--presets", nargs="+", default=["small", "base", "large"], choices=sorted(PRESETS))
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--eval-batch", type=int, default=8)
    parser.add_argument("--train-batch", type=int, default=8)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    what = torch.cuda.get_device_name(device) if device.type == "cuda" else f"CPU, {torch.get_num_threads()} threads"
    print(f"size {args.size}, {what}, torch {torch.__version__}\n")
    b = args.eval_batch
    print(f"| preset | params (M) | MB (f32) | eval ms (b=1) | evals/s (b=1) | images/s (eval, b={b}) "
          f"| 2000 NFE per slice (s) | training images/s (b={args.train_batch}) | same, --amp (bf16) |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for name in args.presets:
        r = measure(name, args.size, device, args.repeats, b, args.train_batch)
        print(f"| {name} | {r['params_M']:.2f} | {r['MB_f32']:.1f} | {1e3 * r['eval_s_b1']:.1f} "
              f"| {1 / r['eval_s_b1']:.1f} | {b / r[f'eval_s_b{b}']:.1f} | {2000 * r['eval_s_b1']:.0f} "
              f"| {args.train_batch / r['train_s']:.1f} | {args.train_batch / r['train_amp_s']:.1f} |", flush=True)


if __name__ == "__main__":
    main()
