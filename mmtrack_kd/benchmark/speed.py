"""``--what speed``: latency, tracker FPS, GFLOP/s against a GEMM peak, memory, prompter, bf16.

What is timed:

* **model-only latency**: one ``model(templates, searches)`` forward at batch 1 on dummy inputs
  of the recipe's sizes (eval, no gradient), ``warmup`` untimed calls first (at least 5), then
  ``repeats`` timed calls; on CUDA the device is synchronised before and after each call. The
  median and the spread (min, 25th / 75th percentile, max, standard deviation) are reported.
  FLOPs per frame are counted on the same forward (:func:`mmtrack_kd.models.profile.count_flops`),
  so ``achieved GFLOP/s = FLOPs / median latency``, compared with the GEMM peak measured in the
  same run on the same device (:func:`mmtrack_kd.benchmark.gemm.gemm_peak`).
* **end-to-end tracker FPS**: :class:`mmtrack_kd.tracking.tracker.Tracker` on frames held in
  memory (random ``H x W x C`` float32 arrays, one per modality, made before timing): crop,
  normalisation, model, Hann window and box mapping are inside the timed span, reading from
  disk is not. The first ``warmup`` tracked frames are not timed.
"""

from __future__ import annotations

import itertools
import logging
import math
import platform
import time
from dataclasses import asdict, dataclass
from typing import Any, Callable

import numpy as np
import torch
from torch import nn

from mmtrack_kd.benchmark.gemm import gemm_peak
from mmtrack_kd.benchmark.memory import training_peak_memory
from mmtrack_kd.benchmark.params import MODEL_NAMES, BenchModel, benchmark_models, model_size, ratios, recipe_sizes
from mmtrack_kd.data.crop import CropSettings
from mmtrack_kd.models.profile import dummy_inputs
from mmtrack_kd.recipe import Recipe
from mmtrack_kd.runtime.device import choose_device
from mmtrack_kd.runtime.precision import autocast, quantize_int8
from mmtrack_kd.runtime.timing import time_call, time_calls
from mmtrack_kd.tracking.tracker import Tracker, TrackerSettings

log = logging.getLogger(__name__)

MIN_WARMUP = 5


@dataclass(frozen=True)
class LatencyStats:
    """Seconds per call: median and spread over ``runs`` timed calls."""

    median: float
    mean: float
    std: float
    min: float
    p25: float
    p75: float
    max: float
    runs: int
    warmup: int

    @classmethod
    def of(cls, times: list[float], warmup: int) -> "LatencyStats":
        values = np.asarray(times, dtype=np.float64)
        return cls(
            median=float(np.median(values)),
            mean=float(values.mean()),
            std=float(values.std(ddof=1)) if len(values) > 1 else 0.0,
            min=float(values.min()),
            p25=float(np.percentile(values, 25)),
            p75=float(np.percentile(values, 75)),
            max=float(values.max()),
            runs=len(values),
            warmup=warmup,
        )

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def measure_latency_stats(
    model: nn.Module,
    device: str | torch.device = "cpu",
    warmup: int = MIN_WARMUP,
    repeats: int = 30,
    keep_ratio: float | None = None,
    autocast_dtype: torch.dtype | None = None,
    forward: Callable[..., Any] | None = None,
) -> LatencyStats:
    """Model-only latency of one batch-1 forward (see the module docstring).

    ``forward`` replaces ``model.__call__`` (a ``torch.compile``-d model); ``autocast_dtype``
    (``torch.bfloat16``) runs the forward under autocast.
    """
    device = torch.device(device)
    model = model.to(device).eval()
    forward = forward if forward is not None else model
    templates, searches = dummy_inputs(model, 1, device)
    with torch.inference_mode(), autocast(device, autocast_dtype):
        times = time_calls(lambda: forward(templates, searches, keep_ratio=keep_ratio), warmup, repeats, device)
    return LatencyStats.of(times, warmup)


