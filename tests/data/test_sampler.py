"""Pair sampling: visibility, max_gap, dataset weights, determinism."""

from __future__ import annotations

import logging

import numpy as np
import pytest

from mmtrack_kd.data.sampler import PairSampler, template_candidates, usable_frames
from mmtrack_kd.data.sequence import Sequence
from mmtrack_kd.errors import DataError


def annotated(name: str, visible, dataset: str = "toy", boxes=None) -> Sequence:
    """A sequence with annotations only (the sampler never reads frames)."""
    visible = np.asarray(visible, dtype=bool)
    n = len(visible)
    if boxes is None:
        boxes = np.tile([10.0, 10.0, 20.0, 20.0], (n, 1))
    return Sequence(name=name, dataset=dataset, frames={}, boxes=np.asarray(boxes, float),
                    visible=visible)


def test_draws_respect_visibility_and_max_gap():
    rng = np.random.default_rng(0)
    visible = rng.random(300) < 0.6
    sequence = annotated("a", visible)
    sampler = PairSampler([("toy", [sequence], 1.0)], max_gap=7)
    gaps = []
    for _ in range(3000):
        draw = sampler.draw(rng)
        assert visible[draw.template] and visible[draw.search]
        assert 1 <= draw.gap <= 7
        gaps.append(draw.gap)
    assert max(gaps) == 7 and min(gaps) == 1


def test_interval_mode_looks_both_ways():
    rng = np.random.default_rng(1)
    visible = rng.random(200) < 0.7
    sampler = PairSampler([("toy", [annotated("a", visible)], 1.0)], max_gap=5, mode="interval")
    gaps = [sampler.draw(rng).gap for _ in range(2000)]
    assert min(gaps) == -5 and max(gaps) == 5 and 0 not in gaps


def test_gap_is_inclusive_and_unreachable_sequences_are_dropped(caplog):
    only_two = annotated("two", [True, False, False, False, False, True])
    sampler = PairSampler([("toy", [only_two], 1.0)], max_gap=5)
    draw = sampler.draw(np.random.default_rng(0))
    assert (draw.template, draw.search) == (0, 5)
    with pytest.raises(DataError, match="toy: none of its 1 sequences"):
        PairSampler([("toy", [only_two], 1.0)], max_gap=4)
    fine = annotated("fine", [True] * 10)
    with caplog.at_level(logging.WARNING):
        sampler = PairSampler([("toy", [only_two, fine], 1.0)], max_gap=4)
    assert len(sampler) == 1
    assert "1 of 2 sequences" in caplog.text


def test_zero_size_and_nan_boxes_count_as_invisible():
    boxes = np.tile([10.0, 10.0, 20.0, 20.0], (6, 1))
    boxes[1, 2] = 0.0
    boxes[2] = np.nan
    sequence = annotated("a", [True] * 6, boxes=boxes)
    np.testing.assert_array_equal(usable_frames(sequence), [1, 0, 0, 1, 1, 1])
    usable = usable_frames(sequence)
    np.testing.assert_array_equal(template_candidates(usable, 2, "causal"), [3, 4])
    np.testing.assert_array_equal(template_candidates(usable, 3, "causal"), [0, 3, 4])


def test_max_gap_zero_pairs_a_frame_with_itself():
    sampler = PairSampler([("toy", [annotated("a", [False, True, True])], 1.0)], max_gap=0)
    draw = sampler.draw(np.random.default_rng(0))
    assert draw.template == draw.search and draw.template in (1, 2)


def test_datasets_are_chosen_by_weight():
    a = [annotated(f"a{k}", [True] * 20, dataset="a") for k in range(3)]
    b = [annotated(f"b{k}", [True] * 20, dataset="b") for k in range(30)]
    sampler = PairSampler([("a", a, 3.0), ("b", b, 1.0)], max_gap=5)
    rng = np.random.default_rng(0)
    sources = np.array([sampler.draw(rng).source for _ in range(4000)])
    assert (sources == 0).mean() == pytest.approx(0.75, abs=0.03)
    np.testing.assert_allclose(sampler.probabilities, [0.75, 0.25])


def test_draws_are_a_function_of_the_generator():
    rng = np.random.default_rng(5)
    sequences = [annotated(f"s{k}", rng.random(50) < 0.8) for k in range(5)]
    sampler = PairSampler([("toy", sequences, 1.0)], max_gap=10)

    def draws(seed):
        g = np.random.default_rng(seed)
        pairs = [sampler.draw(g) for _ in range(50)]
        return [(d.sequence.name, d.template, d.search) for d in pairs]

    assert draws(1) == draws(1)
    assert draws(1) != draws(2)


def test_no_datasets_is_an_error():
    with pytest.raises(DataError, match="no training datasets"):
        PairSampler([], max_gap=5)
