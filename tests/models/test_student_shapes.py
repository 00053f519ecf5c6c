"""Cheaper student shapes: fewer blocks, token fusion, a pooled auxiliary grid, paired elimination."""

from __future__ import annotations

import math

import pytest
import torch

from mmtrack_kd.checkpoints import load_model, load_pretrained, save_model
from mmtrack_kd.errors import CheckpointError
from mmtrack_kd.models import OneStreamStudent, TwoStreamTeacher, build_model

from tests.models.conftest import parameters_without_gradient

SHAPES = [
    dict(depth=2),
    dict(fuse_after=1),
    dict(fuse_after=2, modality_embedding=True),
    dict(aux_pool=2),
    dict(aux_pool=2, fuse_after=1, aux_in_chans=1),
]


@pytest.mark.parametrize("shape", SHAPES, ids=str)
def test_shape_outputs_features_and_every_parameter_learns(tiny, inputs, loss_fn, shape):
    student = OneStreamStudent(**{**tiny, **shape})
    templates, searches = inputs(aux_chans=shape.get("aux_in_chans", 3))
    out = student(templates, searches, return_features=True)
    assert out.score_map.shape == (2, 1, 8, 8) and out.boxes.shape == (2, 4)
    assert len(out.features) == student.backbone.depth
    # every student feature has a teacher target of exactly its shape
    teacher_tokens = torch.randn(2, 2 * (16 + 64), 64)
    for block, feature in enumerate(out.features, 1):
        assert student.teacher_target(block, teacher_tokens).shape == feature.shape
    pool, fuse = shape.get("aux_pool", 1), shape.get("fuse_after", 0)
    joint = 16 + 64 + (16 + 64) // pool**2
    expected = [joint if block <= fuse or not fuse else 16 + 64 for block in range(1, student.backbone.depth + 1)]
    assert [f.shape[1] for f in out.features] == expected
    loss_fn(out).backward()
    assert parameters_without_gradient(student) == []


def test_token_fusion_starts_as_the_mean_and_its_target_is_the_teacher_mean(tiny):
    student = OneStreamStudent(**tiny, fuse_after=1)
    rgb, aux = torch.randn(2, 80, 64), torch.randn(2, 80, 64)
    assert torch.allclose(student.token_fusion(rgb, aux), (rgb + aux) / 2, atol=1e-6)
    teacher = torch.cat([rgb, aux], dim=1)
    assert torch.equal(student.teacher_target(1, teacher), teacher)  # block 1: still two streams
    assert torch.allclose(student.teacher_target(2, teacher), (rgb + aux) / 2)


def test_pooled_grid_and_target_match_a_loop_over_cells(tiny):
    student = OneStreamStudent(**tiny, aux_pool=2)
    teacher = torch.randn(1, 160, 64)
    target = student.teacher_target(1, teacher)
    assert torch.equal(target[:, :80], teacher[:, :80])  # RGB untouched

    def pooled(tokens: torch.Tensor, side: int) -> torch.Tensor:
        cells = []
        for row in range(0, side, 2):
            for col in range(0, side, 2):
                ids = [r * side + c for r in (row, row + 1) for c in (col, col + 1)]
                cells.append(tokens[:, ids].mean(1))
        return torch.stack(cells, 1)

    aux = teacher[:, 80:]
    assert torch.allclose(target[:, 80:84], pooled(aux[:, :16], 4), atol=1e-6)
    assert torch.allclose(target[:, 84:], pooled(aux[:, 16:], 8), atol=1e-6)
    # back on the full grid, every token of a 2 x 2 cell is that cell's pooled token
    full = student._unpool(target[:, 84:], (8, 8))
    assert torch.equal(full[:, 0], full[:, 9]) and torch.equal(full[:, 0], target[:, 84])
    assert torch.equal(full[:, 63], target[:, 99])


