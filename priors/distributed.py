"""DistributedDataParallel set-up for ``torchrun`` (one process per device).

Launched by ``torchrun`` the environment carries RANK, WORLD_SIZE,
LOCAL_RANK, MASTER_ADDR and MASTER_PORT; without them training runs as a
single process. The backend is NCCL on CUDA and gloo on CPU. :func:`hardware`
names the compute a run used, for its metadata.
"""
from __future__ import annotations

import datetime
import os
import platform
from dataclasses import dataclass

import torch
import torch.distributed as dist

from priors.errors import PriorError

# Rank 0 writes sample grids and checkpoints while the others wait at a
# barrier; allow that to take long.
_TIMEOUT = datetime.timedelta(hours=2)


@dataclass(frozen=True)
class DistInfo:
    """Where this process sits in the job.

    Attributes:
        rank: global rank (0 writes files).
        world_size: number of processes.
        local_rank: rank on this node (selects the GPU).
        device: torch device of this process.
    """

    rank: int
    world_size: int
    local_rank: int
    device: torch.device

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def setup(device: str) -> DistInfo:
    """Initialise the process group if launched by torchrun; pick this process's device.

    Args:
        device: "cpu", "cuda" (GPU LOCAL_RANK under torchrun) or "cuda:N".
    """
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local = int(os.environ.get("LOCAL_RANK", "0"))
    if device.startswith("cuda"):
        if not torch.cuda.is_available():
            raise PriorError(f"--device {device}: CUDA is not available on this machine")
        dev = torch.device("cuda", local) if (device == "cuda" and world > 1) else torch.device(device)
        if dev.index is None:
            dev = torch.device("cuda", torch.cuda.current_device())
        torch.cuda.set_device(dev)
    elif device == "cpu":
        dev = torch.device("cpu")
    else:
        raise PriorError(f"--device {device}: expected cpu, cuda or cuda:N")
    if world > 1 and not dist.is_initialized():
        backend = "nccl" if dev.type == "cuda" else "gloo"
        kwargs = {"device_id": dev} if dev.type == "cuda" else {}
        dist.init_process_group(backend=backend, rank=rank, world_size=world, timeout=_TIMEOUT, **kwargs)
    return DistInfo(rank=rank, world_size=world, local_rank=local, device=dev)


def barrier(info: DistInfo) -> None:
    if info.distributed:
        dist.barrier()


def mean_over_ranks(value: float, info: DistInfo) -> float:
    """Average a Python float over all processes (identity for one process)."""
    if not info.distributed:
        return value
    t = torch.tensor([value], dtype=torch.float64, device=info.device)
    dist.all_reduce(t)
    return float(t) / info.world_size


def teardown(info: DistInfo) -> None:
    if info.distributed and dist.is_initialized():
        dist.destroy_process_group()


def hardware(device: torch.device, world_size: int) -> str:
    """One line naming the compute used."""
    if device.type == "cuda":
        what = torch.cuda.get_device_name(device)
    else:
        what = f"{platform.processor() or platform.machine()} CPU, {torch.get_num_threads()} threads"
    return f"{world_size} x {what}" if world_size > 1 else what
