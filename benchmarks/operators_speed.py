"""Forward + adjoint time of each Radon backend beside astra-toolbox's CPU projector.

Usage: python benchmarks/operators_speed.py [--sizes 128 256 512] [--repeats 3] [--device cpu]

For each image size, view count (23 and full) and batch (1 and 8) it times
one forward projection plus one back-projection of A = P(Lambda) T, per
backend, and prints a markdown table with the median time and the
throughput relative to astra's CPU projector (the ``astra`` backend).
"""
from __future__ import annotations

import argparse
import statistics
import time

import torch

from provenance import header
from operators import sparse_view_ct
from operators.sparse_matrix import estimated_nonzeros
from operators.transforms import MATRIX_BUDGET_BYTES


def time_round_trip(measurement, x: torch.Tensor, repeats: int) -> float:
    """Median seconds of A x followed by A^T y (after one warm-up call)."""
    y = measurement.A(x)
    measurement.A_adjoint(y)
    times = []
    for _ in range(repeats):
        if x.is_cuda:
            torch.cuda.synchronize()
        start = time.perf_counter()
        y = measurement.A(x)
        measurement.A_adjoint(y)
        if x.is_cuda:
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[128, 256, 512])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    device = torch.device(args.device)
    print(header(f"Radon forward + adjoint, median of {args.repeats}, device {device}") + "\n")
    print("| size | views | batch | backend | ms | images/s | vs astra CPU |")
    print("|---:|---:|---:|---|---:|---:|---:|")
    for size in args.sizes:
        for n_views in (23, size):
            for batch in (1, 8):
                x = torch.rand(batch, 1, size, size, device=device)
                results = {}
                for backend in ("astra", "matrix", "torch"):
                    m = sparse_view_ct(size, n_views, backend=backend)
                    if backend == "matrix" and 2 * 8 * estimated_nonzeros(m.transform.geometry) > MATRIX_BUDGET_BYTES:
                        continue  # the auto backend would not build this matrix either
                    if backend == "astra" and device.type != "cpu":
                        x_astra = x.cpu()
                    else:
                        x_astra = x
                    results[backend] = time_round_trip(m, x_astra if backend == "astra" else x, args.repeats)
                for backend, seconds in results.items():
                    speedup = results["astra"] / seconds
                    print(f"| {size} | {n_views} | {batch} | {backend} | {seconds * 1e3:.1f} | "
                          f"{batch / seconds:.1f} | {speedup:.1f}x |", flush=True)


if __name__ == "__main__":
    main()
