"""Foreign checkpoints (OSTrack, MAE, timm, MPLT) converted and loaded into our models."""

from __future__ import annotations

import collections
import sys
import types

import pytest
import torch

from mmtrack_kd.checkpoints import (
    ForeignObject,
    check_declared,
    load_pretrained,
    read_file,
    resize_pos_embed,
    save_model,
)
from mmtrack_kd.errors import CheckpointError
from mmtrack_kd.models import OneStreamStudent, TwoStreamTeacher


def _vit_state(tiny: dict, grid: int = 8, extra: dict | None = None) -> dict:
    """A timm/MAE-layout ViT state dict (class token, 1 + grid^2 position embeddings)."""
    source = OneStreamStudent(**tiny, num_modalities=1).backbone.state_dict()
    state = {k: v for k, v in source.items() if not k.startswith("pos_embed")}
    state["cls_token"] = torch.randn(1, 1, 64)
    state["pos_embed"] = torch.randn(1, 1 + grid * grid, 64)
    state.update(extra or {})
    return state


def _ostrack_file(tmp_path, tiny, random_weights):
    """An OSTrack checkpoint: our single-modality student's weights under 'net', plus the
    pre-training leftovers OSTrack keeps (cls_token, pos_embed)."""
    reference = random_weights(OneStreamStudent(**tiny, num_modalities=1)).eval()
    net = dict(reference.state_dict())
    net["backbone.cls_token"] = torch.randn(1, 1, 64)
    net["backbone.pos_embed"] = torch.randn(1, 197, 64)
    path = tmp_path / "OSTrack_ep0300.pth.tar"
    torch.save({"net": net, "epoch": 300, "net_type": "OSTrack"}, path)
    return reference, path


def test_ostrack_loads_strictly_into_the_single_modality_student(tmp_path, tiny, inputs, random_weights):
    reference, path = _ostrack_file(tmp_path, tiny, random_weights)
    student = OneStreamStudent(**tiny, num_modalities=1)
    report = load_pretrained(student, path, strict=True)
    assert report.format == "ostrack" and report.complete
    assert "backbone.cls_token" in str(report)  # dropped, and said so
    templates, searches = inputs(aux_chans=None)
    with torch.no_grad():
        assert torch.equal(student.eval()(templates, searches).boxes, reference(templates, searches).boxes)


def test_ostrack_into_teacher_and_student_reports_fresh_parts(tmp_path, tiny, random_weights):
    reference, path = _ostrack_file(tmp_path, tiny, random_weights)
    teacher = TwoStreamTeacher(**tiny)
    report = load_pretrained(teacher, path)
    assert not report.unexpected
    assert {k.split(".")[0] for k in report.missing} == {"rgb_prompters", "aux_prompters", "fusion"}
    assert "rgb_prompters.*" in str(report)
    assert torch.equal(teacher.backbone.blocks[1].mlp.fc2.weight, reference.backbone.blocks[1].mlp.fc2.weight)
    assert torch.equal(teacher.box_head.conv3_size[1].running_var, reference.box_head.conv3_size[1].running_var)
    student = OneStreamStudent(**tiny, modality_embedding=True, aux_in_chans=1)
    report = load_pretrained(student, path)
    assert {k.split(".")[0] for k in report.missing} == {"modality_embed", "fusion"}
    rgb = reference.backbone.patch_embed.proj.weight
    assert torch.allclose(student.backbone.patch_embed_aux.proj.weight, rgb.sum(1, keepdim=True))
    with pytest.raises(CheckpointError, match="does not match the model exactly"):
        load_pretrained(TwoStreamTeacher(**tiny), path, strict=True)


def test_ostrack_grids_are_resized_to_other_sizes(tmp_path, tiny, random_weights):
    _, path = _ostrack_file(tmp_path, tiny, random_weights)
    bigger = OneStreamStudent(**dict(tiny, search_size=192), num_modalities=1)
    report = load_pretrained(bigger, path, strict=True)
    assert bigger.backbone.pos_embed_x.shape == (1, 144, 64)
    assert any("pos_embed_x resized" in note for note in report.notes)


@pytest.mark.parametrize("layout", ["mae", "timm"])
def test_vit_checkpoints_give_the_backbone(tmp_path, tiny, layout):
    extra = (
        {"decoder_embed.weight": torch.randn(32, 64), "mask_token": torch.randn(1, 1, 32)}
        if layout == "mae"
        else {"head.weight": torch.randn(10, 64), "head.bias": torch.randn(10)}
    )
    state = _vit_state(tiny, grid=8, extra=extra)
    path = tmp_path / f"{layout}.pth"
    torch.save({"model": state} if layout == "mae" else state, path)
    student = OneStreamStudent(**tiny, aux_in_chans=1)
    report = load_pretrained(student, path)
    assert report.format == layout and not report.unexpected
    assert {k.split(".")[0] for k in report.missing} == {"box_head", "fusion"}
    assert torch.equal(student.backbone.blocks[2].attn.qkv.weight, state["blocks.2.attn.qkv.weight"])
    # an 8 x 8 grid equals the search grid: copied as is; the 4 x 4 template grid is resampled
    assert torch.equal(student.backbone.pos_embed_x, state["pos_embed"][:, 1:])
    assert torch.allclose(student.backbone.pos_embed_z, resize_pos_embed(state["pos_embed"][:, 1:], (4, 4)))
    assert torch.allclose(student.backbone.patch_embed_aux.proj.weight, state["patch_embed.proj.weight"].sum(1, keepdim=True))
    assert any("dropped" in note for note in report.notes)


