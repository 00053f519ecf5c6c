"""Claims read from measured noise: verdicts over one, two and more seeds, the interval's parts,
and the edge cases of the reading."""

from __future__ import annotations

import math
import statistics

import numpy as np
import pytest

from mmtrack_kd.experiments.claims import (VERDICTS, Claim, Reading, paired_bootstrap_var, read_claim,
                                           seed_runs, seed_variance, training_runs, verdict_of)
from tests.experiments.helpers import make_record

BEATS = Claim("c", "student", "fost")


def arms(student: tuple[float, ...], fost: tuple[float, ...], **kwargs) -> list[dict]:
    """Records of ``student`` and ``fost``, seed i scoring the i-th value."""
    return ([make_record("student", s, v, **kwargs) for s, v in enumerate(student)]
            + [make_record("fost", s, v, **kwargs) for s, v in enumerate(fost)])


@pytest.mark.parametrize(("kind", "low", "high", "seeds", "verdict"), [
    ("beats", 0.5, 3.0, 2, "holds"),
    ("beats", 0.5, 3.0, 1, "suggestive"),
    ("beats", -3.0, -0.5, 3, "reversed"),
    ("beats", -3.0, -0.5, 1, "suggestive reversed"),
    ("beats", 0.0, 3.0, 5, "not resolved"),      # an interval touching zero does not exclude it
    ("beats", -3.0, 0.0, 5, "not resolved"),
    ("beats", -3.0, 3.0, 1, "not resolved"),
    ("matches", -1.0, 1.0, 2, "match"),
    ("matches", -1.0, 1.0, 1, "match suggestive"),
    ("matches", -3.0, -0.5, 2, "below"),
    ("matches", -3.0, -0.5, 1, "below suggestive"),
    ("matches", 0.5, 3.0, 2, "above"),           # a resolved gain is no match either
    ("matches", 0.5, 3.0, 1, "above suggestive"),
    ("beats", None, None, 4, "unmeasured"),
    ("matches", None, None, 1, "unmeasured"),
])
def test_verdict_of_an_interval(kind, low, high, seeds, verdict) -> None:
    assert verdict_of(kind, low, high, seeds) == verdict
    if seeds == 1:
        assert "**" not in VERDICTS[verdict_of(kind, low, high, seeds)]  # never bold on one seed


def test_one_seed_is_never_stronger_than_suggestive() -> None:
    """However large a one-seed difference and however quiet the other arms, it is suggestive."""
    quiet = [make_record("fost", s, 50.0 + 0.1 * s) for s in (0, 1)]  # a measured, tiny spread
    for kind in ("beats", "matches"):
        for pr in (90.0, 50.05, 10.0):
            reading = read_claim(quiet + [make_record("student", 0, pr)], Claim("c", "student", "fost", kind))
            assert reading.seeds == (0,) and reading.verdict in (
                "suggestive", "suggestive reversed", "not resolved", "match suggestive",
                "above suggestive", "below suggestive"), reading.verdict
            assert "**" not in reading.line.split("->")[1]  # no bold 'holds' / 'does not hold'
            assert "1 seed (0)" in reading.line


@pytest.mark.parametrize(("a", "b", "kind", "verdict"), [
    # two seeds each, paired; spreads are what the arms' two seeds show
    ((80.0, 82.0), (50.0, 51.0), "beats", "holds"),
    ((50.0, 51.0), (80.0, 82.0), "beats", "reversed"),
    ((60.0, 75.0), (58.0, 70.0), "beats", "not resolved"),       # +3.5 inside a wide spread
    ((72.0, 45.0), (44.0, 52.0), "beats", "not resolved"),       # +28.8 and -7: the seeds disagree
    ((71.0, 71.5), (70.5, 71.5), "matches", "match"),
    ((60.0, 61.0), (70.0, 71.0), "matches", "below"),
    ((90.0, 91.0), (70.0, 71.0), "matches", "above"),           # a gain is no match either
    # three seeds
    ((80.0, 82.0, 81.0), (50.0, 51.0, 52.0), "beats", "holds"),
    ((80.0, 50.0, 81.0), (50.0, 80.0, 52.0), "beats", "not resolved"),  # one seed reverses it
    ((70.0, 72.0, 71.0), (70.5, 71.5, 71.0), "matches", "match"),
])
def test_claims_over_several_seeds_follow_their_interval(a, b, kind, verdict) -> None:
    reading = read_claim(arms(a, b), Claim("c", "student", "fost", kind))
    n = len(a)
    assert reading.verdict == verdict
    assert reading.seeds == tuple(range(n)) and f"{n} seeds ({', '.join(map(str, range(n)))})" in reading.line
    assert reading.diff == pytest.approx(statistics.fmean(x - y for x, y in zip(a, b)))
    assert reading.low <= reading.diff <= reading.high
    assert reading.diff - reading.low == pytest.approx(reading.high - reading.diff)  # symmetric
    assert f"interval {reading.low:+.1f} to {reading.high:+.1f}" in reading.line
    assert VERDICTS[verdict] in reading.line
    if verdict in ("holds", "above"):
        assert reading.low > 0
    if verdict in ("reversed", "below"):
        assert reading.high < 0
    if verdict in ("not resolved", "match"):
        assert reading.low <= 0 <= reading.high


