"""The one-stream student: OSTrack in single-modality mode, candidate elimination, gradients."""

from __future__ import annotations

import pytest
import torch

from mmtrack_kd.models import OneStreamStudent, TwoStreamTeacher, build_model
from mmtrack_kd.models.profile import count_flops

from tests.models.conftest import parameters_without_gradient


@pytest.mark.parametrize(
    "options",
    [
        dict(),
        dict(modality_embedding=True),
        dict(fusion="conv"),
        dict(aux_in_chans=1),
        dict(ce_layers=[1, 2], ce_keep_ratio=0.7),
        dict(ce_layers=[0], ce_keep_ratio=0.5, ce_template_range="all"),
        dict(num_modalities=1),
        dict(num_modalities=1, ce_layers=[1], ce_keep_ratio=0.7),
    ],
    ids=str,
)
def test_outputs_and_every_parameter_learns(tiny, inputs, loss_fn, options):
    student = OneStreamStudent(**tiny, **options)
    modalities = student.num_modalities
    templates, searches = inputs(aux_chans=options.get("aux_in_chans", 3) if modalities == 2 else None)
    out = student(templates, searches, return_features=True)
    assert out.score_map.shape == (2, 1, 8, 8) and out.size_map.shape == (2, 2, 8, 8)
    assert out.boxes.shape == (2, 4)
    assert len(out.features) == tiny["depth"]
    assert all(f.shape == (2, modalities * (16 + 64), 64) for f in out.features)
    loss_fn(out).backward()
    assert parameters_without_gradient(student) == []


def test_single_modality_is_exactly_ostrack(tiny, inputs, random_weights, ostrack_forward):
    student = random_weights(OneStreamStudent(**tiny, num_modalities=1)).eval()
    assert student.fusion is None and student.modality_embed is None
    templates, searches = inputs(aux_chans=None)
    with torch.no_grad():
        out = student(templates, searches)
        score, size, offset, boxes = ostrack_forward(student.state_dict(), templates[0], searches[0], tiny["num_heads"])
    assert torch.allclose(out.score_map, score, atol=1e-5)
    assert torch.allclose(out.size_map, size, atol=1e-5)
    assert torch.allclose(out.offset_map, offset, atol=1e-5)
    assert torch.allclose(out.boxes, boxes, atol=1e-5)


def test_single_modality_candidate_elimination_is_ostracks(tiny, inputs, random_weights, ostrack_forward):
    config = dict(tiny, depth=4)
    student = random_weights(OneStreamStudent(**config, num_modalities=1, ce_layers=[1, 2], ce_keep_ratio=0.7)).eval()
    templates, searches = inputs(aux_chans=None)
    with torch.no_grad():
        out = student(templates, searches)
        score, size, offset, boxes = ostrack_forward(
            student.state_dict(), templates[0], searches[0], tiny["num_heads"], ce_layers=(1, 2), keep_ratio=0.7
        )
    assert torch.allclose(out.score_map, score, atol=1e-5)
    assert torch.allclose(out.boxes, boxes, atol=1e-5)


@pytest.mark.parametrize("modalities", [1, 2])
def test_keep_ratio_one_is_no_elimination(tiny, inputs, random_weights, modalities):
    plain = random_weights(OneStreamStudent(**tiny, num_modalities=modalities)).eval()
    ce = OneStreamStudent(**tiny, num_modalities=modalities, ce_layers=[0, 1, 2], ce_keep_ratio=1.0).eval()
    ce.load_state_dict(plain.state_dict())
    templates, searches = inputs(aux_chans=3 if modalities == 2 else None)
    with torch.no_grad():
        a = plain(templates, searches, return_features=True)
        b = ce(templates, searches, return_features=True)
        c = ce(templates, searches, return_features=True, keep_ratio=1.0)
    for other in (b, c):
        assert torch.equal(a.score_logits, other.score_logits) and torch.equal(a.boxes, other.boxes)
        assert all(torch.equal(x, y) for x, y in zip(a.features, other.features))
        assert other.feature_masks is None


