"""The latency timer every benchmark uses: warm-up calls, then timed calls.

A call is timed from just after the device is synchronised to just after it is synchronised
again (on CUDA; a CPU needs neither), so a time is the kernels' and not only their launch.
"""

from __future__ import annotations

import time
from typing import Any, Callable

import torch

from mmtrack_kd.runtime.device import synchronize


def time_call(call: Callable[[], Any], device: torch.device | None = None) -> float:
    """Seconds one ``call()`` takes on ``device`` (synchronised before and after on CUDA)."""
    synchronize(device)
    start = time.perf_counter()
    call()
    synchronize(device)
    return time.perf_counter() - start


def time_calls(
    call: Callable[[], Any], warmup: int, repeats: int, device: torch.device | None = None
) -> list[float]:
    """Seconds of each of ``repeats`` calls of ``call()``, after ``warmup`` untimed ones
    (:func:`time_call`; on CUDA the device is synchronised around every call)."""
    times: list[float] = []
    for step in range(warmup + repeats):
        seconds = time_call(call, device)
        if step >= warmup:
            times.append(seconds)
    return times
