"""The scoring benchmark runs every protocol and reports a time for each."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np

from mmtrack_kd.evaluation import GroundTruth
from mmtrack_kd.evaluation.bench import benchmark, synthetic_data
from mmtrack_kd.plugins import default_registry


def test_benchmark_small() -> None:
    figures = benchmark(sequences=12, frames=40)
    assert [f.protocol for f in figures] == list(default_registry().protocols)
    for figure in figures:
        assert figure.seconds > 0 and figure.frames_per_second > 0
        assert (figure.sequences, figure.frames) == (12, 40)


def test_synthetic_data_shapes() -> None:
    gts, preds, confs = synthetic_data(sequences=3, frames=25, attributes=2)
    assert [len(g) for g in gts] == [25, 25, 25]
    assert set(preds) == set(confs) == {g.name for g in gts}
    assert set(gts[0].modality_boxes) == {"visible", "infrared"}
    assert set(gts[0].attributes) == {"A0", "A1"}


def test_ground_truth_from_a_sequence_object() -> None:
    sequence = SimpleNamespace(
        name="bike",
        boxes=np.ones((3, 4)),
        visible=np.array([True, False, True]),
        modality_boxes={"visible": np.ones((3, 4)), "thermal": np.ones((3, 4))},
        attributes={"TC": True},
        path="/data/bike",
    )
    gt = GroundTruth.from_sequence(sequence, image_size=(640, 360))
    assert gt.name == "bike" and gt.source == "/data/bike" and gt.image_size == (640, 360)
    np.testing.assert_array_equal(gt.visible, [True, False, True])
    assert list(gt.modality_boxes) == ["visible", "thermal"] and gt.attributes == {"TC": True}