def test_elimination_per_modality_keeps_layout_and_zero_fills(tiny, inputs):
    student = OneStreamStudent(**tiny, ce_layers=[1], ce_keep_ratio=0.7).eval()
    templates, searches = inputs()
    with torch.no_grad():
        out = student(templates, searches, return_features=True)
        override = student(templates, searches, keep_ratio=0.5)
    assert out.feature_masks is not None and len(out.feature_masks) == tiny["depth"]
    assert out.feature_masks[0].all()  # block 0 runs before any elimination
    kept = 45  # ceil(0.7 * 64) per modality
    for mask, feature in zip(out.feature_masks[1:], out.features[1:]):
        assert mask.shape == (2, 160)
        assert mask[:, :16].all() and mask[:, 80:96].all()  # templates stay
        assert (mask[:, 16:80].sum(1) == kept).all() and (mask[:, 96:].sum(1) == kept).all()
        assert (feature[~mask] == 0).all() and (feature[mask].abs().sum(-1) > 0).all()
    assert override.boxes.shape == (2, 4)
    with pytest.raises(ValueError, match="keep ratio"):
        student(templates, searches, keep_ratio=0.0)


def test_elimination_reduces_work(tiny, inputs):
    student = OneStreamStudent(**tiny, ce_layers=[1], ce_keep_ratio=0.5)
    assert count_flops(student) < count_flops(student, keep_ratio=1.0)


def test_modality_embedding_starts_at_zero(tiny, inputs, random_weights):
    with_embedding = OneStreamStudent(**tiny, modality_embedding=True)
    assert torch.equal(with_embedding.modality_embed, torch.zeros(2, 1, 64))
    without = random_weights(OneStreamStudent(**tiny)).eval()
    state = without.state_dict()
    state["modality_embed"] = torch.zeros(2, 1, 64)
    with_embedding.load_state_dict(state)
    with_embedding.eval()
    templates, searches = inputs()
    with torch.no_grad():
        assert torch.equal(with_embedding(templates, searches).boxes, without(templates, searches).boxes)


def test_student_matches_teacher_token_layout_and_names(tiny, inputs):
    teacher = TwoStreamTeacher(**tiny)
    student = OneStreamStudent(**tiny)
    shared = {k for k in student.state_dict() if k in teacher.state_dict()}
    assert shared == set(student.state_dict())  # backbone, fusion and head start from the teacher
    templates, searches = inputs()
    assert teacher(templates, searches, return_features=True).features[3 - 1].shape == (
        student(templates, searches, return_features=True).features[3 - 1].shape
    )


def test_config_and_errors(tiny, inputs):
    student = build_model("student", dict(tiny, ce_layers=(2, 1), ce_keep_ratio=0.7, num_modalities=1))
    assert student.config["ce_layers"] == [1, 2] and student.num_modalities == 1
    with pytest.raises(ValueError, match="ce_layers"):
        OneStreamStudent(**tiny, ce_layers=[3])
    with pytest.raises(ValueError, match="unknown model kind"):
        build_model("ostrack", tiny)
    templates, searches = inputs()
    with pytest.raises(ValueError, match="one per modality"):
        student(templates, searches)


def test_elimination_in_the_last_block_puts_every_kept_token_back_in_its_place(tiny, inputs, random_weights):
    """Dropping between the last block's attention and its MLP changes nothing for the tokens
    kept (the MLP and the final norm work token by token): each kept token must come back at
    its own grid position with the value it has without elimination, and the dropped one as
    zero. This goes through the gather / index / scatter path that keep ratio 1.0 skips."""
    student = random_weights(OneStreamStudent(**tiny, ce_layers=[tiny["depth"] - 1], ce_keep_ratio=1.0)).eval()
    templates, searches = inputs()
    seen = {}
    predict = student.predict

    def capture(search):
        seen["search"] = [s.clone() for s in search]
        return predict(search)

    student.predict = capture
    with torch.no_grad():
        student(templates, searches, keep_ratio=1.0)
        full = seen["search"]
        student(templates, searches, keep_ratio=63 / 64)  # 8 x 8 search grid: drop one token
        reduced = seen["search"]
    for modality in range(2):
        dropped = (reduced[modality].abs().sum(-1) == 0)  # (B, 64)
        assert dropped.sum(1).tolist() == [1, 1]
        kept = ~dropped
        torch.testing.assert_close(reduced[modality][kept], full[modality][kept], rtol=1e-5, atol=1e-5)
