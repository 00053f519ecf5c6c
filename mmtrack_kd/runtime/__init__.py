"""The runtime: device choice, precision, process groups, timing and the run's environment.

The bottom layer: it imports torch and the error types, nothing else of mmtrack-kd, so that
training, tracking, export, evaluation and the benchmarks share one copy of each.
"""

from mmtrack_kd.runtime.device import choose_device, synchronize
from mmtrack_kd.runtime.distributed import DistributedContext, init_distributed, shutdown_distributed
from mmtrack_kd.runtime.environment import environment, write_env
from mmtrack_kd.runtime.precision import autocast, autocast_dtype, quantize_int8
from mmtrack_kd.runtime.timing import time_call, time_calls

__all__ = [
    "DistributedContext",
    "autocast",
    "autocast_dtype",
    "choose_device",
    "environment",
    "init_distributed",
    "quantize_int8",
    "shutdown_distributed",
    "synchronize",
    "time_call",
    "time_calls",
    "write_env",
]
