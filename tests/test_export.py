"""ONNX export of the student: graphs run under onnxruntime and agree with PyTorch."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")

from mmtrack_kd.checkpoints import save_model  # noqa: E402
from mmtrack_kd.errors import CheckpointError  # noqa: E402
from mmtrack_kd.export import OnnxStudent, compare_fps, compare_with_pytorch, example_inputs, export_checkpoint  # noqa: E402
from mmtrack_kd.models import build_model  # noqa: E402

TINY = dict(template_size=32, search_size=64, patch_size=16, embed_dim=32, depth=3, num_heads=2, head_channels=16)
MODALITIES = [{"name": "rgb", "options": {}}, {"name": "thermal", "options": {}}]


@pytest.mark.slow
@pytest.mark.parametrize(
    "extra",
    [
        {},
        {"ce_layers": [1], "ce_keep_ratio": 0.7, "modality_embedding": True},
        {"aux_in_chans": 1},
        {"num_modalities": 1, "ce_layers": [0, 2], "ce_keep_ratio": 0.5},
        {"depth": 2, "fuse_after": 1},
        {"aux_pool": 2, "modality_embedding": True},
        {"ce_layers": [1, 2], "ce_keep_ratio": 0.5, "ce_pairing": "paired"},
    ],
    ids=["plain", "candidate-elimination", "one-channel-aux", "single-modality", "half-depth-fused",
         "pooled-aux", "paired-elimination"],
)
def test_export_matches_pytorch(tmp_path, extra):
    model = build_model("student", {**TINY, **extra}).eval()
    modalities = MODALITIES[: model.num_modalities]
    checkpoint = save_model(model, tmp_path / "student.pt", modalities=modalities)
    paths = export_checkpoint(checkpoint)
    assert paths["template"] == tmp_path / "student-onnx" / "template.onnx"
    assert paths["template"].is_file() and paths["track"].is_file()
    meta = json.loads(paths["meta"].read_text())
    assert meta["model_config"]["num_modalities"] == model.num_modalities
    assert meta["modalities"] == modalities

    worst = compare_with_pytorch(model, paths["track"].parent)
    assert worst["boxes_max_px"] < 1e-2  # pixels of the search crop
    assert worst["score_map_max_abs"] < 1e-4 and worst["size_map_max_abs"] < 1e-4
    assert worst["offset_map_max_abs"] < 1e-4


def test_onnx_runner_shapes(tmp_path):
    model = build_model("student", TINY).eval()
    paths = export_checkpoint(save_model(model, tmp_path / "s.pt", modalities=MODALITIES), tmp_path / "x")
    runner = OnnxStudent(paths["track"].parent)
    templates, searches = example_inputs(model)
    with pytest.raises(RuntimeError):
        runner.track(searches)
    runner.set_template(templates)
    out = runner.track(searches)
    assert out["score_map"].shape == (1, 1, 4, 4) and out["size_map"].shape == (1, 2, 4, 4)
    assert out["boxes"].shape == (1, 4)
    # the values are PyTorch's, computed here independently of compare_with_pytorch
    with torch.no_grad():
        expected = model(templates, searches)
    np.testing.assert_allclose(out["boxes"], expected.boxes.numpy(), atol=1e-5)
    np.testing.assert_allclose(out["score_map"], expected.score_map.numpy(), atol=1e-5)
    np.testing.assert_allclose(out["size_map"], expected.size_map.numpy(), atol=1e-5)


def test_export_refuses_the_teacher_and_other_formats(tmp_path):
    teacher = build_model("teacher", TINY)
    checkpoint = save_model(teacher, tmp_path / "teacher.pt", modalities=MODALITIES)
    with pytest.raises(CheckpointError, match="student"):
        export_checkpoint(checkpoint)
    with pytest.raises(ValueError, match="onnx"):
        export_checkpoint(checkpoint, format="tensorrt")


@pytest.mark.slow
def test_fps_comparison_reports_both(tmp_path):
    model = build_model("student", TINY).eval()
    paths = export_checkpoint(save_model(model, tmp_path / "s.pt", modalities=MODALITIES))
    result = compare_fps(model, paths["track"].parent, warmup=5, repeats=3)
    for runtime in ("pytorch", "onnxruntime"):
        assert result[f"{runtime}_fps"] == pytest.approx(1e3 / result[f"{runtime}_ms"])
    assert result["threads"] == torch.get_num_threads() and (result["warmup"], result["repeats"]) == (5, 3)
    # what was timed computes the same boxes: the ONNX graph's track step equals PyTorch's
    runner = OnnxStudent(paths["track"].parent)
    templates, searches = example_inputs(model)
    runner.set_template(templates)
    with torch.no_grad():
        model.set_template(templates)
        expected = model.track(searches)
    np.testing.assert_allclose(runner.track([s.numpy() for s in searches])["boxes"], expected.boxes.numpy(),
                               atol=1e-5)
