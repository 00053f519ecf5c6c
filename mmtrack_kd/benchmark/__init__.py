"""Benchmarks of the models: parameters and FLOPs, speed, training memory, GEMM peak.

Entry points for ``mmtrack-kd benchmark``:

* :func:`mmtrack_kd.benchmark.params.params_benchmark` -- ``--what params``
* :func:`mmtrack_kd.benchmark.speed.speed_benchmark` -- ``--what speed``
* :func:`mmtrack_kd.benchmark.report.render` / :func:`~mmtrack_kd.benchmark.report.write_json`
"""

from mmtrack_kd.benchmark.gemm import gemm_peak
from mmtrack_kd.benchmark.memory import training_peak_memory
from mmtrack_kd.benchmark.params import BenchModel, benchmark_models, params_benchmark
from mmtrack_kd.benchmark.report import render, write_json
from mmtrack_kd.benchmark.speed import LatencyStats, measure_latency_stats, speed_benchmark, tracker_fps

__all__ = [
    "BenchModel",
    "LatencyStats",
    "benchmark_models",
    "gemm_peak",
    "measure_latency_stats",
    "params_benchmark",
    "render",
    "speed_benchmark",
    "tracker_fps",
    "training_peak_memory",
    "write_json",
]
