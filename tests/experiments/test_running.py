"""Running jobs: records stored, restored, set aside and checked; the whole path end to end on
the reduced setting (train, evaluate, report, resume, a fresh machine, a rerun)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from mmtrack_kd.errors import MmtrackError
from mmtrack_kd.experiments.running import (RETRAINED_MARK, _atomic_json, epoch_losses, keep_teacher,
                                            load_superseded, provenance, restore_records, run_experiments,
                                            supersede)


def test_records_are_written_whole_with_plain_values(tmp_path: Path) -> None:
    path = tmp_path / "results" / "x.json"
    _atomic_json(path, {"a": np.float32(0.5), "b": np.arange(2), "c": Path("p"), "d": np.int64(3)})
    assert path.read_text() == '{\n "a": 0.5,\n "b": [\n  0,\n  1\n ],\n "c": "p",\n "d": 3\n}\n'
    assert not list(tmp_path.rglob("*.tmp"))
    with pytest.raises(TypeError, match="object"):
        _atomic_json(path, {"a": object()})


def test_restore_records_takes_only_missing_records_of_the_same_setting(tmp_path: Path) -> None:
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
    stored.write_text("{not json")
    with pytest.raises(MmtrackError, match="cannot read the stored results"):
        restore_records(stored, out)


def test_superseded_record_moves_aside_and_is_never_restored(tmp_path: Path) -> None:
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


def test_rerun_names_a_planned_job_and_a_reason(arms_folder: Path, tmp_path: Path) -> None:
    with pytest.raises(MmtrackError, match="no job"):
        run_experiments(arms_folder, tmp_path, seeds=[0], rerun=["rgbt-student"], reason="x", dry_run=True)
    with pytest.raises(MmtrackError, match="--reason"):
        run_experiments(arms_folder, tmp_path, seeds=[0], rerun=["rgbt-student-s0"], reason=" ", dry_run=True)


def test_a_dry_run_reports_what_finished_and_lists_the_rest(arms_folder: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    report = run_experiments(arms_folder, out, seeds=[0], dry_run=True, command="cmd")
    assert report == out / "results.md"
    raw = json.loads((out / "results.json").read_text())
    assert raw["records"] == [] and raw["missing"][0] == "rgbt-baseline-s0" and raw["command"] == "cmd"
    assert raw["arms_table"] == str(arms_folder / "arms.yaml") and raw["seeds"] == [0]
    assert not (out / "runs").exists()  # nothing trained


def test_keep_teacher_copies_the_file_and_its_mark(tmp_path: Path) -> None:
    teacher = tmp_path / "runs" / "rgbt-teacher-s0" / "teacher" / "best.pt"
    teacher.parent.mkdir(parents=True)
    teacher.write_bytes(b"weights")
    (teacher.parent / RETRAINED_MARK).write_text('{"sha256": "ab"}')
    kept = tmp_path / "teachers" / "rgbt-teacher-s0" / "best.pt"
    keep_teacher(teacher, kept)
    assert kept.read_bytes() == b"weights" and (kept.parent / RETRAINED_MARK).read_text() == '{"sha256": "ab"}'
    assert sorted(p.name for p in kept.parent.iterdir()) == ["best.pt", RETRAINED_MARK]


def test_epoch_losses_and_provenance_of_new_records(tmp_path: Path) -> None:
    metrics = tmp_path / "metrics.jsonl"
    lines = [{"event": "train", "epoch": 0, "update": 1, "total": 4.0},
             {"event": "train", "epoch": 0, "update": 2, "total": 2.0},
             {"event": "epoch", "epoch": 1, "update": 2, "val_loss": 3.0},
             {"event": "train", "epoch": 1, "update": 3, "total": 1.5},
             {"event": "train", "epoch": 1, "update": 3, "total": 1.0},  # resumed: logged again
             {"event": "train", "epoch": 1, "update": 4, "total": float("nan")},  # not finite: left out
             {"event": "epoch", "epoch": 2, "update": 3, "val_loss": float("nan")}]
    metrics.write_text("\n".join(json.dumps(line) for line in lines) + "\n")
    assert epoch_losses(metrics) == [{"epoch": 1, "train_loss": 3.0, "val_loss": 3.0},
                                     {"epoch": 2, "train_loss": 1.0, "val_loss": None}]
    assert epoch_losses(tmp_path / "absent.jsonl") == []
    info = provenance()
    assert info["machine"]["cpu"] and info["machine"]["threads"] >= 1 and info["torch"]
    assert info["commit"] is None or len(info["commit"].split("+")[0]) == 40


@pytest.mark.slow
def test_reduced_run_writes_report_and_resumes(arms_folder: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    report = tmp_path / "docs" / "results.md"
    only = ["rgbt-baseline-s0", "rgbt-student-s0"]  # + its teacher: three arms
    path = run_experiments(arms_folder, out, seeds=[0], only=only, reduced=True, report=report,
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
    run_experiments(arms_folder, out, seeds=[0], only=only, reduced=True, report=report,
                    command="mmtrack-kd experiments --reduced")
    assert stamps() == before
    assert "`results-reading.md` beside this file" in report.read_text()  # linked once it exists

    # a later session on a fresh machine: only the committed results.json is there. Finished
    # arms are restored, not re-run; a student still to run gets its teacher trained again.
    teacher_record = next(r for r in raw["records"] if r["id"] == "rgbt-teacher-s0")
    shutil.rmtree(out)
    raw["records"] = [r for r in raw["records"] if r["id"] != "rgbt-student-s0"]
    (tmp_path / "docs" / "results.json").write_text(json.dumps(raw))
    run_experiments(arms_folder, out, seeds=[0], only=only, reduced=True, report=report,
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
    assert (out / "runs" / "rgbt-teacher-s0" / "teacher" / RETRAINED_MARK).is_file()
    text = report.read_text()
    assert "Retrained teachers: rgbt-student-s0" in text and " retrained (its PR " in text
    # the retrained teacher file is kept beside results.json: the next fresh machine distils
    # from that very file instead of training a third teacher
    kept = tmp_path / "docs" / "teachers" / "rgbt-teacher-s0"
    assert (kept / "best.pt").is_file() and (kept / RETRAINED_MARK).is_file()
    shutil.rmtree(out)
    (tmp_path / "docs" / "results.json").write_text(json.dumps(raw))  # the student to run again
    run_experiments(arms_folder, out, seeds=[0], only=only, reduced=True, report=report,
                    command="mmtrack-kd experiments --reduced")
    assert not (out / "runs" / "rgbt-teacher-s0").exists()  # not trained a third time
    kept_student = next(r for r in json.loads((tmp_path / "docs" / "results.json").read_text())["records"]
                        if r["id"] == "rgbt-student-s0")
    assert kept_student["teacher"] == str(kept / "best.pt")
    assert kept_student["teacher_sha256"] == student["teacher_sha256"] and kept_student["teacher_retrained"]
    assert kept_student["teacher_scores"] == student["teacher_scores"]

    # --rerun: a finished arm trains and scores afresh; the old record stays, set aside
    baseline = next(r for r in again["records"] if r["id"] == "rgbt-baseline-s0")
    run_experiments(arms_folder, out, seeds=[0], only=only, reduced=True, report=report,
                    command="mmtrack-kd experiments --reduced", rerun=["rgbt-baseline-s0"],
                    reason="checking the rerun")
    assert (out / "runs" / "rgbt-baseline-s0").is_dir()  # trained this time
    third = json.loads((tmp_path / "docs" / "results.json").read_text())
    assert [e["record"] for e in third["superseded"]] == [baseline]
    assert third["superseded"][0]["reason"] == "checking the rerun"
    assert {r["id"] for r in third["records"]} == ids
    assert "- rgbt-baseline-s0 (set aside " in report.read_text()
