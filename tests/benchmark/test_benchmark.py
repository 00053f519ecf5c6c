"""Speed / params benchmarks on a tiny recipe: structure and sanity, never timing thresholds."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from rich.console import Console

from mmtrack_kd.benchmark import (
    benchmark_models,
    gemm_peak,
    measure_latency_stats,
    params_benchmark,
    render,
    speed_benchmark,
    tracker_fps,
    training_peak_memory,
    write_json,
)
from mmtrack_kd.benchmark.params import LABELS, SHAPES, shape_config
from mmtrack_kd.benchmark.speed import box_deviation, same_precision_ratios
from mmtrack_kd.models.profile import dummy_inputs
from mmtrack_kd.recipe import load_recipe
from mmtrack_kd.runtime.precision import autocast

RECIPE = Path(__file__).resolve().parents[2] / "recipes" / "rgbt.yaml"
TINY = [
    "model.pretrained=null",
    "model.backbone.depth=3",
    "model.backbone.embed_dim=32",
    "model.backbone.num_heads=2",
    "model.template_size=32",
    "model.search_size=64",
    "model.head_channels=16",
    "student.candidate_elimination.layers=[1]",
    "teacher.optim.batch_size=2",
    "student.optim.batch_size=2",
]


@pytest.fixture(scope="module")
def recipe():
    return load_recipe(RECIPE, TINY)


def quiet_console() -> Console:
    return Console(file=open("/dev/null", "w"), width=200)


def test_the_four_models(recipe):
    models = {entry.name: entry for entry in benchmark_models(recipe)}
    assert list(models) == ["teacher", "student", "student_ce", "baseline", *SHAPES]
    assert models["teacher"].kind == "teacher"
    assert models["student"].config["ce_layers"] == [] and models["student"].config["num_modalities"] == 2
    assert models["student_ce"].config["ce_layers"] == [1] and models["student_ce"].config["ce_keep_ratio"] == 0.7
    baseline = models["baseline"]
    assert baseline.config["num_modalities"] == 1 and len(baseline.adapters) == 1
    assert [a.name for a in models["student"].adapters] == ["rgb", "thermal"]
    built = models["baseline"].build()
    assert built.num_modalities == 1 and not built.training


def test_params_benchmark(recipe):
    result = params_benchmark(recipe)
    rows = result["models"]
    assert set(rows) == {"teacher", "student", "student_ce", "baseline", *SHAPES}
    for row in rows.values():
        assert row["parameters"] >= row["trainable"] > 0
        assert row["flops"] > 0 and row["gflops"] == pytest.approx(row["flops"] / 1e9)
    # same parameters with and without elimination, fewer FLOPs with it
    assert rows["student"]["parameters"] == rows["student_ce"]["parameters"]
    assert rows["student_ce"]["flops"] < rows["student"]["flops"]
    assert rows["baseline"]["flops"] < rows["student"]["flops"]
    ratio = result["ratios"]["student/teacher"]
    assert ratio["parameters"] == pytest.approx(rows["student"]["parameters"] / rows["teacher"]["parameters"])
    render(result, quiet_console())


def test_gemm_peak_is_a_rate():
    peak = gemm_peak("cpu", sizes=(64, 96), repeats=2, warmup=1)
    assert peak["gflops"] > 0 and peak["size"] in (64, 96) and set(peak["rates"]) == {64, 96}


def test_latency_stats_count_runs(recipe):
    model = benchmark_models(recipe, names=("baseline",))[0].build()
    stats = measure_latency_stats(model, "cpu", warmup=5, repeats=4)
    assert stats.runs == 4 and stats.warmup == 5
    assert 0 < stats.min <= stats.p25 <= stats.median <= stats.p75 <= stats.max


def test_tracker_fps_on_frames_in_memory(recipe):
    entry = benchmark_models(recipe, names=("student",))[0]
    result = tracker_fps(entry.build(), entry.adapters, "cpu", frames=3, warmup=5, frame_size=(60, 80))
    assert result["fps"] > 0 and result["frame"]["runs"] == 3 and result["frame_size"] == [60, 80]


def test_speed_benchmark_structure_and_outputs(recipe, tmp_path):
    result = speed_benchmark(
        recipe, "cpu", repeats=2, warmup=1, tracker_frames=2, frame_size=(60, 80),
        gemm_sizes=(64,), memory=False, prompter=True, bf16=True,
    )  # fmt: skip
    assert result["settings"]["warmup"] == 5  # raised to the minimum
    assert result["gemm_peak"]["gflops"] > 0
    for row in result["models"].values():
        assert row["latency"]["runs"] == 2
        assert row["achieved_gflops"] == pytest.approx(row["flops"] / row["latency"]["median"] / 1e9)
        assert row["peak_fraction"] == pytest.approx(row["achieved_gflops"] / result["gemm_peak"]["gflops"])
        assert row["tracker_fps"] > 0
        deviation = row["bf16"]["deviation"]
        # bf16 really ran (the score map moved) and the pixel figures are ordered as named;
        # boxes are normalised to the crop, so no deviation can exceed the search size (64 px)
        assert deviation["dtype"] == "bfloat16" and deviation["score_map_max_abs"] > 0
        assert 0 < deviation["mean_px"] <= deviation["max_px"] <= 64
        assert deviation["peak_agreement"] in {k / 8 for k in range(9)}  # a share of the batch of 8
        if deviation["peak_agreement"] > 0:
            assert deviation["mean_px_same_peak"] <= deviation["max_px_same_peak"] <= deviation["max_px"]
    assert "student/teacher" in result["ratios"]
    prompter = result["prompter"]
    assert prompter["conv2d"]["gflops"] == pytest.approx(prompter["linear"]["gflops"], rel=1e-6)
    assert prompter["conv2d/linear"] == pytest.approx(
        prompter["conv2d"]["latency_ms"] / prompter["linear"]["latency_ms"])
    render(result, quiet_console())
    path = write_json(result, tmp_path / "out" / "speed.json")
    assert json.loads(path.read_text())["models"]["teacher"]["kind"] == "teacher"


@pytest.mark.filterwarnings("ignore:In CPU autocast")  # float32 "autocast" is no autocast: the point
def test_box_deviation_measures_the_boxes_that_the_two_precisions_give(recipe):
    """The bf16 deviation equals an independent recomputation, and float32 against itself
    deviates by nothing with every peak in agreement."""
    model = benchmark_models(recipe)[0].build()
    device = torch.device("cpu")
    same = box_deviation(model, device, torch.float32)
    assert same["max_px"] == 0 and same["peak_agreement"] == 1 and same["score_map_max_abs"] == 0
    low = box_deviation(model, device, torch.bfloat16, batch=4, seed=3)
    torch.manual_seed(3)
    templates, searches = dummy_inputs(model, 4, device)
    with torch.inference_mode():
        ref = model(templates, searches)
        with autocast(device, torch.bfloat16):
            bf16 = model(templates, searches)
    diff = (bf16.boxes.float() - ref.boxes.float()).abs() * model.config["search_size"]
    assert low["max_px"] == pytest.approx(float(diff.max())) and low["mean_px"] == pytest.approx(float(diff.mean()))
    agree = ref.score_map.flatten(1).argmax(1) == bf16.score_map.flatten(1).argmax(1)
    assert low["peak_agreement"] == pytest.approx(float(agree.float().mean()))


def test_compiled_rows_time_the_model_and_the_tracker(recipe):
    """``--compile`` rows: model-only latency of the compiled forward, the compile time, the
    compiled tracker's FPS and its ratio to the float32 teacher. The ``eager`` backend keeps the
    test quick (graph capture without code generation); the CLI asks for inductor."""
    result = speed_benchmark(
        recipe, "cpu", names=("teacher", "student"), repeats=2, warmup=1, tracker_frames=2,
        frame_size=(60, 80), gemm_sizes=(64,), memory=False, prompter=False, compile="eager",
    )  # fmt: skip
    for name, row in result["models"].items():
        compiled = row["compiled"]
        assert "error" not in compiled, compiled
        assert compiled["backend"] == "eager" and compiled["compile_s"] > 0
        assert compiled["latency"]["runs"] == 2 and compiled["tracker"]["frame"]["runs"] == 2
        assert result["compiled_vs_fp32_teacher"][name] == pytest.approx(
            compiled["tracker_fps"] / result["models"]["teacher"]["tracker_fps"])
    console = Console(record=True, width=200, file=open("/dev/null", "w"))
    render(result, console)
    text = console.export_text()
    assert "torch.compile" in text and "x the fp32 teacher's" in text


def test_training_memory_in_a_subprocess(recipe):
    result = training_peak_memory(recipe, "cpu", stages=("student",), steps=1, timeout=120)
    entry = result["student"]
    assert "error" not in entry, entry
    assert entry["batch_size"] == 2 and entry["peak_bytes"] > 0 and entry["step_bytes"] >= 0


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_speed_benchmark_on_cuda(recipe):
    result = speed_benchmark(recipe, "cuda", repeats=2, tracker_frames=2, frame_size=(60, 80), gemm_sizes=(256,),
                             prompter=False)  # fmt: skip
    assert result["memory"]["teacher"]["method"] == "torch.cuda.max_memory_allocated"
    assert all(row["latency"]["median"] > 0 for row in result["models"].values())


def test_student_shapes_are_sized_from_the_teacher_depth(recipe):
    assert shape_config({}, 12, 1 / 2, 1, 1) == {"depth": 6, "fuse_after": 1, "aux_pool": 1}
    assert shape_config({}, 12, 1 / 3, 0, 1) == {"depth": 4, "fuse_after": 0, "aux_pool": 1}
    assert shape_config({}, 12, 1, 0, 2) == {"depth": 12, "fuse_after": 0, "aux_pool": 2}
    assert shape_config({}, 4, 1 / 2, 1, 1) == {"depth": 2, "fuse_after": 1, "aux_pool": 1}
    assert shape_config({}, 4, 1 / 3, 1, 1) == {"depth": 1, "fuse_after": 0, "aux_pool": 1}
    rows = params_benchmark(recipe, names=("teacher", "student", "student_half", "student_pooled"))["models"]
    # fewer blocks and fewer tokens cost fewer FLOPs than the full student
    assert rows["student_half"]["gflops"] < rows["student"]["gflops"]
    assert rows["student_pooled"]["gflops"] < rows["student"]["gflops"]


def test_same_precision_ratios_divide_by_the_teacher_at_that_precision():
    rows = {
        "teacher": {"tracker_fps": 2.0, "latency_ms": 400.0, "bf16": {"tracker_fps": 4.0, "latency_ms": 200.0}},
        "student_half": {"tracker_fps": 5.0, "latency_ms": 160.0, "bf16": {"tracker_fps": 12.0, "latency_ms": 50.0},
                         "int8": {"tracker_fps": 7.0, "latency_ms": 100.0}},
        "student": {"tracker_fps": 2.2, "latency_ms": 380.0, "bf16": {"error": "RuntimeError: no bf16"}},
    }
    same = same_precision_ratios(rows)
    assert same["fp32"]["student_half"] == {"tracker_fps": 2.5, "model_fps": 2.5}
    assert same["bf16"]["student_half"] == {"tracker_fps": 3.0, "model_fps": 4.0}  # not 12 / 2
    assert same["int8_vs_fp32"]["student_half"] == {"tracker_fps": 3.5, "model_fps": 4.0}
    assert "student" not in same["bf16"] and "student" not in same["int8_vs_fp32"]
    assert same["fp32"]["teacher"] == {"tracker_fps": 1.0, "model_fps": 1.0}


def test_int8_rows_are_timed_and_ratioed_against_fp32(recipe):
    result = speed_benchmark(
        recipe, "cpu", names=("teacher", "student_half_fused"), repeats=2, warmup=1, tracker_frames=2,
        frame_size=(60, 80), gemm_sizes=(64,), memory=False, prompter=False, int8=True, bf16=True,
    )  # fmt: skip
    for name, row in result["models"].items():
        assert "error" not in row["int8"], row["int8"]
        assert row["int8"]["tracker_fps"] > 0
        assert result["same_precision"]["int8_vs_fp32"][name]["tracker_fps"] == pytest.approx(
            row["int8"]["tracker_fps"] / result["models"]["teacher"]["tracker_fps"])
        assert result["same_precision"]["bf16"][name]["tracker_fps"] == pytest.approx(
            row["bf16"]["tracker_fps"] / result["models"]["teacher"]["bf16"]["tracker_fps"])
    assert "bf16_vs_fp32_teacher" not in result
    render(result, quiet_console())


def test_speed_tables_read_at_80_columns():
    """Every model's label is whole at 80 columns (once: ``teac…`` and ``stud…``)."""
    latency = {"p25": 0.010, "p75": 0.012, "min": 0.009, "median": 0.011}
    result = {
        "what": "speed", "device": "cpu", "sizes": {"depth": 4, "embed_dim": 96, "search_size": 128,
                                                   "template_size": 64, "modality": "thermal"},
        "gemm_peak": {"gflops": 123.4, "dtype": "float32", "size": 1024},
        "models": {name: {"label": label, "parameters": 5.2e6, "gflops": 1.23, "latency_ms": 11.0,
                          "latency": latency, "model_fps": 90.9, "tracker_fps": 45.1,
                          "achieved_gflops": 111.2, "peak_fraction": 0.9}
                   for name, label in LABELS.items()},
    }
    console = Console(width=80, record=True, file=open("/dev/null", "w"))
    render(result, console)
    text = console.export_text()
    assert "…" not in text
    for label in LABELS.values():
        assert label in text
    assert max(len(line) for line in text.splitlines()) <= 80
