"""Protocols on small hand-computed cases, their quirks, and their error messages."""

from __future__ import annotations

import json

import numpy as np
import pytest
from tests.evaluation.eval_helpers import noisy_predictions, random_walk_boxes

from mmtrack_kd.errors import DataError, PluginError
from mmtrack_kd.evaluation import GroundTruth, get_protocol
from mmtrack_kd.evaluation.protocols.builtin import BUILTIN_PROTOCOLS
from mmtrack_kd.evaluation.protocols.depthtrack import DepthTrackProtocol, longterm_thresholds
from mmtrack_kd.evaluation.protocols.gtot import GTOTProtocol
from mmtrack_kd.evaluation.protocols.lasher import LasHeRProtocol
from mmtrack_kd.evaluation.protocols.otb import OTBProtocol
from mmtrack_kd.evaluation.protocols.rgbt234 import RGBT234Protocol
from mmtrack_kd.evaluation.protocols.visevent import VisEventProtocol
from mmtrack_kd.evaluation.protocols.vtuav import VTUAVProtocol
from mmtrack_kd.plugins import default_registry

NAN4 = [np.nan] * 4
BUILTIN = sorted(cls.name for cls in BUILTIN_PROTOCOLS)


def test_registry_names() -> None:
    assert BUILTIN == sorted(
        ["otb", "lasher", "visevent", "rgbt234", "rgbt210", "gtot", "vtuav", "depthtrack"])
    registry = default_registry()
    assert [registry.protocols[name] for name in registry.protocols] == list(BUILTIN_PROTOCOLS)
    assert registry.owner("protocol", "gtot").name == "protocols"
    assert isinstance(get_protocol("gtot"), GTOTProtocol)
    assert isinstance(get_protocol("DepthTrack"), DepthTrackProtocol)  # official spellings too
    with pytest.raises(PluginError, match="unknown protocol 'lashr' \\(did you mean 'lasher'\\?\\)"):
        get_protocol("lashr")


def test_protocols_carry_their_facts() -> None:
    """What the runner, the reports and the comparison with the paper read from a protocol."""
    depth = get_protocol("depthtrack")
    assert depth.needs_confidence and depth.needs_image_size
    assert depth.result_layout.name == "vot-longterm" and depth.headline_score == "F"
    for name in ("otb", "lasher", "visevent", "rgbt234", "rgbt210", "gtot", "vtuav"):
        protocol = get_protocol(name)
        assert not (protocol.needs_confidence or protocol.needs_image_size), name
        assert protocol.result_layout.name == "otb", name
    for cls in BUILTIN_PROTOCOLS:
        assert cls.headline_score in cls.curve_scores.values(), cls.name
    assert get_protocol("vtuav").published_benchmarks == {"vtuav-st": "VTUAV-ST",
                                                         "vtuav-lt": "VTUAV-LT"}
    assert get_protocol("otb").published_benchmarks == {}


def test_otb_hand_case() -> None:
    gt = GroundTruth("s", np.tile([100.0, 100, 40, 40], (5, 1)))
    pred = np.array(
        [[100, 100, 40, 40], [110, 100, 40, 40], [120, 100, 40, 40], [121, 100, 40, 40], NAN4]
    )
    result = OTBProtocol().score({"s": pred}, [gt])
    # centre errors 0, 10, 20, 21, NaN -> P(20) = 3 / 5
    assert result.scores["PR"] == pytest.approx(0.6)
    # IoUs 1, 0.6, 1/3, 0.311, 0: S = 0.8 for theta <= 0.30 (7 values), 0.4 for 0.35..0.55 (5),
    # 0.2 for 0.60..0.95 (8; 0.6 is not > 0.6), 0 at 1
    success = result.curves["success"].mean
    np.testing.assert_allclose(success, [0.8] * 7 + [0.4] * 5 + [0.2] * 8 + [0.0])
    assert result.scores["SR"] == pytest.approx(9.2 / 21)
    assert result.curves["precision"].thresholds[20] == 20


def _lasher_sequence() -> tuple[GroundTruth, np.ndarray]:
    boxes = np.tile([10.0, 10, 20, 20], (6, 1))
    boxes[4] = [0, 10, 20, 20]  # x = 0: an invalid frame for the toolkit
    pred = np.array(
        [
            [500, 500, 1, 1],  # frame 1: replaced by the ground truth
            [12, 10, 20, 20],  # error 2, IoU 360 / 440
            NAN4,  # takes frame 2's box
            [12, 10, 0, 20],  # zero width: takes frame 3's (= frame 2's) box
            [300, 300, 20, 20],  # invalid ground truth: precision hit, success miss
            [np.nan, 10, 20, 20],  # partly NaN: MATLAB keeps it, so it misses
            [10, 10, 20, 20],  # longer than the ground truth: cut
        ]
    )
    return GroundTruth("s1", boxes), pred


