"""A GEMM peak measured on the device of the run: the yardstick for achieved GFLOP/s.

The peak is the best rate of square float32 (or the given dtype) matrix products of a few sizes,
measured in the same process and on the same device as the model timings, so "achieved fraction"
compares like with like (same threads, same clocks, same BLAS).
"""

from __future__ import annotations

import torch

from mmtrack_kd.runtime.timing import time_calls


def gemm_peak(
    device: str | torch.device = "cpu",
    dtype: torch.dtype = torch.float32,
    sizes: tuple[int, ...] | None = None,
    repeats: int = 5,
    warmup: int = 2,
) -> dict:
    """Best GFLOP/s of ``n x n @ n x n`` products (``2 n^3`` FLOPs each) over ``sizes``.

    Returns ``{"gflops": best rate, "size": n of the best, "dtype": ..., "rates": {n: rate}}``;
    each size's rate is taken from the median time of ``repeats`` products after ``warmup``.
    """
    device = torch.device(device)
    if sizes is None:
        sizes = (1024, 2048) if device.type == "cpu" else (4096, 8192)
    rates: dict[int, float] = {}
    for n in sizes:
        a = torch.randn(n, n, device=device, dtype=dtype)
        b = torch.randn(n, n, device=device, dtype=dtype)
        times = sorted(time_calls(lambda: torch.mm(a, b), warmup, repeats, device))
        median = times[len(times) // 2]
        rates[n] = 2.0 * n**3 / median / 1e9
    best = max(rates, key=rates.get)
    return {"gflops": rates[best], "size": best, "dtype": str(dtype).replace("torch.", ""), "rates": rates}
