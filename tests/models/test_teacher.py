"""The two-stream teacher: outputs, gradients through every prompter, independence without them."""

from __future__ import annotations

import itertools
import json

import pytest
import torch

from mmtrack_kd.models import TwoStreamTeacher, build_model

from tests.models.conftest import parameters_without_gradient


@pytest.mark.slow
def test_outputs_and_features(tiny, inputs):
    teacher = TwoStreamTeacher(**tiny)
    templates, searches = inputs()
    out = teacher(templates, searches)
    assert out.score_logits.shape == out.score_map.shape == (2, 1, 8, 8)
    assert out.size_map.shape == out.offset_map.shape == (2, 2, 8, 8)
    assert out.boxes.shape == (2, 4)
    assert out.features is None and out.feature_masks is None
    with_features = teacher(templates, searches, return_features=True)
    assert len(with_features.features) == tiny["depth"]
    # the teacher's two streams side by side: the student's [z_rgb, x_rgb, z_aux, x_aux] layout
    assert all(f.shape == (2, 2 * (16 + 64), 64) for f in with_features.features)
    assert torch.equal(with_features.boxes, out.boxes)
    assert out["boxes"] is out.boxes


SWITCHES = [
    dict(spatial_attention=s, token_attention=t, history=h, layer_type=lt)
    for s, t, h, lt in itertools.product([True, False], [True, False], [True, False], ["conv2d", "linear"])
] + [dict(mplt_compat=True, fusion="conv"), dict(prompters=False)]


@pytest.mark.slow
@pytest.mark.parametrize("switches", SWITCHES, ids=lambda s: ",".join(f"{k}={v}" for k, v in s.items()))
def test_every_parameter_learns(tiny, inputs, loss_fn, switches):
    teacher = TwoStreamTeacher(**tiny, **switches, aux_in_chans=1)
    templates, searches = inputs(aux_chans=1)
    out = teacher(templates, searches, return_features=True)
    loss = loss_fn(out)
    loss.backward()
    assert parameters_without_gradient(teacher) == []
    if switches.get("prompters", True):
        assert any(name.startswith("aux_prompters.0.") for name, _ in teacher.named_parameters())


def test_without_prompters_it_is_two_independent_passes(tiny, inputs, random_weights):
    teacher = random_weights(TwoStreamTeacher(**tiny, prompters=False)).eval()
    assert not any("prompter" in name for name in teacher.state_dict())
    templates, searches = inputs()
    out = teacher(templates, searches, return_features=True)
    passes = [teacher.backbone(templates[m], searches[m], m, return_features=True) for m in range(2)]
    halves = [tokens[:, 16:] for tokens, _ in passes]
    expected = teacher.box_head(teacher.fusion(halves, (8, 8)))
    assert torch.allclose(out.score_logits, expected.score_logits, atol=1e-5)
    assert torch.allclose(out.boxes, expected.boxes, atol=1e-5)
    for layer, feature in enumerate(out.features):
        assert torch.allclose(feature, torch.cat([passes[0][1][layer], passes[1][1][layer]], dim=1), atol=1e-5)


def test_prompts_make_the_streams_talk(tiny, inputs, random_weights):
    teacher = random_weights(TwoStreamTeacher(**tiny)).eval()
    templates, searches = inputs()
    base = teacher(templates, searches, return_features=True)
    changed_aux = [searches[0], searches[1] + 1.0]
    out = teacher(templates, changed_aux, return_features=True)
    rgb_tokens = slice(0, 16 + 64)
    assert not torch.allclose(out.features[-1][:, rgb_tokens], base.features[-1][:, rgb_tokens])


def test_config_rebuilds_the_model_and_inputs_are_checked(tiny, inputs):
    teacher = TwoStreamTeacher(**tiny, history=False, layer_type="linear")
    rebuilt = build_model("teacher", json.loads(json.dumps(teacher.config)))
    rebuilt.load_state_dict(teacher.state_dict())
    assert rebuilt.config == teacher.config
    templates, searches = inputs()
    with pytest.raises(ValueError, match="one per modality"):
        teacher(templates[:1], searches[:1])
    with pytest.raises(ValueError, match=r"searches\[1\]"):
        teacher(templates, [searches[0], searches[1][:, :1]])


def test_set_template_then_track_equals_forward(tiny, inputs, random_weights):
    teacher = random_weights(TwoStreamTeacher(**tiny)).eval()
    templates, searches = inputs(batch=1)
    teacher.set_template(templates)
    tracked = teacher.track(searches)
    with torch.no_grad():
        direct = teacher(templates, searches)
    assert torch.equal(tracked.boxes, direct.boxes)
    assert "_template_patches" not in teacher.state_dict()
