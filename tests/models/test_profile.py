"""Parameter and FLOP counting, dummy inputs."""

from __future__ import annotations

import pytest

from mmtrack_kd.models import OneStreamStudent, TwoStreamTeacher
from mmtrack_kd.models.profile import count_flops, count_parameters, dummy_inputs


def test_dummy_inputs_follow_the_model(tiny):
    templates, searches = dummy_inputs(OneStreamStudent(**tiny, aux_in_chans=1), batch_size=3)
    assert [t.shape for t in templates] == [(3, 3, 64, 64), (3, 1, 64, 64)]
    assert [s.shape for s in searches] == [(3, 3, 128, 128), (3, 1, 128, 128)]
    templates, _ = dummy_inputs(OneStreamStudent(**tiny, num_modalities=1))
    assert len(templates) == 1


def test_parameter_counts(tiny):
    student = OneStreamStudent(**tiny)
    total, trainable = count_parameters(student)
    assert total == sum(p.numel() for p in student.parameters()) == trainable
    student.backbone.requires_grad_(False)
    assert count_parameters(student)[1] == total - sum(p.numel() for p in student.backbone.parameters())


@pytest.mark.slow
def test_flops_are_counted_not_guessed(tiny):
    single = OneStreamStudent(**tiny, num_modalities=1)
    flops = count_flops(single)
    # the linear layers of the blocks alone: 2 * tokens * (qkv + proj + fc1 + fc2) MACs per block
    d, n = 64, 16 + 64
    linear = 2 * n * (3 * d * d + d * d + 2 * 4 * d * d) * tiny["depth"]
    assert flops > linear
    student, teacher = OneStreamStudent(**tiny), TwoStreamTeacher(**tiny)
    assert count_flops(student) > flops and count_flops(teacher) > flops
    assert count_flops(single, batch_size=2) == 2 * flops