def test_resize_pos_embed_is_bicubic_on_the_grid():
    grid = torch.randn(1, 14 * 14, 8)
    out = resize_pos_embed(grid, (8, 8))
    expected = torch.nn.functional.interpolate(
        grid.reshape(1, 14, 14, 8).permute(0, 3, 1, 2), size=(8, 8), mode="bicubic", align_corners=False
    ).permute(0, 2, 3, 1).reshape(1, 64, 8)
    assert torch.allclose(out, expected)
    assert resize_pos_embed(grid, (14, 14)) is grid


@pytest.mark.parametrize("layer_type", ["conv2d", "linear"])
def test_mplt_checkpoint_reproduces_mplt(tmp_path, tiny, inputs, random_weights, mplt_reference, layer_type):
    mplt = random_weights(mplt_reference(tiny)).eval()
    for name in ("prompt_blocks", "prompt_blocks_rev", "prompt_blocks_init", "prompt_blocks_init_rev"):
        # strong prompts, so that a wrong mapping or a missing quirk shows in the tokens
        random_weights(getattr(mplt.backbone, name), seed=1, scale=1.0)
    path = tmp_path / "MPLT_ep0015.pth.tar"
    torch.save({"net": mplt.state_dict()}, path)
    teacher = TwoStreamTeacher(**tiny, fusion="conv", mplt_compat=True, layer_type=layer_type)
    report = load_pretrained(teacher, path, strict=True)
    assert report.format == "mplt" and report.complete
    teacher.eval()
    templates, searches = inputs()
    with torch.no_grad():
        expected, tokens = mplt(templates, searches)
        out = teacher(templates, searches, return_features=True)
    assert torch.allclose(teacher.backbone.norm(out.features[-1]), tokens, atol=1e-5)
    assert torch.allclose(out.score_logits, expected.score_logits, atol=1e-5)
    assert torch.allclose(out.size_map, expected.size_map, atol=1e-5)
    assert torch.allclose(out.boxes, expected.boxes, atol=1e-5)


def test_mplt_file_with_its_unused_last_position_embedding_loads_strictly(tmp_path, tiny, random_weights,
                                                                           mplt_reference):
    """Real MPLT files carry ``backbone.pos_embed_x_last``, which MPLT creates and never uses:
    the converter drops it (and says so), so such a file still loads with strict=True."""
    state = dict(random_weights(mplt_reference(tiny)).state_dict())
    state["backbone.pos_embed_x_last"] = torch.randn(1, 16, 64)
    path = tmp_path / "MPLT_real.pth.tar"
    torch.save({"net": state}, path)
    report = load_pretrained(TwoStreamTeacher(**tiny, fusion="conv", mplt_compat=True), path, strict=True)
    assert report.complete and "backbone.pos_embed_x_last" in str(report)


def test_partial_loads_beyond_the_declared_parts_are_refused_with_every_key(tmp_path, tiny, random_weights):
    _, path = _ostrack_file(tmp_path, tiny, random_weights)
    report = load_pretrained(TwoStreamTeacher(**tiny), path)
    check_declared(report, fresh=["prompters", "fusion"])  # what an OSTrack file cannot hold
    check_declared(report, fresh=["rgb_prompters.", "aux_prompters.", "fusion.reduce"])  # raw prefixes
    with pytest.raises(CheckpointError) as error:
        check_declared(report, fresh=["prompters"])
    text = str(error.value)
    assert str(path) in text and "fusion.reduce.weight" in text and "fusion.reduce.bias" in text
    assert "rgb_prompters" not in text.split("parts declared")[0] and "declared fresh: prompters" in text
    # a teacher's file into a student: the prompters are left over, the modality embedding fresh
    teacher_path = save_model(random_weights(TwoStreamTeacher(**tiny, aux_in_chans=1)),
                                         tmp_path / "teacher.pt")
    report = load_pretrained(OneStreamStudent(**tiny, modality_embedding=True, aux_in_chans=1), teacher_path)
    check_declared(report, fresh=["modality_embed"], unused=["prompters"])
    with pytest.raises(CheckpointError, match=r"left over in the file \(86\): rgb_prompters.0.norm_own.weight, "):
        check_declared(report, fresh=["modality_embed"])
    with pytest.raises(CheckpointError, match=r"missing from the file \(1\): modality_embed"):
        check_declared(report, unused=["prompters"])