def test_the_interval_is_the_difference_plus_minus_two_standard_errors() -> None:
    """Both arms measured over two runs and no per-sequence scores: the variance of one seed's
    difference is the sum of the arms' variances, and the mean over n seeds divides it by n."""
    reading = read_claim(arms((80.0, 84.0), (50.0, 52.0)), BEATS)
    var = statistics.variance([80.0, 84.0]) + statistics.variance([50.0, 52.0])
    assert reading.high - reading.diff == pytest.approx(1.96 * math.sqrt(var / 2))
    assert "student sd 2.8 over 2 runs, fost sd 1.4 over 2 runs" in reading.noise


def test_the_interval_widens_with_the_seed_spread_and_narrows_with_more_seeds() -> None:
    def width(student, fost):
        reading = read_claim(arms(student, fost), BEATS)
        return reading.high - reading.low

    assert width((80, 84), (50, 54)) > width((80, 81), (50, 51))
    assert width((80, 84, 80, 84), (50, 54, 50, 54)) < width((80, 84), (50, 54))


def test_seed_variance_takes_the_seeds_differences_where_they_vary_more() -> None:
    """Two arms that move together over seeds have a small spread each, but if their paired
    differences swing more than that, the differences' own variance is the noise."""
    records = arms((80.0, 60.0), (60.0, 80.0))  # each arm sd 14.1; differences +20 and -20
    var, parts = seed_variance(records, BEATS, [20.0, -20.0])
    assert var == pytest.approx(statistics.variance([20.0, -20.0])) and "vary more: sd 28.3" in parts[0]
    var, parts = seed_variance(records, BEATS, [20.0, 19.0])
    assert var == pytest.approx(2 * statistics.variance([80.0, 60.0])) and "vary more" not in parts[0]


def test_a_one_run_arm_borrows_the_larger_of_the_other_arms_spread_and_the_pooled_one() -> None:
    records = [make_record("student", 0, 80.0), make_record("student", 1, 81.0), make_record("fost", 0, 50.0),
               make_record("teacher", 0, 60.0), make_record("teacher", 1, 70.0)]  # teacher: the wider spread
    var, parts = seed_variance(records, BEATS, [30.0])
    pooled = (statistics.variance([80.0, 81.0]) + statistics.variance([60.0, 70.0])) / 2
    assert var == pytest.approx(statistics.variance([80.0, 81.0]) + pooled)
    assert "the one-run arm sd" in parts[0] and "pooled if larger" in parts[0]
    quiet = records[:3] + [make_record("teacher", 0, 60.0), make_record("teacher", 1, 60.2)]
    var, _ = seed_variance(quiet, BEATS, [30.0])
    assert var == pytest.approx(2 * statistics.variance([80.0, 81.0]))  # the other arm's is larger


def test_edge_cases_of_the_claim_reading() -> None:
    # no arm run, one arm run, arms on disjoint seeds: not run
    assert read_claim([], BEATS) == Reading(BEATS) and read_claim([], BEATS).verdict == "not run"
    assert read_claim([make_record("student", 0, 80.0)], BEATS).line == "- c: **not run**"
    assert read_claim([make_record("student", 0, 80.0), make_record("fost", 1, 50.0)], BEATS).verdict == "not run"
    # only the seeds both ran are paired; the unpaired seed still measures the arm's spread
    records = [make_record("student", 0, 80.0), make_record("student", 1, 84.0), make_record("fost", 0, 50.0)]
    reading = read_claim(records, BEATS)
    assert reading.seeds == (0,) and reading.diff == pytest.approx(30.0) and "over 2 runs" in reading.line
    # no arm anywhere has two runs: no interval, and never more than suggestive
    reading = read_claim([make_record("student", 0, 80.0), make_record("fost", 0, 50.0)], BEATS)
    assert reading.low is None and reading.verdict == "unmeasured" and "not measured" in reading.line
    assert "no interval" in reading.line and "suggestive at most" in reading.line
    # both arms one run: the spread of the arms that have two runs is pooled, and said so
    reading = read_claim([make_record("student", 0, 80.0), make_record("fost", 0, 50.0),
                          make_record("teacher", 0, 60.0), make_record("teacher", 1, 64.0)], BEATS)
    assert "pooled over 1 arms" in reading.line and reading.verdict == "suggestive"
    # a non-finite score is left out
    reading = read_claim([make_record("student", 0, float("nan")), make_record("fost", 0, 50.0)], BEATS)
    assert reading.verdict == "not run"
    # two seeds run, one of them without a score: read on the other seed only
    records = arms((80.0, float("nan")), (50.0, 51.0)) + [make_record("teacher", s, 60.0 + s) for s in (0, 1)]
    assert read_claim(records, BEATS).seeds == (0,)


