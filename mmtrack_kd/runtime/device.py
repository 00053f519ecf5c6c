"""Which device a run uses, how many CPU threads each of its processes gets, and waiting for
it: the bottom of every layer that touches torch."""

from __future__ import annotations

import os

import torch

from mmtrack_kd.errors import MmtrackError


def choose_device(requested: str | torch.device, setting: str = "train.device") -> torch.device:
    """``auto`` -> CUDA when available, else CPU; any other name as torch spells it (``cpu``,
    ``cuda``, ``cuda:1``). A CUDA device on a machine without one, or a name torch does not
    know, is an error that names ``setting`` (the recipe key or command-line option)."""
    if isinstance(requested, str) and requested == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(requested)
    except (RuntimeError, TypeError) as error:
        raise MmtrackError(f"{setting}: {requested!r} is not a device ({error})") from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise MmtrackError(f"{setting} is {requested} but no CUDA device is available")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise MmtrackError(f"{setting} is {requested} but only {torch.cuda.device_count()} "
                               "CUDA devices are visible")
    return device


def synchronize(device: torch.device | None) -> None:
    """Wait for the kernels queued on a CUDA ``device``; nothing on a CPU (or None)."""
    if device is not None and device.type == "cuda":
        torch.cuda.synchronize(device)


def available_cores() -> int:
    """CPU cores this process may run on (its affinity mask, not the machine's count)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def threads_per_process(processes: int, cores: int | None = None) -> int:
    """Intra-op threads each of ``processes`` CPU processes gets (training processes, tracking
    workers): an equal share of the cores, at least one."""
    return max(1, (available_cores() if cores is None else cores) // processes)
