"""Process-group set-up for ``torchrun`` (single- and multi-node) and rank helpers."""

from __future__ import annotations

import datetime
import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

from mmtrack_kd.runtime.device import choose_device


@dataclass(frozen=True)
class DistributedContext:
    """Where this process sits: rank, world size, local rank and its device."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")

    @property
    def is_main(self) -> bool:
        """True on rank 0, the only rank that logs and saves."""
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        """True when running under a process group of more than one process."""
        return self.world_size > 1


def launched_by_torchrun() -> bool:
    """True inside a process that torchrun (ours or the user's) started: it sets ``WORLD_SIZE``."""
    return "WORLD_SIZE" in os.environ


def is_main_process() -> bool:
    """True in torchrun's rank 0, and in a process that torchrun did not start."""
    return int(os.environ.get("RANK", "0")) == 0


def init_distributed(requested_device: str = "auto", timeout_s: float = 1800) -> DistributedContext:
    """Join the process group that ``torchrun`` describes in the environment (``env://``):
    nccl when each process has a GPU, gloo on CPUs. Without ``WORLD_SIZE`` > 1 it does nothing."""
    device = choose_device(requested_device)
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size <= 1:
        return DistributedContext(device=device)
    rank = int(os.environ["RANK"])
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if device.type == "cuda":
        torch.cuda.set_device(local_rank)
        device = torch.device("cuda", local_rank)
    backend = "nccl" if device.type == "cuda" else "gloo"
    if not dist.is_initialized():
        dist.init_process_group(
            backend=backend,
            init_method="env://",
            timeout=datetime.timedelta(seconds=timeout_s),
        )
    return DistributedContext(rank=rank, world_size=world_size, local_rank=local_rank, device=device)


def shutdown_distributed() -> None:
    """Leave the process group if one was joined."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()