def synthetic_frames(adapters, count: int, height: int, width: int, seed: int = 0) -> list[list[np.ndarray]]:
    """``count`` frames of random ``H x W x C`` float32 values in [0, 1], one array per modality."""
    rng = np.random.default_rng(seed)
    return [
        [rng.random((height, width, adapter.channels), dtype=np.float32) for adapter in adapters]
        for _ in range(count)
    ]


def tracker_fps(
    model: nn.Module,
    adapters,
    device: str | torch.device = "cpu",
    frames: int = 30,
    warmup: int = MIN_WARMUP,
    frame_size: tuple[int, int] = (480, 640),
    crop: CropSettings | None = None,
    keep_ratio: float | None = None,
    precision: str = "fp32",
    compile: str | None = None,
) -> dict[str, Any]:
    """End-to-end tracker speed on frames in memory: ``{"fps", "frame": LatencyStats dict, ...}``.

    The tracker is initialised on frame 0 with a box in the image centre, then tracks
    ``warmup + frames`` frames (cycling through a pool of at most 8 distinct frames); the last
    ``frames`` calls of :meth:`Tracker.track` are timed (CUDA synchronised after each).
    ``compile``: the tracker's torch.compile backend; its compilation happens in the warm-up.
    """
    device = torch.device(device)
    tracker = Tracker(model, adapters, crop, device,
                      TrackerSettings(keep_ratio=keep_ratio, precision=precision, compile=compile))
    height, width = frame_size
    pool = synthetic_frames(adapters, min(8, frames + warmup + 1), height, width)
    box = [width * 0.4, height * 0.4, width * 0.2, height * 0.2]
    tracker.initialize(pool[0], box)
    later_frames = (pool[step % len(pool)] for step in itertools.count(1))  # frame 0 set the template
    times = time_calls(lambda: tracker.track(next(later_frames)), warmup, frames, device)
    stats = LatencyStats.of(times, warmup)
    return {
        "fps": len(times) / sum(times),
        "median_fps": 1.0 / stats.median,
        "frame": stats.as_dict(),
        "frame_size": [height, width],
    }


def box_deviation(model: nn.Module, device: torch.device, dtype: torch.dtype, batch: int = 8, seed: int = 0) -> dict:
    """Boxes under ``dtype`` autocast against float32 on the same inputs (batch ``batch``).

    Deviations are in pixels of the search crop (normalised ``cx, cy, w, h`` times the search
    size). With random weights the score map is nearly flat, so a peak may move to another cell:
    ``peak_agreement`` is the share of inputs whose arg-max cell is unchanged, and the deviations
    are given over all inputs and over those that agree.
    """
    torch.manual_seed(seed)
    templates, searches = dummy_inputs(model, batch, device)
    size = float(model.config["search_size"])
    with torch.inference_mode():
        ref = model(templates, searches)
        with autocast(device, dtype):
            low = model(templates, searches)
    same = ref.score_map.flatten(1).argmax(1) == low.score_map.flatten(1).argmax(1)
    diff = (low.boxes.float() - ref.boxes.float()).abs() * size
    agreeing = diff[same]
    return {
        "dtype": str(dtype).replace("torch.", ""),
        "batch": batch,
        "peak_agreement": float(same.float().mean()),
        "max_px": float(diff.max()),
        "mean_px": float(diff.mean()),
        "max_px_same_peak": float(agreeing.max()) if agreeing.numel() else math.nan,
        "mean_px_same_peak": float(agreeing.mean()) if agreeing.numel() else math.nan,
        "score_map_max_abs": float((low.score_map.float() - ref.score_map.float()).abs().max()),
    }


def _try(what: str, function: Callable[[], Any]) -> Any:
    try:
        return function()
    except Exception as error:  # a backend that cannot compile or run a dtype: report, go on
        log.warning("%s failed: %s", what, error)
        return {"error": f"{type(error).__name__}: {error}"}


