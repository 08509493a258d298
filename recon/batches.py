"""The middle of a run: each slice batch's problem, reconstructed by the score prior or a baseline."""
from __future__ import annotations

from collections.abc import Iterator

import torch

from recon.tasks import Task
from recon.tasks.base import Scan


def reconstruct_batches(task: Task, settings, prior, options, scan: Scan, size: int, starts: list[int],
                        device: torch.device, progress: bool) -> Iterator[dict]:
    """Reconstruct the batches of ``scan``'s slices beginning at ``starts`` on a ``size`` grid, one at a time.

    Args:
        settings: the run's :class:`recon.pipeline.RunSettings` (method, samples, batch size, seed).
        prior, options: the score prior and its resolved sampler options (None for a classical method).
    Yields:
        per batch, as it is done: {"start", "output", "baseline", "std", "keep" (CPU tensors on the ``size``
        grid), "settled" (indices of the slices with nothing to reconstruct, :attr:`Problem.settled`, which
        skip the method), "has_reference" (the problem was simulated from the input), "residual" and
        "baseline_residual" (B,) (relative data residuals ||A x - y|| / ||y||), "nfe" (network evaluations
        per slice and sample), "params" (the sampler's parameters)}.
    """
    from tqdm import tqdm

    from recon.methods import BASELINES

    n_slices = sum(min(settings.batch_size, scan.n_slices - start) for start in starts)
    slices = tqdm(total=n_slices, desc="slices", unit="slice", dynamic_ncols=True,
                  disable=not progress or len(starts) < 2)  # a volume of several batches: progress over slices
    for start in starts:
        stop = min(start + settings.batch_size, scan.n_slices)
        problem = scan.problem(start, stop, size, settings.seed + start, device)
        raw_baseline = BASELINES[task.baseline](problem.measurement, problem.y)
        baseline = problem.finished(raw_baseline)
        index, part = problem.unsettled()
        # Settled slices (nothing to reconstruct) are what the task's finish makes of anything: their input.
        output, std, nfe, params = baseline, None, 0, {}
        if index is None or len(index):
            if prior is None:
                result = BASELINES[settings.method](part.measurement, part.y)
            else:
                from recon.samplers import reconstruct

                seed = settings.seed + start if index is None else [settings.seed + start + int(i) for i in index]
                run = reconstruct(prior, part.measurement, part.y, options, n_samples=settings.samples, seed=seed,
                                  progress=progress, holdout=part.holdout)
                result, nfe, params = run.mean, run.nfe, run.params
                std = None if run.std is None else _scatter(torch.zeros_like(output), index, run.std)
            output = _scatter(output, index, result)
        settled = [] if index is None else (start + torch.nonzero(problem.settled.cpu()).flatten()).tolist()
        yield {"start": start, "output": problem.finished(output).cpu(), "settled": settled,
               "baseline": baseline.cpu(),
               "std": None if std is None else std.cpu(),
               "keep": None if problem.keep is None else problem.keep.cpu(),
               "has_reference": problem.reference is not None, "residual": relative_residual(problem, output).cpu(),
               "baseline_residual": relative_residual(problem, raw_baseline).cpu(), "nfe": nfe, "params": params}
        slices.update(stop - start)
    slices.close()


def _scatter(full: torch.Tensor, index: torch.Tensor | None, part: torch.Tensor) -> torch.Tensor:
    """``full`` (B, ...) with rows ``index`` replaced by ``part`` (all of them when ``index`` is None)."""
    if index is None:
        return part
    full = full.clone()
    full[index.to(full.device)] = part.to(full.dtype)
    return full


def relative_residual(problem, images: torch.Tensor) -> torch.Tensor:
    """||A x - y|| / ||y|| per image of ``images`` (B, 1, N, N), before the task's post-processing."""
    y = problem.y
    dims = tuple(range(1, y.dim()))
    misfit = torch.linalg.vector_norm(problem.measurement.A(images) - y, dim=dims)
    return misfit / torch.linalg.vector_norm(y, dim=dims).clamp_min(torch.finfo(misfit.dtype).tiny)