def test_lasher_rules_hand_case() -> None:
    gt, pred = _lasher_sequence()
    result = LasHeRProtocol().score({"s1": pred}, [gt])
    assert result.scores["PR"] == pytest.approx(5 / 6)
    assert result.scores["NPR"] == pytest.approx(5 / 6)
    # IoUs 1, .818, .818, .818, never, 0 -> 4/6 for theta <= 0.80 (17), 1/6 for 0.85..0.95 (3)
    assert result.scores["SR"] == pytest.approx((17 * 4 / 6 + 3 / 6) / 21)
    assert result.dropped == {"precision": (), "normalized_precision": (), "success": ()}


def test_lasher_drops_all_zero_curves() -> None:
    gt, pred = _lasher_sequence()
    invalid = GroundTruth("s2", np.tile([0.0, 10, 20, 20], (4, 1)))  # every frame invalid
    result = LasHeRProtocol().score({"s1": pred, "s2": np.tile([5.0, 5, 5, 5], (4, 1))}, [gt, invalid])
    assert result.dropped["success"] == ("s2",)
    assert result.dropped["precision"] == ()
    assert result.scores["SR"] == pytest.approx((17 * 4 / 6 + 3 / 6) / 21)  # s1 alone
    assert result.scores["PR"] == pytest.approx((5 / 6 + 1.0) / 2)  # invalid frames are hits
    np.testing.assert_array_equal(result.curves["success"].per_sequence["s2"], 0.0)


def test_visevent_absent_frames_miss_with_full_denominator() -> None:
    boxes = np.tile([10.0, 10, 20, 20], (4, 1))
    boxes[2] = 0  # absent: written 0,0,0,0
    visible = np.array([True, True, False, True])
    gt = GroundTruth("e", boxes, visible=visible)
    pred = np.tile([10.0, 10, 20, 20], (4, 1))
    lasher = LasHeRProtocol().score({"e": pred}, [gt])
    visevent = VisEventProtocol().score({"e": pred}, [gt])
    assert lasher.scores["PR"] == 1.0  # the 0,0,0,0 frame is "invalid": a hit for LasHeR
    assert visevent.scores["PR"] == pytest.approx(3 / 4)  # absent: a miss, denominator 4
    assert visevent.scores["SR"] == pytest.approx(3 / 4 * 20 / 21)


def test_rgbt234_min_error_max_overlap() -> None:
    visible = np.tile([0.0, 0, 10, 10], (2, 1))
    infrared = np.tile([30.0, 0, 10, 10], (2, 1))
    gt = GroundTruth("r", visible, modality_boxes={"visible": visible, "infrared": infrared})
    pred = np.array([[30.0, 0, 10, 10], [0, 0, 10, 10]])  # matches infrared, then visible
    result = RGBT234Protocol().score({"r": pred}, [gt])
    assert result.scores == {"MPR": 1.0, "MSR": pytest.approx(20 / 21)}
    plain = get_protocol("rgbt210").score({"r": pred}, [gt])
    assert plain.scores["PR"] == pytest.approx(0.5)  # against `boxes` (= visible) only


def test_min_max_protocols_need_modality_boxes() -> None:
    gt = GroundTruth("r", np.tile([0.0, 0, 10, 10], (2, 1)), source="/data/r/init.txt")
    for name in ("rgbt234", "gtot", "vtuav"):
        with pytest.raises(DataError, match="'r'.*init.txt.*per-modality"):
            get_protocol(name).score({"r": gt.boxes}, [gt])