def speed_benchmark(
    recipe: Recipe,
    device: str = "cpu",
    *,
    registry: Any = None,
    names: tuple[str, ...] = MODEL_NAMES,
    warmup: int = MIN_WARMUP,
    repeats: int = 30,
    tracker_frames: int = 30,
    frame_size: tuple[int, int] = (480, 640),
    gemm_sizes: tuple[int, ...] | None = None,
    memory: bool = True,
    memory_batch_size: int | None = None,
    prompter: bool = True,
    compile: str | None = None,
    bf16: bool = False,
    int8: bool = False,
) -> dict[str, Any]:
    """Everything ``mmtrack-kd benchmark --what speed`` reports, as a JSON-able dict.

    Args:
        recipe: sizes, modality, prompters, candidate elimination and batch sizes.
        device: ``"cpu"`` or ``"cuda"`` (``"cuda:1"``).
        names: which of the four models to run.
        warmup: untimed calls before timing (raised to 5 if lower).
        repeats: timed model-only forwards per model.
        tracker_frames: timed tracker frames per model (0: skip the tracker).
        frame_size: ``(H, W)`` of the synthetic frames.
        memory: measure the peak memory of one training step per stage
            (:func:`mmtrack_kd.benchmark.memory.training_peak_memory`).
        memory_batch_size: batch for that step instead of each stage's recipe batch size.
        prompter: time the teacher with Conv2d and with Linear prompter layers.
        compile: a ``torch.compile`` backend (``"inductor"``) to also time each model and its
            tracker under; None: not.
        bf16: also time each model under bfloat16 autocast and report its box deviation.
        int8: also time each model with int8 dynamically quantized Linear layers (CPU only).

    Returns ``{"what": "speed", "device", "threads", "sizes", "gemm_peak", "models": {name:
    {...}}, "ratios", "same_precision", "prompter", "memory"}``; see
    :func:`mmtrack_kd.benchmark.report.render`. ``ratios`` are the float32 rows against the
    float32 teacher; ``same_precision`` holds, per precision, every model's speed against the
    teacher's at that precision (:func:`same_precision_ratios`).
    """
    device_t = choose_device(device, "--device")
    warmup = max(warmup, MIN_WARMUP)
    result: dict[str, Any] = {
        "what": "speed",
        "device": _device_name(device_t),
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "sizes": recipe_sizes(recipe),
        "settings": {"warmup": warmup, "repeats": repeats, "tracker_frames": tracker_frames,
                     "frame_size": list(frame_size), "batch_size": 1},
    }  # fmt: skip
    log.info("GEMM peak on %s", result["device"])
    peak = gemm_peak(device_t, sizes=gemm_sizes)
    result["gemm_peak"] = peak
    crop = CropSettings(
        recipe.model.template_size, recipe.model.search_size, recipe.model.template_factor, recipe.model.search_factor
    )
    rows: dict[str, Any] = {}
    entries = benchmark_models(recipe, registry, names)
    for entry in entries:
        log.info("timing %s", entry.label)
        model = entry.build().to(device_t)
        row: dict[str, Any] = {"label": entry.label, "kind": entry.kind, **model_size(model)}
        latency = measure_latency_stats(model, device_t, warmup, repeats)
        row["latency"] = latency.as_dict()
        row["latency_ms"] = latency.median * 1e3
        row["model_fps"] = 1.0 / latency.median
        row["achieved_gflops"] = row["flops"] / latency.median / 1e9
        row["peak_fraction"] = row["achieved_gflops"] / peak["gflops"]
        if tracker_frames > 0:
            row["tracker"] = tracker_fps(model, entry.adapters, device_t, tracker_frames, warmup, frame_size, crop)
            row["tracker_fps"] = row["tracker"]["fps"]
        if bf16:
            row["bf16"] = _try(f"bf16 {entry.name}", lambda: _bf16_row(
                model, entry.adapters, device_t, warmup, repeats, tracker_frames, frame_size, crop))
        if int8:
            row["int8"] = _try(f"int8 {entry.name}", lambda: _int8_row(
                model, entry.adapters, device_t, warmup, repeats, tracker_frames, frame_size, crop))
        if compile:
            row["compiled"] = _try(f"torch.compile {entry.name}", lambda: _compiled_row(
                model, entry.adapters, device_t, warmup, repeats, tracker_frames, frame_size, crop, compile))
        rows[entry.name] = row
        del model
    result["models"] = rows
    result["ratios"] = ratios(rows, ("parameters", "gflops", "latency_ms", "model_fps", "tracker_fps"))
    result["same_precision"] = same_precision_ratios(rows)
    teacher_fps = rows.get("teacher", {}).get("tracker_fps")
    # torch.compile changes no precision: the compiled trackers against the eager fp32 teacher
    faster = {name: row["compiled"]["tracker_fps"] / teacher_fps
              for name, row in rows.items() if "tracker_fps" in row.get("compiled", {})}
    if teacher_fps and faster:
        result["compiled_vs_fp32_teacher"] = faster
    if prompter and "teacher" in names:
        log.info("prompter layers: Conv2d vs Linear")
        result["prompter"] = prompter_comparison(entries[names.index("teacher")], device_t, warmup, repeats)
    if memory:
        log.info("training-step memory")
        result["memory"] = training_peak_memory(recipe, device, registry=registry, batch_size=memory_batch_size)
    return result