def test_mplt_into_a_teacher_without_the_quirk_is_reported(tmp_path, tiny, random_weights, mplt_reference):
    path = tmp_path / "mplt.pth"
    torch.save({"net": random_weights(mplt_reference(tiny)).state_dict()}, path)
    report = load_pretrained(TwoStreamTeacher(**tiny, fusion="conv"), path)
    assert report.missing and all(".other.channel_attention." in key for key in report.missing)


def test_wrong_shape_names_the_key_and_both_shapes(tmp_path, tiny, random_weights):
    _, path = _ostrack_file(tmp_path, tiny, random_weights)
    checkpoint = torch.load(path, weights_only=True)
    checkpoint["net"]["box_head.conv5_ctr.weight"] = torch.randn(1, 8, 1, 1)
    torch.save(checkpoint, path)
    with pytest.raises(CheckpointError) as error:
        load_pretrained(OneStreamStudent(**tiny, num_modalities=1), path)
    message = str(error.value)
    assert "box_head.conv5_ctr.weight" in message and "(1, 8, 1, 1)" in message and "(1, 4, 1, 1)" in message
    assert str(path) in message


def test_files_that_are_not_checkpoints(tmp_path, tiny):
    model = OneStreamStudent(**tiny)
    text = tmp_path / "notes.txt"
    text.write_text("not a checkpoint")
    with pytest.raises(CheckpointError, match="notes.txt"):
        load_pretrained(model, text)
    with pytest.raises(CheckpointError, match="no such file"):
        load_pretrained(model, tmp_path / "missing.pth")
    odd = tmp_path / "odd.pth"
    torch.save({"weights": {"x": torch.zeros(1)}}, odd)
    with pytest.raises(CheckpointError, match="odd.pth.*not a checkpoint format"):
        load_pretrained(model, odd)
    listed = tmp_path / "list.pth"
    torch.save([torch.zeros(1)], listed)
    with pytest.raises(CheckpointError, match="list.pth"):
        load_pretrained(model, listed)


def test_ostrack_training_checkpoint_with_pickled_settings_loads_without_running_them(
        tmp_path, tiny, inputs, random_weights, monkeypatch):
    """OSTrack's released files are its trainer's checkpoints: beside ``net`` they pickle the
    training ``settings`` and ``stats`` objects of its own code base. They load with
    ``weights_only=True``: those objects become inert placeholders; their code is neither
    imported nor run (a ``__reduce__`` that would call a function is not executed)."""
    ran = []
    module = types.ModuleType("lib.train.admin.settings")

    class Settings:
        def __init__(self):
            self.batch_size = 32
            self.env = types.SimpleNamespace(workspace_dir="/data/OSTrack")

    def record(what):
        ran.append(what)

    class StatValue:
        def __reduce__(self):
            return (record, ("executed",))

    for item in (Settings, StatValue, record):
        item.__module__ = module.__name__
        item.__qualname__ = item.__name__
        setattr(module, item.__name__, item)
    packages = ["lib", "lib.train", "lib.train.admin"]
    for name in packages:
        monkeypatch.setitem(sys.modules, name, types.ModuleType(name))
    monkeypatch.setitem(sys.modules, module.__name__, module)
    reference, plain = _ostrack_file(tmp_path, tiny, random_weights)
    state = torch.load(plain, weights_only=True)
    state.update(settings=Settings(), stats=collections.OrderedDict(train={"Loss": StatValue()}),
                 constructor=None, net_info=None, actor_type="OSTrackActor")
    path = tmp_path / "OSTrack_ep0300_full.pth.tar"
    torch.save(state, path)
    # OSTrack's code stays importable here: an unsafe load would run `record`
    checkpoint = read_file(path)
    assert ran == []
    assert isinstance(checkpoint["settings"], ForeignObject)
    assert isinstance(checkpoint["stats"]["train"]["Loss"], ForeignObject)
    model = OneStreamStudent(**tiny, num_modalities=1).eval()
    report = load_pretrained(model, path, strict=True)
    assert report.format == "ostrack" and report.complete
    templates, searches = inputs(aux_chans=None)
    with torch.no_grad():
        assert torch.equal(model(templates, searches).boxes, reference(templates, searches).boxes)


def test_position_embedding_that_is_no_grid_names_the_file(tmp_path, tiny):
    state = _vit_state(tiny)
    state["pos_embed"] = torch.randn(1, 1 + 50, 64)  # 50 tokens: no square grid
    path = tmp_path / "odd_vit.pth"
    torch.save({"model": state}, path)
    with pytest.raises(CheckpointError, match="odd_vit.pth.*square grid"):
        load_pretrained(OneStreamStudent(**tiny), path)
