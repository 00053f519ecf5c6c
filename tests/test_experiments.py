"""The experiment runner (issue 9) end to end on its reduced setting: plan, train, evaluate,
report, resume."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mmtrack_kd.errors import MmtrackError
from mmtrack_kd.experiments import load_arms, plan_jobs, run_experiments, write_recipes

ARMS = Path(__file__).resolve().parents[1] / "recipes" / "experiments"


def test_plan_runs_main_arms_first_and_teachers_before_students() -> None:
    table = load_arms(ARMS)
    jobs = [job.id for job in plan_jobs(table, [0, 1])]
    assert len(jobs) == len(set(jobs))
    # main RGB-T arms for both seeds come before every ablation
    main = [j for j in jobs if j.startswith("rgbt-") and j.rsplit("-", 1)[0] in
            ("rgbt-baseline", "rgbt-teacher", "rgbt-fost", "rgbt-student")]
    assert len(main) == 8
    first_ablation = jobs.index("rgbt-teacher-no-spatial-s0")
    assert all(jobs.index(j) < first_ablation for j in main)
    assert "rgbt-teacher-no-spatial-s1" not in jobs  # ablations: first seed only
    # ... unless marked all_seeds, and then after every first-seed ablation
    assert jobs.index("rgbt-teacher-long-s1") > max(jobs.index(j) for j in jobs if j.endswith("-s0"))
    assert {"rgbd-teacher-s0", "rgbe-fost-s0", "rgbe-student-s0"} <= set(jobs)
    for job in plan_jobs(table, [0, 1]):
        if job.arm.teacher:
            teacher = f"{job.modality.key}-{job.arm.teacher}-s{job.seed}"
            assert jobs.index(teacher) < jobs.index(job.id)
    # --only adds the teacher a student needs
    only = [job.id for job in plan_jobs(table, [0], only=["rgbt-student-feature-s0"])]
    assert only == ["rgbt-teacher-s0", "rgbt-student-feature-s0"]


def test_every_arm_recipe_validates(tmp_path: Path) -> None:
    paths = write_recipes(ARMS, tmp_path / "recipes", seeds=[0, 1], out_dir=tmp_path / "out")
    assert len(paths) == len(plan_jobs(load_arms(ARMS), [0, 1]))
    text = (tmp_path / "recipes" / "rgbt-teacher-no-token-s0.yaml").read_text()
    assert "token_attention: false" in text


@pytest.mark.slow
def test_reduced_run_writes_report_and_resumes(tmp_path: Path) -> None:
    out = tmp_path / "out"
    report = tmp_path / "docs" / "results.md"
    only = ["rgbt-baseline-s0", "rgbt-student-s0"]  # + its teacher: three arms
    path = run_experiments(ARMS, out, seeds=[0], only=only, reduced=True, report=report,
                           command="mmtrack-kd experiments --reduced")
    assert path == report
    raw = json.loads((tmp_path / "docs" / "results.json").read_text())
    ids = {r["id"] for r in raw["records"]}
    assert ids == {"rgbt-baseline-s0", "rgbt-teacher-s0", "rgbt-student-s0"}
    for record in raw["records"]:
        assert record["samples"] > 0 and record["parameters"] > 0 and record["train_s"] > 0
        # checkable: who trained it, on what code, and how the losses went
        assert record["machine"]["cpu"] and record["machine"]["threads"] >= 1 and record["torch"]
        assert "commit" in record and record["epochs"][0]["epoch"] == 1
        assert record["epochs"][-1]["train_loss"] is not None
        assert len(record["evaluation"]["synthetic"]["sequence_scores"]) == 2  # n_test sequences
        evaluation = record["evaluation"]["synthetic"]
        assert set(evaluation["scores"]) >= {"PR", "SR"}
        reliance = evaluation["stream_reliance"]
        # the reduced data has spells of both streams: frames where only one stream shows it
        assert reliance["rgb"]["frames"] > 0 and reliance["aux"]["frames"] > 0
        assert "TC" in evaluation["per_attribute"]  # a modality-switch attribute
    assert raw["missing"]  # the rest of the plan is listed as not run
    student = next(r for r in raw["records"] if r["id"] == "rgbt-student-s0")
    assert len(student["teacher_sha256"]) == 16 and student["teacher_retrained"] is False
    assert "teacher_scores" not in student  # its teacher's own record holds those

    text = report.read_text()
    assert "mmtrack-kd experiments --reduced" in text
    assert "REDUCED setting" in text
    for title in ("Table 3", "Table 4", "Table 5", "Table 1", "Modality-switch attributes",
                  "Which stream"):
        assert title in text
    # paper numbers beside ours: Table 3's baseline 61.0 / 48.3 and Table 1's LasHeR teacher
    assert "| 61.0 | 48.3 |" in text and "PR 71.2, SR 56.5" in text

    # resumable: a second call trains and tracks nothing (no file under runs/ or eval/ changes)
    def stamps() -> dict[str, int]:
        return {str(p): p.stat().st_mtime_ns for p in out.rglob("*")
                if p.is_file() and p.parts[len(out.parts)] in ("runs", "eval", "results")}

    before = stamps()
    assert "results-reading.md" not in text
    (tmp_path / "docs" / "results-reading.md").write_text("# the reading, by hand\n")
    run_experiments(ARMS, out, seeds=[0], only=only, reduced=True, report=report,
                    command="mmtrack-kd experiments --reduced")
    assert stamps() == before
    assert "`results-reading.md` beside this file" in report.read_text()  # linked once it exists

    # a later session on a fresh machine: only the committed results.json is there. Finished
    # arms are restored, not re-run; a student still to run gets its teacher trained again.
    import shutil

    teacher_record = next(r for r in raw["records"] if r["id"] == "rgbt-teacher-s0")
    shutil.rmtree(out)
    raw["records"] = [r for r in raw["records"] if r["id"] != "rgbt-student-s0"]
    (tmp_path / "docs" / "results.json").write_text(json.dumps(raw))
    run_experiments(ARMS, out, seeds=[0], only=only, reduced=True, report=report,
                    command="mmtrack-kd experiments --reduced")
    again = json.loads((tmp_path / "docs" / "results.json").read_text())
    assert {r["id"] for r in again["records"]} == ids
    assert next(r for r in again["records"] if r["id"] == "rgbt-teacher-s0") == teacher_record
    assert (out / "runs" / "rgbt-teacher-s0" / "teacher" / "last.pt").is_file()
    assert not (out / "eval" / "rgbt-teacher-s0").exists()  # the teacher was not scored again
    assert not (out / "runs" / "rgbt-baseline-s0").exists()  # a restored arm is not re-run
    # the retrained teacher is another file: the student says so and carries that file's score
    student = next(r for r in again["records"] if r["id"] == "rgbt-student-s0")
    assert student["teacher_retrained"] is True and set(student["teacher_scores"]["synthetic"]) >= {"PR", "SR"}
    assert (out / "runs" / "rgbt-teacher-s0" / "teacher" / "retrained.json").is_file()
    text = report.read_text()
    assert "Retrained teachers: rgbt-student-s0" in text and " retrained (its PR " in text
    # the retrained teacher file is kept beside results.json: the next fresh machine distils
    # from that very file instead of training a third teacher
    kept = tmp_path / "docs" / "teachers" / "rgbt-teacher-s0"
    assert (kept / "best.pt").is_file() and (kept / "retrained.json").is_file()
    shutil.rmtree(out)
    (tmp_path / "docs" / "results.json").write_text(json.dumps(raw))  # the student to run again
    run_experiments(ARMS, out, seeds=[0], only=only, reduced=True, report=report,
                    command="mmtrack-kd experiments --reduced")
    assert not (out / "runs" / "rgbt-teacher-s0").exists()  # not trained a third time
    kept_student = next(r for r in json.loads((tmp_path / "docs" / "results.json").read_text())["records"]
                        if r["id"] == "rgbt-student-s0")
    assert kept_student["teacher"] == str(kept / "best.pt")
    assert kept_student["teacher_sha256"] == student["teacher_sha256"] and kept_student["teacher_retrained"]
    assert kept_student["teacher_scores"] == student["teacher_scores"]

    # --rerun: a finished arm trains and scores afresh; the old record stays, set aside
    with pytest.raises(MmtrackError, match="--reason"):
        run_experiments(ARMS, out, seeds=[0], only=only, reduced=True, report=report,
                        rerun=["rgbt-baseline-s0"])
    baseline = next(r for r in again["records"] if r["id"] == "rgbt-baseline-s0")
    run_experiments(ARMS, out, seeds=[0], only=only, reduced=True, report=report,
                    command="mmtrack-kd experiments --reduced", rerun=["rgbt-baseline-s0"],
                    reason="checking the rerun")
    assert (out / "runs" / "rgbt-baseline-s0").is_dir()  # trained this time
    third = json.loads((tmp_path / "docs" / "results.json").read_text())
    assert [e["record"] for e in third["superseded"]] == [baseline]
    assert third["superseded"][0]["reason"] == "checking the rerun"
    assert {r["id"] for r in third["records"]} == ids
    assert "- rgbt-baseline-s0 (set aside " in report.read_text()


def test_restore_records_takes_only_missing_records_of_the_same_setting(tmp_path: Path) -> None:
    from mmtrack_kd.experiments import restore_records

    stored = tmp_path / "results.json"
    stored.write_text(json.dumps({"reduced": False, "records": [
        {"id": "rgbt-teacher-s0", "reduced": False, "samples": 10},
        {"id": "rgbt-fost-s0", "reduced": False, "samples": 20},
        {"id": "rgbt-tiny-s0", "reduced": True, "samples": 1},
    ]}))
    out = tmp_path / "out"
    records = out / "results"
    records.mkdir(parents=True)
    (records / "rgbt-fost-s0.json").write_text(json.dumps({"id": "rgbt-fost-s0", "samples": 99}))
    assert restore_records(stored, out) == ["rgbt-teacher-s0"]
    assert json.loads((records / "rgbt-teacher-s0.json").read_text())["samples"] == 10
    assert json.loads((records / "rgbt-fost-s0.json").read_text())["samples"] == 99  # kept
    assert restore_records(stored, out, reduced=True) == ["rgbt-tiny-s0"]
    assert restore_records(tmp_path / "absent.json", out) == []


def test_superseded_record_moves_aside_and_is_never_restored(tmp_path: Path) -> None:
    from mmtrack_kd.experiments import load_superseded, restore_records, supersede

    old = {"id": "rgbt-student-s0", "reduced": False, "samples": 10}
    stored = tmp_path / "results.json"
    stored.write_text(json.dumps({"reduced": False, "records": [old]}))
    out = tmp_path / "out"
    assert restore_records(stored, out) == ["rgbt-student-s0"]
    (out / "runs" / "rgbt-student-s0" / "student").mkdir(parents=True)
    (out / "runs" / "rgbt-student-s0" / "student" / "last.pt").write_bytes(b"old")
    (out / "eval" / "rgbt-student-s0").mkdir(parents=True)
    dest = supersede("rgbt-student-s0", out, "teacher file changed")
    assert dest is not None and (dest / "run" / "student" / "last.pt").read_bytes() == b"old"
    assert (dest / "eval").is_dir() and not (out / "eval" / "rgbt-student-s0").exists()
    assert not (out / "results" / "rgbt-student-s0.json").exists()
    assert not (out / "runs" / "rgbt-student-s0").exists()
    # an interrupted rerun: the committed results.json still holds the old record; it stays out
    assert restore_records(stored, out) == []
    assert supersede("rgbt-student-s0", out, "again") is None  # nothing finished to set aside
    entries = load_superseded(out)
    assert [(e["record"], e["reason"]) for e in entries] == [(old, "teacher file changed")]
    # a fresh machine: the superseded entries travel in results.json and come back with it
    stored.write_text(json.dumps({"reduced": False, "records": [old], "superseded": entries}))
    fresh = tmp_path / "fresh"
    assert restore_records(stored, fresh) == []
    assert load_superseded(fresh) == entries


def test_rerun_names_a_planned_job(tmp_path: Path) -> None:
    with pytest.raises(MmtrackError, match="no job"):
        run_experiments(ARMS, tmp_path, seeds=[0], rerun=["rgbt-student"], reason="x", dry_run=True)


def _record(arm: str, seed: int, pr: float, modality: str = "rgbt", stage: str | None = None,
            sequences: dict[str, float] | None = None, **extra) -> dict:
    """A minimal record: ``pr`` (percent) as its PR, optional per-sequence PRs (percent)."""
    evaluation = {"scores": {"PR": pr / 100, "SR": pr / 200}}
    if sequences is not None:
        evaluation["sequence_scores"] = {n: {"PR": v / 100, "SR": v / 200} for n, v in sequences.items()}
    return {"id": f"{modality}-{arm}-s{seed}", "arm": arm, "modality": modality, "seed": seed,
            "stage": stage or ("teacher" if arm.startswith("teacher") else "student"),
            "eval_s": 30.0, "evaluation": {"synthetic": evaluation}, **extra}


def test_a_student_is_read_against_the_teacher_file_it_distilled_from() -> None:
    """'student nearly matches the teacher': a student of a retrained teacher is compared with
    that teacher file's own score, not with the first teacher's record."""
    from mmtrack_kd.experiments import Claim, read_claim

    claim = Claim("c", "student", "teacher", "matches")
    teacher = _record("teacher", 0, 70.0)
    same = _record("student", 0, 72.0, teacher="t.pt", teacher_sha256="a" * 16, teacher_retrained=False)
    reading = read_claim([teacher, same], claim)
    assert reading.diff == pytest.approx(2.0) and "retrained" not in reading.line
    other = _record("student", 0, 72.0, teacher="runs/rgbt-teacher-s0/teacher/best.pt", teacher_sha256="b" * 16,
                    teacher_retrained=True, teacher_scores={"synthetic": {"PR": 0.60, "SR": 0.3}})
    reading = read_claim([teacher, other], claim)
    assert reading.diff == pytest.approx(12.0) and "against the retrained teacher file" in reading.line


def test_one_seed_is_never_stronger_than_suggestive() -> None:
    """However large a one-seed difference and however quiet the other arms, it is suggestive."""
    from mmtrack_kd.experiments import Claim, read_claim

    quiet = [_record("fost", s, 50.0 + 0.1 * s) for s in (0, 1)]  # a measured, tiny spread
    for other, kind in (("fost", "beats"), ("fost", "matches")):
        for pr, word in ((90.0, "suggestive"), (10.0, "suggestive")):
            reading = read_claim(quiet + [_record("student", 0, pr)], Claim("c", "student", other, kind))
            assert reading.seeds == (0,) and reading.verdict.startswith(("suggestive", "above suggestive",
                                                                         "below suggestive"))
            assert "**" not in reading.line.split("->")[1]  # no bold 'holds' / 'does not hold'
            assert word in reading.line and "1 seed (0)" in reading.line


@pytest.mark.parametrize(("a", "b", "kind", "verdict"), [
    # two seeds each, paired; spreads are what the arms' two seeds show
    ((80.0, 82.0), (50.0, 51.0), "beats", "holds"),
    ((50.0, 51.0), (80.0, 82.0), "beats", "reversed"),
    ((60.0, 75.0), (58.0, 70.0), "beats", "not resolved"),       # +3.5 inside a wide spread
    ((72.0, 45.0), (44.0, 52.0), "beats", "not resolved"),       # +28.8 and -7: the seeds disagree
    ((71.0, 71.5), (70.5, 71.5), "matches", "match"),
    ((60.0, 61.0), (70.0, 71.0), "matches", "below"),
    ((90.0, 91.0), (70.0, 71.0), "matches", "above"),           # a gain is no match either
])
def test_claims_over_two_seeds_follow_their_interval(a, b, kind, verdict) -> None:
    from mmtrack_kd.experiments import Claim, read_claim

    records = [_record("student", s, v) for s, v in enumerate(a)] + [_record("fost", s, v) for s, v in enumerate(b)]
    reading = read_claim(records, Claim("c", "student", "fost", kind))
    assert reading.verdict == verdict
    assert reading.seeds == (0, 1) and "2 seeds (0, 1)" in reading.line
    assert reading.low <= reading.diff <= reading.high
    assert f"interval {reading.low:+.1f} to {reading.high:+.1f}" in reading.line
    if verdict in ("holds", "above"):
        assert reading.low > 0
    if verdict == "not resolved":
        assert reading.low < 0 < reading.high


def test_the_interval_widens_with_the_seed_spread_and_narrows_with_more_seeds() -> None:
    from mmtrack_kd.experiments import Claim, read_claim

    claim = Claim("c", "student", "fost")

    def width(student, fost):
        records = ([_record("student", s, v) for s, v in enumerate(student)]
                   + [_record("fost", s, v) for s, v in enumerate(fost)])
        reading = read_claim(records, claim)
        return reading.high - reading.low

    assert width((80, 84), (50, 54)) > width((80, 81), (50, 51))
    assert width((80, 84, 80, 84), (50, 54, 50, 54)) < width((80, 84), (50, 54))


def test_edge_cases_of_the_claim_reading() -> None:
    from mmtrack_kd.experiments import Claim, read_claim

    claim = Claim("c", "student", "fost")
    # no arm run, one arm run, arms on disjoint seeds: not run
    assert read_claim([], claim).verdict == "not run"
    assert "**not run**" in read_claim([_record("student", 0, 80.0)], claim).line
    assert read_claim([_record("student", 0, 80.0), _record("fost", 1, 50.0)], claim).verdict == "not run"
    # only the seeds both ran are paired; the unpaired seed still measures the arm's spread
    records = [_record("student", 0, 80.0), _record("student", 1, 84.0), _record("fost", 0, 50.0)]
    reading = read_claim(records, claim)
    assert reading.seeds == (0,) and reading.diff == pytest.approx(30.0) and "over 2 runs" in reading.line
    # no arm anywhere has two runs: no interval, and never more than suggestive
    reading = read_claim([_record("student", 0, 80.0), _record("fost", 0, 50.0)], claim)
    assert reading.low is None and reading.verdict == "unmeasured" and "not measured" in reading.line
    # both arms one run: the spread of the arms that have two runs is pooled, and said so
    reading = read_claim([_record("student", 0, 80.0), _record("fost", 0, 50.0),
                          _record("teacher", 0, 60.0), _record("teacher", 1, 64.0)], claim)
    assert "pooled over 1 arms" in reading.line and reading.verdict == "suggestive"
    # a non-finite score is left out
    reading = read_claim([_record("student", 0, float("nan")), _record("fost", 0, 50.0)], claim)
    assert reading.verdict == "not run"


def test_the_sequence_bootstrap_adds_test_set_noise_where_per_sequence_scores_are_kept() -> None:
    from mmtrack_kd.experiments import Claim, paired_bootstrap_var, read_claim

    names = [f"seq{i}" for i in range(20)]
    rng = __import__("numpy").random.default_rng(0)
    base = {n: float(v) for n, v in zip(names, rng.uniform(20, 90, 20))}
    # paired: a constant shift has no variance however scattered the sequences are
    assert paired_bootstrap_var({n: v + 5 for n, v in base.items()}, base) == pytest.approx(0.0)
    noisy = {n: v + float(rng.normal(5, 10)) for n, v in base.items()}
    assert paired_bootstrap_var(noisy, base) > 1.0
    assert paired_bootstrap_var(noisy, base) == paired_bootstrap_var(noisy, base)  # fixed seed
    assert paired_bootstrap_var({"a": 1.0}, {"a": 2.0}) is None

    def reading(per_sequence: bool):
        records = []
        for seed in (0, 1):
            records.append(_record("student", seed, 80.0 + seed, sequences=noisy if per_sequence else None))
            records.append(_record("fost", seed, 75.0 + seed, sequences=base if per_sequence else None))
        return read_claim(records, Claim("c", "student", "fost"))

    with_boot, without = reading(True), reading(False)
    assert "sequence bootstrap on 2 of 2 seeds" in with_boot.line
    assert "no sequence bootstrap (per-sequence scores not recorded)" in without.line
    assert with_boot.high - with_boot.low > without.high - without.low


def test_teacher_retrained_files_count_as_runs_and_ablations_name_them() -> None:
    """A teacher arm's retrained files are further training runs of it; a teacher ablation also
    prints its difference against the retrained file of the same seed."""
    from mmtrack_kd.experiments import Claim, _runs, read_claim

    records = [_record("teacher", 0, 72.7), _record("teacher", 1, 56.8), _record("teacher-no-spatial", 0, 56.0),
               _record("student", 0, 80.0, teacher="runs/rgbt-teacher-s0/teacher/best.pt", teacher_sha256="a" * 16,
                       teacher_retrained=True, teacher_scores={"synthetic": {"PR": 0.62, "SR": 0.3}}),
               _record("student-ce", 0, 10.0, teacher="runs/rgbt-teacher-s0/teacher/best.pt", teacher_sha256="a" * 16,
                       teacher_retrained=True, teacher_scores={"synthetic": {"PR": 0.62, "SR": 0.3}})]
    assert sorted(_runs(records, "rgbt", "teacher", None)) == pytest.approx([56.8, 62.0, 72.7])  # file once
    kept = dict(_record("student-half", 1, 70.0, teacher="docs/teachers/rgbt-teacher-s1/best.pt",
                        teacher_sha256="c" * 16, teacher_retrained=True,
                        teacher_scores={"synthetic": {"PR": 0.69, "SR": 0.3}}))
    assert sorted(_runs(records + [kept], "rgbt", "teacher", None)) == pytest.approx([56.8, 62.0, 69.0, 72.7])
    line = read_claim(records, Claim("c", "teacher", "teacher-no-spatial")).line
    assert "teacher sd" in line and "over 3 runs" in line
    assert "against the retrained teacher file of seed 0 (62.0) the difference is +6.0" in line


def test_claims_are_data_naming_arms_of_the_table() -> None:
    from mmtrack_kd.experiments import CLAIMS

    table = load_arms(ARMS)
    for claim in CLAIMS:
        assert claim.arm in table.arms and claim.other in table.arms, claim
        assert claim.modality in table.arms[claim.arm].modalities and claim.kind in ("beats", "matches")


def test_stats_prints_mean_and_range_and_skips_missing_values() -> None:
    from mmtrack_kd.experiments import _stats

    assert _stats([]) == "-" and _stats([None, float("nan")]) == "-"
    assert _stats([72.66]) == "72.7"
    assert _stats([56.8, 72.7]) == "64.8 (56.8-72.7, n=2)"
    assert _stats([1.0, None, 3.0, float("inf")]) == "2.0 (1.0-3.0, n=2)"


@pytest.mark.parametrize(("rgb", "aux", "base", "flag"), [
    (40.0, 60.0, 50.0, "under-uses RGB"),   # more than the margin below the baseline
    (46.0, 80.0, 50.0, "leans on the auxiliary stream"),  # near the baseline, far below its aux
    (46.0, 55.0, 50.0, ""),                 # within both margins
    (30.0, 80.0, None, "leans on the auxiliary stream"),  # no baseline run
    (None, 80.0, 50.0, ""),
])
def test_reliance_flags(rgb, aux, base, flag) -> None:
    from mmtrack_kd.experiments import reliance_flag

    assert reliance_flag(rgb, aux, base).startswith(flag) and bool(reliance_flag(rgb, aux, base)) == bool(flag)


def test_paper_tables_put_our_seeds_beside_the_papers_numbers() -> None:
    from mmtrack_kd.experiments import _paper_table

    table = load_arms(ARMS)
    records = [_record("teacher", 0, 72.7), _record("teacher", 1, 56.8), _record("teacher-no-history", 0, 48.2)]
    lines = _paper_table("table3", table, records)
    assert lines[0].startswith("### Table 3")
    row = {line.split(" | ")[1]: line for line in lines if line.startswith("| ")}
    assert row["teacher"] == "| full teacher | teacher | 64.8 (56.8-72.7, n=2) | 32.4 (28.4-36.4, n=2) | 71.2 | 56.5 | 0, 1 |"
    assert row["teacher-no-history"].endswith("| 48.2 | 24.1 | 71.0 | 56.4 | 0 |")
    assert row["teacher-no-spatial"].endswith("| - | - | 67.3 | 53.5 | not run |")


def test_epoch_losses_and_provenance_of_new_records(tmp_path: Path) -> None:
    from mmtrack_kd.experiments import _provenance_row, epoch_losses, provenance

    metrics = tmp_path / "metrics.jsonl"
    lines = [{"event": "train", "epoch": 0, "update": 1, "total": 4.0},
             {"event": "train", "epoch": 0, "update": 2, "total": 2.0},
             {"event": "epoch", "epoch": 1, "update": 2, "val_loss": 3.0},
             {"event": "train", "epoch": 1, "update": 3, "total": 1.5},
             {"event": "train", "epoch": 1, "update": 3, "total": 1.0},  # resumed: logged again
             {"event": "epoch", "epoch": 2, "update": 3, "val_loss": float("nan")}]
    metrics.write_text("\n".join(json.dumps(line) for line in lines) + "\n")
    assert epoch_losses(metrics) == [{"epoch": 1, "train_loss": 3.0, "val_loss": 3.0},
                                     {"epoch": 2, "train_loss": 1.0, "val_loss": None}]
    assert epoch_losses(tmp_path / "absent.jsonl") == []
    info = provenance()
    assert info["machine"]["cpu"] and info["machine"]["threads"] >= 1 and info["torch"]
    assert info["commit"] is None or len(info["commit"].split("+")[0]) == 40
    row = _provenance_row({"id": "x", **info, "epochs": epoch_losses(metrics)})
    assert f"{info['machine']['threads']} threads" in row and "2: 3.000 -> 1.000" in row
    assert "3.000 -> 3.000 (epoch 1: 3.000)" in row
    assert _provenance_row({"id": "old"}).count("not recorded") == 5


def test_fast_evaluations_point_at_reused_boxes() -> None:
    from mmtrack_kd.experiments import fast_evaluations

    records = [dict(_record(f"teacher-{i}", 0, 60.0), eval_s=t) for i, t in enumerate((21.0, 37.0, 30.0, 1.06))]
    records.append(dict(_record("student", 0, 80.0), eval_s=1.0))  # alone in its stage: not judged
    assert fast_evaluations(records) == ["rgbt-teacher-3-s0"]


def test_an_arm_key_typo_names_the_arm_and_the_key(tmp_path: Path) -> None:
    table = tmp_path / "arms.yaml"
    table.write_text("modalities:\n  rgbt: {base: base-rgbt.yaml}\n"
                     "arms:\n  teacher: {stage: teacher, all_seed: true}\n", encoding="utf-8")
    with pytest.raises(MmtrackError, match=r"arms table .*\n  arms\.teacher\.all_seed .*not permitted"):
        load_arms(table)


def test_the_committed_report_regenerates_from_the_committed_records(tmp_path: Path) -> None:
    """The audit's check: docs/results.md is what its command writes from docs/results.json (no
    training), and every claim's verdict agrees with the interval it prints."""
    import re
    import shutil

    docs = ARMS.parents[1] / "docs"
    for name in ("results.json", "results-reading.md"):
        shutil.copy(docs / name, tmp_path / name)
    stored = json.loads((docs / "results.json").read_text())
    report = run_experiments(ARMS, tmp_path / "out", seeds=stored["seeds"], report=tmp_path / "results.md",
                             dry_run=True, command=stored["command"])
    assert report.read_text() == (docs / "results.md").read_text()
    read = 0
    for line in report.read_text().splitlines():
        match = re.search(r"interval ([-+][\d.]+) to ([-+][\d.]+), (\d) seeds? .*-> ([^(]+)", line)
        if not match:
            continue
        read += 1
        low, high, seeds, words = float(match[1]), float(match[2]), int(match[3]), match[4]
        if seeds == 1:
            assert "**" not in words, line
        if "holds**" in words and "no gap" not in line:
            assert low > 0, line
        if "not resolved" in words or "no gap resolved" in line:
            assert low <= 0 <= high, line
    assert read >= 10  # the claims with an interval were all checked