def test_a_claim_reads_its_metric_and_modality() -> None:
    records = [dict(make_record("student", s, 80.0 + s, modality="rgbd"),
                    evaluation={"synthetic": {"scores": {"Pr": 0.9, "Re": 0.1, "F": 0.50 + 0.01 * s}}})
               for s in (0, 1)]
    records += [dict(make_record("fost", s, 70.0, modality="rgbd"),
                     evaluation={"synthetic": {"scores": {"Pr": 0.1, "Re": 0.9, "F": 0.40 + 0.01 * s}}})
                for s in (0, 1)]
    records += arms((10.0, 11.0), (90.0, 91.0))  # the same arms on rgbt: not read
    depth = read_claim(records, Claim("c", "student", "fost", modality="rgbd"))
    assert depth.diff == pytest.approx(10.0) and depth.verdict == "holds"  # F, not Pr or Re
    recall = read_claim(records, Claim("c", "student", "fost", modality="rgbd", metric="Re"))
    assert recall.diff == pytest.approx(-80.0) and recall.verdict == "reversed"
    success = read_claim(arms((80.0, 82.0), (50.0, 52.0)), Claim("c", "student", "fost", metric="SR"))
    assert success.diff == pytest.approx(15.0)  # SR is half the PR in these records


def test_the_sequence_bootstrap_adds_test_set_noise_where_per_sequence_scores_are_kept() -> None:
    names = [f"seq{i}" for i in range(20)]
    rng = np.random.default_rng(0)
    base = {n: float(v) for n, v in zip(names, rng.uniform(20, 90, 20))}
    # paired: a constant shift has no variance however scattered the sequences are
    assert paired_bootstrap_var({n: v + 5 for n, v in base.items()}, base) == pytest.approx(0.0)
    noisy = {n: v + float(rng.normal(5, 10)) for n, v in base.items()}
    assert paired_bootstrap_var(noisy, base) > 1.0
    assert paired_bootstrap_var(noisy, base) == paired_bootstrap_var(noisy, base)  # fixed seed
    assert paired_bootstrap_var({"a": 1.0}, {"a": 2.0}) is None
    assert paired_bootstrap_var({"a": 1.0, "b": 2.0}, {"b": 2.0, "c": 1.0}) is None  # one shared

    def reading(per_sequence: bool):
        records = []
        for seed in (0, 1):
            records.append(make_record("student", seed, 80.0 + seed, sequences=noisy if per_sequence else None))
            records.append(make_record("fost", seed, 75.0 + seed, sequences=base if per_sequence else None))
        return read_claim(records, BEATS)

    with_boot, without = reading(True), reading(False)
    assert "sequence bootstrap on 2 of 2 seeds" in with_boot.line
    assert "no sequence bootstrap (per-sequence scores not recorded)" in without.line
    assert with_boot.high - with_boot.low > without.high - without.low


def test_the_bootstrap_reads_the_protocols_own_key() -> None:
    """RGBT234 keeps MPR per sequence; a PR claim bootstraps on it."""
    def record(arm: str, seed: int, shift: float) -> dict:
        sequences = {f"s{i}": {"MPR": (40 + 3 * i + shift * (i % 2)) / 100} for i in range(6)}
        return dict(make_record(arm, seed, 60.0),
                    evaluation={"x": {"scores": {"MPR": 0.6 + seed / 100}, "sequence_scores": sequences}})

    records = [record("student", s, 10.0) for s in (0, 1)] + [record("fost", s, 0.0) for s in (0, 1)]
    assert "sequence bootstrap on 2 of 2 seeds" in read_claim(records, BEATS).line


def test_a_student_is_read_against_the_teacher_file_it_distilled_from() -> None:
    """'student nearly matches the teacher': a student of a retrained teacher is compared with
    that teacher file's own score, not with the first teacher's record."""
    claim = Claim("c", "student", "teacher", "matches")
    teacher = make_record("teacher", 0, 70.0)
    same = make_record("student", 0, 72.0, teacher="t.pt", teacher_sha256="a" * 16, teacher_retrained=False)
    reading = read_claim([teacher, same], claim)
    assert reading.diff == pytest.approx(2.0) and "retrained" not in reading.line
    other = make_record("student", 0, 72.0, teacher="runs/rgbt-teacher-s0/teacher/best.pt", teacher_sha256="b" * 16,
                        teacher_retrained=True, teacher_scores={"synthetic": {"PR": 0.60, "SR": 0.3}})
    reading = read_claim([teacher, other], claim)
    assert reading.diff == pytest.approx(12.0) and "against the retrained teacher file" in reading.line
    # the retrained file was scored overall only: no bootstrap on that seed
    assert "no sequence bootstrap" in reading.line


