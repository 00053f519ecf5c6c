"""Rich tables and JSON for the results of :func:`params_benchmark` and :func:`speed_benchmark`."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from mmtrack_kd.console import name_column


def _num(value: Any, fmt: str = "{:.2f}") -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return fmt.format(value)


def _sizes(result: dict[str, Any]) -> str:
    s = result.get("sizes", {})
    return (
        f"ViT depth {s.get('depth')} width {s.get('embed_dim')}, search {s.get('search_size')}, "
        f"template {s.get('template_size')}, modality {s.get('modality')}"
    )


def params_table(result: dict[str, Any]) -> Table:
    table = Table(title=f"Parameters and FLOPs per frame ({_sizes(result)})")
    name_column(table, "model")
    for column in ("parameters (M)", "trainable (M)", "GFLOPs", "GMACs"):
        table.add_column(column, justify="right")
    for row in result["models"].values():
        table.add_row(row["label"], _num(row["parameters"] / 1e6), _num(row["trainable"] / 1e6),
                      _num(row["gflops"]), _num(row["gmacs"]))  # fmt: skip
    return table


def speed_table(result: dict[str, Any]) -> Table:
    """Size and latency of each model (model-only, batch 1)."""
    table = Table(title=f"Speed on {result['device']} ({_sizes(result)})")
    name_column(table, "model")
    for column in ("params (M)", "GFLOPs", "latency ms (median)", "p25-p75 ms", "min ms"):
        table.add_column(column, justify="right")
    for row in result["models"].values():
        lat = row["latency"]
        table.add_row(
            row["label"], _num(row["parameters"] / 1e6), _num(row["gflops"]), _num(row["latency_ms"], "{:.1f}"),
            f"{lat['p25'] * 1e3:.1f}-{lat['p75'] * 1e3:.1f}", _num(lat["min"] * 1e3, "{:.1f}"),
        )  # fmt: skip
    return table


def throughput_table(result: dict[str, Any]) -> Table:
    """Frames per second and the share of the machine's GEMM peak each model reaches (a table
    of its own, so both read at 80 columns)."""
    peak = result["gemm_peak"]
    table = Table(title=f"Throughput; GEMM peak {peak['gflops']:.1f} GFLOP/s ({peak['dtype']}, "
                        f"n={peak['size']})")
    name_column(table, "model")
    for column in ("model FPS", "tracker FPS", "GFLOP/s", "of peak"):
        table.add_column(column, justify="right")
    for row in result["models"].values():
        table.add_row(
            row["label"], _num(row["model_fps"], "{:.1f}"), _num(row.get("tracker_fps"), "{:.1f}"),
            _num(row["achieved_gflops"], "{:.1f}"), _num(row["peak_fraction"] * 100, "{:.0f}%"),
        )  # fmt: skip
    return table


def ratio_table(result: dict[str, Any]) -> Table:
    table = Table(title="Ratios to the teacher")
    keys = sorted({key for values in result["ratios"].values() for key in values})
    name_column(table, "ratio")
    for key in keys:
        table.add_column(key, justify="right")
    for name, values in result["ratios"].items():
        table.add_row(name, *[_num(values.get(key), "{:.3f}") for key in keys])
    return table


def same_precision_table(result: dict[str, Any]) -> Table | None:
    """Tracker FPS of every model and its ratio to the teacher at the same precision."""
    same = result.get("same_precision") or {}
    if not same:
        return None
    table = Table(title="Tracker FPS and x teacher at the same precision (int8 against fp32)")
    name_column(table, "model")
    table.add_column("GFLOPs", justify="right")
    columns = [("fp32", "fp32", None), ("bf16", "bf16", "bf16"), ("int8_vs_fp32", "int8", "int8")]
    columns = [c for c in columns if c[0] in same]
    for _, label, _ in columns:
        table.add_column(f"{label} FPS", justify="right")
        table.add_column("x", justify="right")
    for name, row in result["models"].items():
        cells = [name, _num(row.get("gflops"))]
        for key, _, variant in columns:
            figures = row if variant is None else row.get(variant) or {}
            cells += [_num(figures.get("tracker_fps"), "{:.2f}"),
                      _num(same[key].get(name, {}).get("tracker_fps"), "{:.2f}")]
        table.add_row(*cells)
    return table


def extras_table(result: dict[str, Any]) -> Table | None:
    """Prompter comparison, bf16 / compile rows and training memory, when present."""
    table = Table(title="Prompter layers, bf16, torch.compile, training-step memory")
    name_column(table, "what")
    table.add_column("figure", justify="right")
    name_column(table, "note")
    prompter = result.get("prompter")
    if prompter and "error" not in prompter:
        for kind in ("conv2d", "linear"):
            table.add_row(f"teacher, {kind} prompters", f"{prompter[kind]['latency_ms']:.1f} ms",
                          f"{prompter[kind]['gflops']:.2f} GFLOPs")  # fmt: skip
        table.add_row("conv2d / linear latency", f"{prompter['conv2d/linear']:.3f}", "> 1: Conv2d slower")
    for name, row in result.get("models", {}).items():
        for key, label in (("bf16", "bf16 autocast"), ("int8", "int8 Linear"), ("compiled", "torch.compile")):
            extra = row.get(key)
            if not extra:
                continue
            if "error" in extra:
                table.add_row(f"{row['label']}, {label}", "failed", extra["error"][:80])
                continue
            if key == "bf16":
                dev = extra["deviation"]
                note = (f"box dev. vs fp32: mean {dev['mean_px']:.2f} px, max {dev['max_px']:.2f} px; "
                        f"peak agreement {dev['peak_agreement']:.0%}")  # fmt: skip
            elif key == "int8":
                note = "dynamic quantization"
            else:
                note = f"compile {extra['compile_s']:.1f} s"
            if "tracker_fps" in extra:
                versus = (result.get(f"{key}_vs_fp32_teacher") or {}).get(name)
                note += f"; tracker {extra['tracker_fps']:.2f} FPS" + (
                    f" = {versus:.2f} x the fp32 teacher's" if versus else "")
            table.add_row(f"{row['label']}, {label}", f"{extra['latency_ms']:.1f} ms", note)
    for stage, entry in (result.get("memory") or {}).items():
        if "error" in entry:
            table.add_row(f"train step, {stage} (batch {entry['batch_size']})", "failed", entry["error"][:80])
        else:
            table.add_row(f"train step, {stage} (batch {entry['batch_size']})",
                          f"{entry['step_gib']:.2f} GiB", f"peak {entry['peak_gib']:.2f} GiB; {entry['method']}")  # fmt: skip
    return table if table.row_count else None


def render(result: dict[str, Any], console: Console | None = None) -> None:
    """Print a params or speed result as rich tables."""
    console = console or Console()
    if result.get("what") == "params":
        console.print(params_table(result))
        if result.get("ratios"):
            console.print(ratio_table(result))
        return
    console.print(speed_table(result))
    console.print(throughput_table(result))
    if result.get("ratios"):
        console.print(ratio_table(result))
    same = same_precision_table(result)
    if same is not None:
        console.print(same)
    extras = extras_table(result)
    if extras is not None:
        console.print(extras)


def write_json(result: dict[str, Any], path: str | Path) -> Path:
    """Write ``result`` as indented JSON (NaN written as null)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(_clean(result), indent=2) + "\n", encoding="utf-8")
    return path


def _clean(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    return value