def test_gtot_pooled_hand_case() -> None:
    v = np.tile([0.0, 0, 10, 10], (2, 1))
    a = GroundTruth("a", v, modality_boxes={"v": v, "i": np.tile([2.0, 0, 10, 10], (2, 1))})
    w = np.tile([0.0, 0, 10, 10], (3, 1))
    b = GroundTruth("b", w, modality_boxes={"v": w, "i": w})
    preds = {
        "a": np.array([[2.0, 0, 10, 10], [5, 0, 10, 10]]),  # errors 0, 3; IoUs 1, 7/13
        "b": np.array([[5.0, 0, 10, 10], [4, 3, 10, 10], NAN4]),  # errors 5, 5, inf
    }
    result = GTOTProtocol().score(preds, [a, b])
    # pooled over the 5 frames; 5 px is a miss (strict <): 2 / 5 (per-sequence mean: 0.5)
    assert result.scores["MPR"] == pytest.approx(0.4)
    # trapezoid over 0, 0.02, ..., 1 of IoUs 1, 7/13, 1/3, 42/158, 0:
    # 0.02 * (hits - 1/2) each = 0.99, 0.53, 0.33, 0.27, 0
    assert result.scores["MSR"] == pytest.approx((0.99 + 0.53 + 0.33 + 0.27) / 5)
    assert len(result.curves["success"].thresholds) == 51
    assert result.curves["precision"].thresholds[10] == 5.0
    assert result.sequence_scores["a"]["MPR"] == 1.0
    assert result.details["frames"] == 5


def test_vtuav_every_tenth_frame() -> None:
    n = 25
    v = np.tile([0.0, 0, 10, 10], (n, 1))
    gt = GroundTruth("u", v, modality_boxes={"rgb": v, "ir": np.tile([3.0, 0, 10, 10], (n, 1))})
    pred = np.tile([1000.0, 1000, 5, 5], (n + 5, 1))  # unscored frames may hold anything
    pred[0] = [0, 0, 10, 10]  # frame 1: error 0
    pred[10] = [3, 0, 10, 10]  # frame 11: matches the infrared box
    pred[20] = [30, 0, 10, 10]  # frame 21: 27 px from the infrared box
    result = VTUAVProtocol().score({"u": pred}, [gt])
    assert result.scores["MPR"] == pytest.approx(2 / 3)
    assert result.scores["MSR"] == pytest.approx(20 * (2 / 3) / 21)


def test_depthtrack_hand_case() -> None:
    boxes = np.array([[10.0, 10, 20, 20], [10, 10, 20, 20], NAN4, [10, 10, 20, 20], NAN4])
    gt = GroundTruth("d", boxes, image_size=(640, 360))
    pred = np.array(
        [
            [10.0, 10, 20, 20],  # initialisation frame: scored as the empty marker, overlap 0
            [10, 10, 20, 20],  # overlap 1
            NAN4,  # no box, target absent: overlap 1
            [20, 10, 20, 20],  # overlap 1/3
            [10, 10, 20, 20],  # a box while the target is absent: 0
        ]
    )
    conf = np.array([0.95, 0.9, 0.2, 0.5, 0.7])  # frame 1's value is replaced by 0
    for overlap in ("vot", "continuous"):
        result = DepthTrackProtocol(overlap).score({"d": pred}, [gt], confidences={"d": conf})
        thresholds = result.curves["f_score"].thresholds
        np.testing.assert_array_equal(thresholds, [np.inf, 0.9, 0.7, 0.5, 0.2, 0.0, -np.inf])
        np.testing.assert_allclose(
            result.curves["precision"].mean, [1, 1, 0.5, 4 / 9, 7 / 12, 7 / 15, 7 / 15]
        )
        np.testing.assert_allclose(
            result.curves["recall"].mean, [0, 1 / 3, 1 / 3, 4 / 9, 7 / 9, 7 / 9, 7 / 9]
        )
        assert result.scores == {
            "Pr": pytest.approx(7 / 12),
            "Re": pytest.approx(7 / 9),
            "F": pytest.approx(2 / 3),
        }
        assert result.details["threshold"] == 0.2


def test_longterm_thresholds_large_pool() -> None:
    scores = np.arange(1000, dtype=float)[::-1].copy()
    scores[5] = np.nan  # ignored
    thresholds = longterm_thresholds(scores)
    assert len(thresholds) == 100
    assert thresholds[0] == np.inf and thresholds[-1] == -np.inf
    ordered = np.sort(scores[~np.isnan(scores)])[::-1]
    delta = 999 // 98
    idx = np.round(np.linspace(delta, 999 - delta, 98)).astype(int)
    np.testing.assert_array_equal(thresholds[1:-1], ordered[idx])