@pytest.mark.slow
def test_pooled_aux_sees_only_cell_means(tiny, inputs, random_weights):
    """Two auxiliary images with the same 2 x 2 patch-cell means track identically."""
    config = dict(tiny, patch_size=16)
    student = random_weights(OneStreamStudent(**config, aux_pool=2)).eval()
    templates, searches = inputs(batch=1)
    # swapping two patches inside one 2 x 2 cell leaves the cell's mean patch embedding unchanged
    swapped = searches[1].clone()
    swapped[..., 0:16, 0:16], swapped[..., 0:16, 16:32] = searches[1][..., 0:16, 16:32], searches[1][..., 0:16, 0:16]
    with torch.no_grad():
        a = student(templates, searches)
        b = student(templates, [searches[0], swapped])
        c = OneStreamStudent(**config).eval()
        c.load_state_dict(student.state_dict())
        d, e = c(templates, searches), c(templates, [searches[0], swapped])
    assert torch.allclose(a.score_logits, b.score_logits, atol=1e-5)
    assert not torch.allclose(d.score_logits, e.score_logits, atol=1e-3)  # the full grid does see it


def _search_masks(out, blocks: int) -> tuple[torch.Tensor, torch.Tensor]:
    mask = out.feature_masks[blocks - 1]
    return mask[:, 16:80], mask[:, 96:160]


@pytest.mark.slow
def test_paired_elimination_keeps_the_same_positions_in_both_modalities(tiny, inputs, random_weights):
    config = dict(tiny, depth=4)
    paired = random_weights(OneStreamStudent(**config, ce_layers=[1, 2], ce_keep_ratio=0.5, ce_pairing="paired")).eval()
    independent = OneStreamStudent(**config, ce_layers=[1, 2], ce_keep_ratio=0.5).eval()
    independent.load_state_dict(paired.state_dict())
    templates, searches = inputs(batch=2)
    with torch.no_grad():
        rgb, aux = _search_masks(paired(templates, searches, return_features=True), 4)
        rgb_i, aux_i = _search_masks(independent(templates, searches, return_features=True), 4)
    assert torch.equal(rgb, aux)
    assert int(rgb[0].sum()) == math.ceil(0.5 * math.ceil(0.5 * 64))
    assert not torch.equal(rgb_i, aux_i)  # the same weights choose differently per modality


@pytest.mark.parametrize(
    "bad, message",
    [
        (dict(fuse_after=3), "fuse_after 3 outside"),
        (dict(fuse_after=1, num_modalities=1), "two modalities"),
        (dict(aux_pool=3), "does not divide"),
        (dict(aux_pool=2, ce_layers=[1], ce_keep_ratio=0.7), "plain token layout"),
        (dict(ce_pairing="joint"), "ce_pairing"),
    ],
)
def test_impossible_shapes_are_refused(tiny, bad, message):
    with pytest.raises(ValueError, match=message):
        OneStreamStudent(**{**tiny, **bad})


def test_a_shaped_checkpoint_rebuilds_the_same_model(tiny, inputs, random_weights, tmp_path):
    student = random_weights(OneStreamStudent(**{**tiny, "depth": 2}, fuse_after=1, aux_pool=2)).eval()
    path = save_model(student, tmp_path / "s.pt")
    rebuilt, info = load_model(path)
    assert info.model_config["fuse_after"] == 1 and info.model_config["aux_pool"] == 2
    templates, searches = inputs()
    with torch.no_grad():
        assert torch.equal(student(templates, searches).score_logits, rebuilt(templates, searches).score_logits)


def test_a_shallow_student_starts_from_chosen_teacher_blocks(tiny, random_weights, tmp_path):
    teacher = random_weights(TwoStreamTeacher(**{**tiny, "depth": 4}))
    path = save_model(teacher, tmp_path / "teacher.pt")
    student = OneStreamStudent(**{**tiny, "depth": 2})
    report = load_pretrained(student, path, block_sources=[1, 3])
    for target, source in ((0, 1), (1, 3)):
        for name, value in student.backbone.blocks[target].state_dict().items():
            assert torch.equal(value, teacher.backbone.blocks[source].state_dict()[name]), name
    assert not any(key.startswith("backbone.blocks") for key in report.unexpected + report.missing)
    assert any("blocks 1, 3 are not used" in note for note in report.notes)
    assert torch.equal(student.fusion.reduce.weight, teacher.fusion.reduce.weight)
    with pytest.raises(CheckpointError, match="no block 5"):
        load_pretrained(OneStreamStudent(**{**tiny, "depth": 2}), path, block_sources=[1, 4])


def test_build_model_defaults_keep_old_checkpoints_plain(tiny):
    student = build_model("student", tiny)
    assert student.fuse_after == 0 and student.aux_pool == 1 and student.token_fusion is None