def test_teacher_retrained_files_count_as_runs_and_ablations_read_their_mean() -> None:
    """A teacher arm's retrained files are further training runs of it; a teacher ablation is
    read against the mean of the teacher's runs of the same seed, and the line lists them."""
    retrained = dict(teacher="runs/rgbt-teacher-s0/teacher/best.pt", teacher_sha256="a" * 16,
                     teacher_retrained=True, teacher_scores={"synthetic": {"PR": 0.62, "SR": 0.3}})
    records = [make_record("teacher", 0, 72.7), make_record("teacher", 1, 56.8),
               make_record("teacher-no-spatial", 0, 56.0),
               make_record("student", 0, 80.0, **retrained), make_record("student-ce", 0, 10.0, **retrained)]
    assert sorted(training_runs(records, "rgbt", "teacher", None)) == pytest.approx([56.8, 62.0, 72.7])  # once
    kept = make_record("student-half", 1, 70.0, teacher="docs/teachers/rgbt-teacher-s1/best.pt",
                       teacher_sha256="c" * 16, teacher_retrained=True,
                       teacher_scores={"synthetic": {"PR": 0.69, "SR": 0.3}})
    assert sorted(training_runs(records + [kept], "rgbt", "teacher", None)) == pytest.approx([56.8, 62.0, 69.0, 72.7])
    assert training_runs(records, "rgbd", "teacher", None) == []
    line = read_claim(records, Claim("c", "teacher", "teacher-no-spatial")).line
    assert "teacher sd" in line and "over 3 runs" in line
    reading = read_claim(records, Claim("c", "teacher", "teacher-no-spatial"))
    assert reading.diff == pytest.approx((72.7 + 62.0) / 2 - 56.0)
    assert "teacher seed 0 read at the mean of its 2 training runs (72.7, 62.0" in reading.line
    assert "no sequence bootstrap" in reading.line  # the retrained file was scored overall only
    # a seed trained once is read at its record, and the other arm's side is averaged the same way
    once = [make_record("teacher", 1, 56.8), make_record("teacher-no-spatial", 1, 50.0)]
    assert read_claim(once, Claim("c", "teacher", "teacher-no-spatial")).diff == pytest.approx(6.8)
    flipped = read_claim(records, Claim("c", "teacher-no-spatial", "teacher"))
    assert flipped.diff == pytest.approx(56.0 - (72.7 + 62.0) / 2)


def test_seed_runs_lists_one_seeds_training_runs_each_file_once() -> None:
    retrained = dict(teacher="runs/rgbt-teacher-s0/teacher/best.pt", teacher_sha256="a" * 16,
                     teacher_retrained=True, teacher_scores={"synthetic": {"PR": 0.62, "SR": 0.3}})
    records = [make_record("teacher", 0, 72.7), make_record("teacher", 1, 56.8),
               make_record("student", 0, 80.0, **retrained), make_record("student-ce", 0, 10.0, **retrained)]
    assert seed_runs(records, "rgbt", "teacher", 0, None) == pytest.approx([72.7, 62.0])
    assert seed_runs(records, "rgbt", "teacher", 1, None) == pytest.approx([56.8])
    assert seed_runs(records, "rgbt", "student", 0, None) == pytest.approx([80.0])  # students: records only
    assert seed_runs(records, "rgbt", "teacher", 2, None) == []


def test_notes_name_different_teacher_files_and_suspect_evaluations() -> None:
    claim = Claim("c", "student", "student-feature")
    records = [make_record("student", s, 80.0, teacher=f"t{s}.pt", teacher_sha256="a" * 16) for s in (0, 1)]
    records += [make_record("student-feature", s, 70.0, teacher=f"t{s}.pt", teacher_sha256="a" * 16) for s in (0, 1)]
    assert read_claim(records, claim).notes == ()
    records[3] = dict(records[3], teacher_sha256="b" * 16)
    assert "different teacher checkpoints" in read_claim(records, claim).line
    records += [make_record(f"student-{i}", 0, 60.0) for i in range(3)]
    records[2] = dict(records[2], eval_s=0.5)  # student-feature seed 0: a far faster evaluation
    assert "rgbt-student-feature-s0: evaluation far faster than its stage's" in read_claim(records, claim).line