#: Which teacher figures each precision's rows are divided by: bf16 against the bf16 teacher;
#: int8 against the float32 teacher (an int8 teacher is no reference a user would run).
REFERENCE_PRECISION = {"fp32": "fp32", "bf16": "bf16", "int8": "fp32"}


def _figures(row: dict[str, Any], precision: str) -> dict[str, Any]:
    return row if precision == "fp32" else row.get(precision) or {}


def same_precision_ratios(rows: dict[str, dict[str, Any]]) -> dict[str, dict[str, dict[str, float]]]:
    """Speed of every model against the teacher's, each at one precision, in one run.

    ``{"fp32": {name: {"tracker_fps", "model_fps"}}, "bf16": {...}, "int8_vs_fp32": {...}}``:
    tracker and model-only frames per second of ``name`` divided by the teacher's, fp32 by fp32,
    bf16 by bf16, int8 by fp32 (:data:`REFERENCE_PRECISION`). A precision missing from the
    teacher's row (a failed or skipped run) gives no entry.
    """
    teacher = rows.get("teacher")
    out: dict[str, dict[str, dict[str, float]]] = {}
    if teacher is None:
        return out
    for precision, reference in REFERENCE_PRECISION.items():
        base = _figures(teacher, reference)
        key = precision if precision == reference else f"{precision}_vs_{reference}"
        table: dict[str, dict[str, float]] = {}
        for name, row in rows.items():
            figures = _figures(row, precision)
            model_fps = 1e3 / figures["latency_ms"] if "latency_ms" in figures else None
            base_model_fps = 1e3 / base["latency_ms"] if "latency_ms" in base else None
            entry = {}
            if figures.get("tracker_fps") and base.get("tracker_fps"):
                entry["tracker_fps"] = figures["tracker_fps"] / base["tracker_fps"]
            if model_fps and base_model_fps:
                entry["model_fps"] = model_fps / base_model_fps
            if entry:
                table[name] = entry
        if table:
            out[key] = table
    return out


def _int8_row(model: nn.Module, adapters: Any, device: torch.device, warmup: int, repeats: int,
              tracker_frames: int, frame_size: tuple[int, int], crop: CropSettings) -> dict[str, Any]:
    if device.type != "cpu":
        raise RuntimeError("int8 dynamic quantization runs on the CPU only")
    quantized = quantize_int8(model)
    latency = measure_latency_stats(quantized, device, warmup, repeats)
    row = {"latency": latency.as_dict(), "latency_ms": latency.median * 1e3}
    if tracker_frames > 0:
        row["tracker"] = tracker_fps(model, adapters, device, tracker_frames, warmup, frame_size, crop,
                                     precision="int8")
        row["tracker_fps"] = row["tracker"]["fps"]
    return row


