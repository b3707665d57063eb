"""Data-parallel training through ``torchrun``: NCCL on GPUs, gloo on CPUs (what the tests use)."""

from __future__ import annotations

import datetime
import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

__all__ = ["DistInfo", "setup_distributed", "teardown_distributed"]


@dataclass
class DistInfo:
    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world > 1


def setup_distributed(device: str) -> DistInfo:
    """Join the process group ``torchrun`` describes in the environment (one process: nothing)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return DistInfo()
    rank, local = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    backend = "nccl" if device == "cuda" else "gloo"
    if not dist.is_initialized():
        # long timeout: rank 0 may fit the INR store or run a linear probe while the others wait
        dist.init_process_group(backend=backend, timeout=datetime.timedelta(hours=2))
    if device == "cuda":
        torch.cuda.set_device(local)
    return DistInfo(rank, world, local)


def teardown_distributed() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()


def mean_across(value: float, info: DistInfo, device: torch.device) -> float:
    """The mean of a number over all processes."""
    if not info.enabled:
        return value
    t = torch.tensor([value], dtype=torch.float64, device=device)
    dist.all_reduce(t)
    return float(t.item()) / info.world
