"""Reading records: headline scores, spreads, suspect evaluations, teacher files and the
per-frame stream check."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

import mmtrack_kd.experiments.analysis as analysis
from mmtrack_kd.experiments.analysis import (fast_evaluations, finite, finite_mean, format_stats, headline,
                                             headline_score, reading_key, records_of, reliance_flag,
                                             retrained_teacher_reading, retrained_teacher_score, stream_reliance,
                                             summary_keys, teacher_file, teacher_job_of)
from tests.experiments.helpers import make_record


def test_finite_keeps_numbers_only() -> None:
    assert finite("2.5") == 2.5 and finite(3) == 3.0
    assert finite(None) is None and finite("x") is None and finite(float("nan")) is None
    assert finite(float("-inf")) is None


def test_format_stats_prints_mean_and_range_and_skips_missing_values() -> None:
    assert format_stats([]) == "-" and format_stats([None, float("nan")]) == "-"
    assert format_stats([72.66]) == "72.7"
    assert format_stats([56.8, 72.7]) == "64.8 (56.8-72.7, n=2)"
    assert format_stats([1.0, None, 3.0, float("inf")]) == "2.0 (1.0-3.0, n=2)"
    assert finite_mean([1.0, None, 3.0, float("nan")]) == 2.0 and finite_mean([None]) is None


def test_headline_reads_each_protocols_keys_in_percent() -> None:
    lasher = make_record("student", 0, 70.0)
    assert headline(lasher) == pytest.approx({"PR": 70.0, "SR": 35.0}) and headline_score(lasher) == pytest.approx(70.0)
    rgbt234 = {"evaluation": {"x": {"scores": {"MPR": 0.8, "MSR": 0.6, "NPR": float("nan")}}}}
    assert headline(rgbt234) == pytest.approx({"PR": 80.0, "SR": 60.0})  # printed as PR / SR; NaN left out
    depthtrack = {"evaluation": {"x": {"scores": {"Pr": 0.5, "Re": 0.4, "F": 0.45}}}}
    assert headline_score(depthtrack) == pytest.approx(45.0)  # F, not precision
    assert headline_score({"evaluation": {"x": {"scores": {}}}}) is None


@pytest.mark.parametrize(("protocol", "scores", "read_on", "shown"), [
    ("lasher", {"PR": 0.7, "NPR": 0.6, "SR": 0.5}, "PR", ("PR", "SR")),
    ("gtot", {"MPR": 0.7, "MSR": 0.5}, "MPR", ("MPR", "MSR")),
    ("depthtrack", {"Pr": 0.5, "Re": 0.4, "F": 0.45}, "F", ("F",)),
    # no protocol stored, or one no loaded plugin registers: read from the keys the scores have
    (None, {"MPR": 0.7, "MSR": 0.5}, "MPR", ("MPR", "MSR")),
    ("not-installed", {"Pr": 0.5, "Re": 0.4, "F": 0.45}, "F", ("F",)),
])
def test_the_protocol_says_which_score_a_record_is_read_on(protocol, scores, read_on, shown) -> None:
    assert reading_key(scores, protocol) == read_on and summary_keys(scores, protocol) == shown
    evaluation = {"scores": scores} if protocol is None else {"scores": scores, "protocol": protocol}
    assert headline_score({"evaluation": {"x": evaluation}}) == pytest.approx(100 * scores[read_on])


def test_records_of_picks_one_arm_on_one_modality() -> None:
    records = [make_record("student", 0, 1.0), make_record("student", 0, 2.0, modality="rgbd"),
               make_record("student", 1, 3.0), make_record("fost", 0, 4.0)]
    assert [r["id"] for r in records_of(records, "rgbt", "student")] == ["rgbt-student-s0", "rgbt-student-s1"]
    assert records_of(records, "rgbe", "student") == []


def test_fast_evaluations_point_at_reused_boxes() -> None:
    records = [dict(make_record(f"teacher-{i}", 0, 60.0), eval_s=t) for i, t in enumerate((21.0, 37.0, 30.0, 1.06))]
    records.append(dict(make_record("student", 0, 80.0), eval_s=1.0))  # alone in its stage: not judged
    records.append(dict(make_record("teacher-x", 0, 60.0), eval_s=None))  # no time: not judged
    assert fast_evaluations(records) == ["rgbt-teacher-3-s0"]
    assert fast_evaluations(records, fraction=0.01) == []
    assert fast_evaluations(records[3:]) == []  # fewer than three timed evaluations of a stage


def test_teacher_file_helpers_read_which_file_a_student_distilled_from() -> None:
    run = make_record("student", 0, 80.0, teacher="out/runs/rgbt-teacher-s0/teacher/best.pt",
                      teacher_sha256="ab" * 8, teacher_retrained=False)
    kept = make_record("student", 1, 80.0, teacher="docs/teachers/rgbt-teacher-s1/best.pt",
                       teacher_sha256="cd" * 8, teacher_retrained=True,
                       teacher_scores={"synthetic": {"PR": 0.62, "SR": 0.3}})
    old = make_record("student", 2, 80.0, teacher="out/runs/rgbt-teacher-s2/teacher/best.pt")
    fost = make_record("fost", 0, 50.0, teacher=None)
    assert [teacher_job_of(r) for r in (run, kept, old, fost)] == ["rgbt-teacher-s0", "rgbt-teacher-s1",
                                                                   "rgbt-teacher-s2", None]
    assert [teacher_file(r) for r in (run, kept, old, fost)] == ["ab" * 8, "cd" * 8, "unrecorded", None]
    assert retrained_teacher_score(run) is None and retrained_teacher_score(kept) == pytest.approx(62.0)
    depth = dict(kept, teacher_scores={"synthetic": {"Pr": 0.5, "F": 0.4}})
    assert retrained_teacher_score(depth) == pytest.approx(40.0)  # F on DepthTrack's protocol
    assert retrained_teacher_score(dict(kept, teacher_scores=None)) is None
    # the teacher's scores are read on the protocol the record scored that test set with
    gtot = dict(kept, evaluation={"synthetic": {"protocol": "gtot", "scores": {"MPR": 0.7, "MSR": 0.5}}},
                teacher_scores={"synthetic": {"MPR": 0.6, "MSR": 0.4}})
    assert retrained_teacher_reading(gtot) == ("MPR", pytest.approx(60.0))
    assert retrained_teacher_reading(run) is None


@pytest.mark.parametrize(("rgb", "aux", "base", "flag"), [
    (40.0, 60.0, 50.0, "under-uses RGB"),   # more than the margin below the baseline
    (44.9, 60.0, 50.0, "under-uses RGB"),
    (45.0, 54.0, 50.0, ""),                 # exactly at the margin: no flag
    (46.0, 80.0, 50.0, "leans on the auxiliary stream"),  # near the baseline, far below its aux
    (46.0, 56.0, 50.0, ""),                 # exactly twice the margin below its aux: no flag
    (46.0, 55.0, 50.0, ""),                 # within both margins
    (30.0, 80.0, None, "leans on the auxiliary stream"),  # no baseline run
    (30.0, None, None, ""),
    (None, 80.0, 50.0, ""),
])
def test_reliance_flags(rgb, aux, base, flag) -> None:
    assert reliance_flag(rgb, aux, base).startswith(flag) and bool(reliance_flag(rgb, aux, base)) == bool(flag)


def test_stream_reliance_scores_each_kind_of_frame(monkeypatch: pytest.MonkeyPatch) -> None:
    """Frame 0 is left out; a frame without a box counts as a miss; a frame whose truth has no
    box is not counted."""
    truth = np.array([[10, 10, 20, 20]] * 6, dtype=float)
    truth[5] = np.nan
    boxes = truth.copy()
    boxes[1] += [100, 0, 0, 0]          # rgb frame: far off (miss on both)
    boxes[3] += [5, 0, 0, 0]            # aux frame: centre 5 px off, IoU 15/25 of the width: hit
    boxes[4] = [0, 0, 0, 0]             # aux frame: no box
    dominant = ["both", "rgb", "rgb", "aux", "aux", "aux"]
    dataset = SimpleNamespace(protocol="lasher", truth=lambda name: {"dominant": dominant})
    monkeypatch.setattr(analysis, "load_ground_truths", lambda _: [SimpleNamespace(name="seq", boxes=truth)])
    monkeypatch.setattr(analysis, "_result_boxes", lambda folder, protocol, name: boxes)
    out = stream_reliance(dataset, Path("unused"))
    assert out["rgb"] == {"frames": 2, "PR": 0.5, "SR": 0.5}
    assert out["aux"] == {"frames": 2, "PR": 0.5, "SR": 0.5}
    assert out["both"]["frames"] == 0 and np.isnan(out["both"]["PR"])
    # data without the dominant stream's truth is not checked
    assert stream_reliance(SimpleNamespace(protocol="lasher"), Path("unused")) is None
    dataset.truth = lambda name: {}
    assert stream_reliance(dataset, Path("unused")) is None