def _bf16_row(model: nn.Module, adapters: Any, device: torch.device, warmup: int, repeats: int,
              tracker_frames: int, frame_size: tuple[int, int], crop: CropSettings) -> dict[str, Any]:
    latency = measure_latency_stats(model, device, warmup, repeats, autocast_dtype=torch.bfloat16)
    row = {"latency": latency.as_dict(), "latency_ms": latency.median * 1e3,
           "deviation": box_deviation(model, device, torch.bfloat16)}  # fmt: skip
    if tracker_frames > 0:
        row["tracker"] = tracker_fps(model, adapters, device, tracker_frames, warmup, frame_size, crop,
                                     precision="bf16")
        row["tracker_fps"] = row["tracker"]["fps"]
    return row


def _compiled_row(model: nn.Module, adapters: Any, device: torch.device, warmup: int, repeats: int,
                  tracker_frames: int, frame_size: tuple[int, int], crop: CropSettings,
                  backend: str) -> dict[str, Any]:
    """Model-only latency of ``torch.compile(model)`` (float32; the first call, which
    compiles, is timed apart as ``compile_s``) and the tracker FPS of ``--compile``."""
    compiled = torch.compile(model, backend=backend, dynamic=False)
    start = time.perf_counter()
    templates, searches = dummy_inputs(model, 1, device)
    with torch.inference_mode():
        compiled(templates, searches)
    compile_s = time.perf_counter() - start
    latency = measure_latency_stats(model, device, warmup, repeats, forward=compiled)
    row = {"latency": latency.as_dict(), "latency_ms": latency.median * 1e3, "compile_s": compile_s,
           "backend": backend}
    if tracker_frames > 0:
        row["tracker"] = tracker_fps(model, adapters, device, tracker_frames, warmup, frame_size, crop,
                                     compile=backend)
        row["tracker_fps"] = row["tracker"]["fps"]
    return row


def prompter_comparison(teacher: BenchModel, device: torch.device, warmup: int, repeats: int) -> dict[str, Any]:
    """The teacher timed with its prompters' 1x1 layers as ``nn.Conv2d`` and as ``nn.Linear``.

    Same maths (the paper's supplement, Table 2, finds Conv2d slower); FLOPs are counted for
    both. The two variants are timed *interleaved* (one call of each in turn, same inputs), so
    a load change on a shared machine hits both alike. Returns ``{"conv2d": {...}, "linear":
    {...}, "conv2d/linear": ratio of median latencies}``.
    """
    if not teacher.config.get("prompters", True):
        return {"error": "the recipe's teacher has no prompters"}
    kinds = ("conv2d", "linear")
    models = {}
    for layer_type in kinds:
        variant = BenchModel(teacher.name, teacher.kind, {**teacher.config, "layer_type": layer_type}, teacher.adapters)
        models[layer_type] = variant.build().to(device)
    templates, searches = dummy_inputs(models["linear"], 1, device)
    times: dict[str, list[float]] = {kind: [] for kind in kinds}
    with torch.inference_mode():
        for step in range(warmup + repeats):
            for kind in kinds:
                seconds = time_call(lambda: models[kind](templates, searches), device)
                if step >= warmup:
                    times[kind].append(seconds)
    out: dict[str, Any] = {}
    for kind in kinds:
        latency = LatencyStats.of(times[kind], warmup)
        out[kind] = {"latency": latency.as_dict(), "latency_ms": latency.median * 1e3,
                     "gflops": model_size(models[kind])["gflops"]}  # fmt: skip
    out["conv2d/linear"] = out["conv2d"]["latency_ms"] / out["linear"]["latency_ms"]
    out["timing"] = "interleaved"
    return out


def _device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return f"{device} ({torch.cuda.get_device_name(device)})"
    processor = platform.processor() or platform.machine()
    return f"cpu ({processor}, {torch.get_num_threads()} threads)"