def _dataset(rng: np.random.Generator, count: int = 6, n: int = 40) -> tuple[list, dict, dict]:
    gts, preds, confs = [], {}, {}
    for i in range(count):
        boxes = random_walk_boxes(rng, n)
        name = f"q{i}"
        gts.append(
            GroundTruth(
                name,
                boxes,
                modality_boxes={"v": boxes, "i": boxes + 1.5},
                attributes={"odd": i % 2 == 1, "first": i == 0, "none": False},
                image_size=(640, 480),
            )
        )
        preds[name] = noisy_predictions(rng, boxes)
        confs[name] = rng.random(n)
    return gts, preds, confs


@pytest.mark.parametrize("protocol", BUILTIN)
def test_attribute_results_equal_scoring_the_subset(protocol: str) -> None:
    gts, preds, confs = _dataset(np.random.default_rng(3))
    result = get_protocol(protocol).score(preds, gts, confidences=confs)
    assert set(result.per_attribute) == {"odd", "first"}  # no sequence has "none"
    subset = [g for g in gts if g.attributes["odd"]]
    alone = get_protocol(protocol).score(preds, subset, confidences=confs, attributes=False)
    assert result.per_attribute["odd"].scores == pytest.approx(alone.scores)
    assert result.per_attribute["odd"].sequences == ("q1", "q3", "q5")
    for key, curve in result.curves.items():
        assert set(curve.per_sequence) == {g.name for g in gts}
        assert curve.mean.shape == curve.thresholds.shape
    json.dumps(result.to_dict(), allow_nan=False)  # reports are strict JSON


@pytest.mark.parametrize("protocol", BUILTIN)
def test_short_result_names_the_file(protocol: str) -> None:
    gts, preds, confs = _dataset(np.random.default_rng(4), count=2)
    preds["q1"] = preds["q1"][:-3]
    with pytest.raises(DataError, match=r"/results/q1\.txt: 37 boxes for the 40 ground-truth"):
        get_protocol(protocol).score(preds, gts, confidences=confs, files={"q1": "/results/q1.txt"})
    with pytest.raises(DataError, match="result of sequence 'q1': 37 boxes"):
        get_protocol(protocol).score(preds, gts, confidences=confs)


@pytest.mark.parametrize("protocol", BUILTIN)
def test_longer_result_is_cut(protocol: str) -> None:
    gts, preds, confs = _dataset(np.random.default_rng(5), count=3)
    longer = {k: np.concatenate([v, v[:7] + 50]) for k, v in preds.items()}
    longer_conf = {k: np.concatenate([v, v[:7]]) for k, v in confs.items()}
    a = get_protocol(protocol).score(preds, gts, confidences=confs)
    b = get_protocol(protocol).score(longer, gts, confidences=longer_conf)
    assert a.scores == b.scores


def test_missing_result_and_confidences() -> None:
    gts, preds, confs = _dataset(np.random.default_rng(6), count=2)
    del preds["q0"]
    with pytest.raises(DataError, match="no result for sequence 'q0'"):
        OTBProtocol().score(preds, gts)
    gts, preds, confs = _dataset(np.random.default_rng(6), count=2)
    with pytest.raises(DataError, match="needs a confidence per frame"):
        DepthTrackProtocol().score(preds, gts)
    confs["q1"] = confs["q1"][:10]
    with pytest.raises(DataError, match="10 confidence values for the 40"):
        DepthTrackProtocol().score(preds, gts, confidences=confs)
    with pytest.raises(DataError, match="M x 4"):
        OTBProtocol().score({"q0": np.zeros((40, 5)), "q1": preds["q1"]}, gts)


def test_ground_truth_validation() -> None:
    with pytest.raises(DataError, match="'g'.*gt.txt.*N x 4"):
        GroundTruth("g", np.zeros((3, 5)), source="gt.txt")
    with pytest.raises(DataError, match="2 visibility flags for 3 boxes"):
        GroundTruth("g", np.zeros((3, 4)), visible=[True, False])
    gt = GroundTruth("g", [[1, 2, 3, 4], [0, 0, 0, 0], NAN4])
    np.testing.assert_array_equal(gt.visible, [True, False, False])


@pytest.mark.filterwarnings("error")
@pytest.mark.parametrize("protocol", BUILTIN)
def test_nan_and_zero_size_predictions_score_without_warnings(protocol: str) -> None:
    gts, preds, confs = _dataset(np.random.default_rng(8), count=3)
    for pred in preds.values():
        pred[3] = np.nan
        pred[5, 2:] = 0
        pred[7, 2] = -4
    confs["q0"][4] = np.nan
    result = get_protocol(protocol).score(preds, gts, confidences=confs)
    assert all(np.isfinite(v) and 0 <= v <= 1 for v in result.scores.values())
