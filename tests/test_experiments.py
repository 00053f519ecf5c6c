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


def test_a_student_is_read_against_the_teacher_file_it_distilled_from() -> None:
    """'student nearly matches the teacher': a student of a retrained teacher is compared with
    that teacher file's own score, not with the first teacher's record."""
    from mmtrack_kd.experiments import _claim

    def record(arm: str, pr: float, **extra) -> dict:
        return {"id": f"rgbt-{arm}-s0", "arm": arm, "modality": "rgbt", "seed": 0,
                "evaluation": {"synthetic": {"scores": {"PR": pr, "SR": pr / 2}}}, **extra}

    teacher = record("teacher", 0.70)
    same = record("student", 0.72, teacher="t.pt", teacher_sha256="a" * 16, teacher_retrained=False)
    line = _claim([teacher, same], "rgbt", "student", "teacher", "matches")
    assert "+2.0 points" in line and "retrained" not in line
    other = record("student", 0.72, teacher="t.pt", teacher_sha256="b" * 16, teacher_retrained=True,
                   teacher_scores={"synthetic": {"PR": 0.60, "SR": 0.3}})
    line = _claim([teacher, other], "rgbt", "student", "teacher", "matches")
    assert "+12.0 points" in line and "against the retrained teacher file" in line


def test_verdict_words_read_a_match_claim_differently_from_a_beats_claim() -> None:
    """'A beats B' holds only above the noise; 'A nearly matches B' holds within it and above it,
    and a drop beyond the noise is the claim failing, not a reversal."""
    from mmtrack_kd.experiments import _verdict

    assert "noise (no difference" in _verdict(72.0, 70.0, "c")
    assert _verdict(80.0, 70.0, "c").endswith("**holds**")
    assert "reversed" in _verdict(60.0, 70.0, "c")
    assert "within noise" in _verdict(72.0, 70.0, "c", "matches")
    assert "**holds** (above it)" in _verdict(80.0, 70.0, "c", "matches")
    below = _verdict(62.8, 70.0, "c", "matches")
    assert "-7.2 points" in below and "does not hold" in below and "reversed" not in below
    assert "not run" in _verdict(None, 70.0, "c", "matches")


def test_an_arm_key_typo_names_the_arm_and_the_key(tmp_path: Path) -> None:
    table = tmp_path / "arms.yaml"
    table.write_text("modalities:\n  rgbt: {base: base-rgbt.yaml}\n"
                     "arms:\n  teacher: {stage: teacher, all_seed: true}\n", encoding="utf-8")
    with pytest.raises(MmtrackError, match=r"arms table .*\n  arms\.teacher\.all_seed .*not permitted"):
        load_arms(table)
