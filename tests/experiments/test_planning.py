"""Planning: which jobs run in what order, and the full recipe of each (on a small arms table
the tests write)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from mmtrack_kd.errors import MmtrackError
from mmtrack_kd.experiments.arms import ArmsTable, load_arms
from mmtrack_kd.experiments.planning import REDUCED_DATA, Job, job_id, job_recipe, plan_jobs, write_recipes
from mmtrack_kd.recipe import dump_recipe
from plugins.synthetic.plugin import SyntheticDataset
from tests.experiments.helpers import write_arms_table

FULL_PLAN = [
    # main arms on the all-seed modality, every seed, teachers before their students
    "rgbt-baseline-s0", "rgbt-teacher-s0", "rgbt-fost-s0", "rgbt-student-s0",
    "rgbt-baseline-s1", "rgbt-teacher-s1", "rgbt-fost-s1", "rgbt-student-s1",
    # main arms of the other modalities: first seed
    "rgbd-teacher-s0", "rgbd-fost-s0", "rgbd-student-s0",
    # ablations: first seed, then those marked all_seeds on the later seeds
    "rgbt-teacher-no-token-s0", "rgbt-student-feature-s0", "rgbt-teacher-long-s0", "rgbt-teacher-long-s1",
]


def ids(jobs: list[Job]) -> list[str]:
    return [job.id for job in jobs]


def test_the_plan_runs_main_arms_first_then_other_modalities_then_ablations(arms_table: ArmsTable) -> None:
    assert ids(plan_jobs(arms_table, [0, 1])) == FULL_PLAN
    assert ids(plan_jobs(arms_table, [0])) == [j for j in FULL_PLAN if j.endswith("-s0")]
    # seeds are taken in the order given, once each; the first one given is "the first seed"
    reordered = ids(plan_jobs(arms_table, [1, 0, 1]))
    assert reordered[:4] == ["rgbt-baseline-s1", "rgbt-teacher-s1", "rgbt-fost-s1", "rgbt-student-s1"]
    assert "rgbd-teacher-s1" in reordered and "rgbd-teacher-s0" not in reordered
    assert len(reordered) == len(FULL_PLAN)


def test_only_keeps_the_named_arms_or_jobs_and_adds_their_teachers(arms_table: ArmsTable) -> None:
    assert ids(plan_jobs(arms_table, [0, 1], only=["rgbt-student-feature-s0"])) == [
        "rgbt-teacher-s0", "rgbt-student-feature-s0"]
    assert ids(plan_jobs(arms_table, [0, 1], only=["rgbd-student-s0"])) == ["rgbd-teacher-s0", "rgbd-student-s0"]
    # an arm name keeps each of its planned jobs, every seed for a main arm
    assert ids(plan_jobs(arms_table, [0, 1], only=["student"])) == [
        "rgbt-teacher-s0", "rgbt-student-s0", "rgbt-teacher-s1", "rgbt-student-s1",
        "rgbd-teacher-s0", "rgbd-student-s0"]
    assert ids(plan_jobs(arms_table, [0, 1], only=["teacher-long"])) == ["rgbt-teacher-long-s0",
                                                                          "rgbt-teacher-long-s1"]
    with pytest.raises(MmtrackError, match=r"--only: no arm or job \['rgbt-teacher-no-token-s1'\]"):
        plan_jobs(arms_table, [0, 1], only=["rgbt-teacher-no-token-s1"])  # an ablation: first seed only


def test_no_seed_is_an_error(arms_table: ArmsTable) -> None:
    with pytest.raises(MmtrackError, match="no seed"):
        plan_jobs(arms_table, [])


def test_a_job_names_itself_and_its_teacher(arms_table: ArmsTable) -> None:
    student = Job(arms_table.arms["student"], arms_table.modalities["rgbd"], 3)
    assert student.id == job_id("rgbd", "student", 3) == "rgbd-student-s3"
    assert student.teacher_id == "rgbd-teacher-s3"
    assert Job(arms_table.arms["fost"], arms_table.modalities["rgbd"], 3).teacher_id is None


def _recipe(job: Job, out: Path, **kwargs) -> dict:
    return yaml.safe_load(dump_recipe(job_recipe(job, out, **kwargs)))


def test_a_job_recipe_is_the_base_with_the_arms_overrides_and_shared_data(arms_table: ArmsTable,
                                                                         tmp_path: Path) -> None:
    job = Job(arms_table.arms["teacher-no-token"], arms_table.modalities["rgbt"], 1)
    recipe = _recipe(job, tmp_path, extra=["train.log_every=7", "teacher.prompter.token_attention=true"])
    assert recipe["name"] == "rgbt-teacher-no-token-s1" and recipe["seed"] == 1
    assert recipe["teacher"]["prompter"]["token_attention"] is False  # the arm's override comes last
    assert recipe["train"]["log_every"] == 7 and recipe["train"]["output_dir"] == str(tmp_path / "runs")
    roots = {entry["root"] for entry in recipe["data"]["train"] + recipe["data"]["val"]
             + recipe["evaluate"]["datasets"]}
    assert roots == {str(tmp_path / "data" / "synthetic-lasher")}  # one generated copy for every arm
    depth = _recipe(Job(arms_table.arms["fost"], arms_table.modalities["rgbd"], 0), tmp_path)
    assert depth["modality"]["name"] == "depth" and depth["student"]["init"] == "none"
    assert depth["evaluate"]["datasets"][0]["root"] == str(tmp_path / "data" / "synthetic-depthtrack")


def test_an_entry_without_a_layout_shares_the_copy_of_the_plugins_default_layout(tmp_path: Path) -> None:
    table = load_arms(write_arms_table(tmp_path / "arms"))
    base = table.modalities["rgbt"].base
    base.write_text(base.read_text(encoding="utf-8").replace("layout: lasher, ", ""), encoding="utf-8")
    recipe = _recipe(Job(table.arms["teacher"], table.modalities["rgbt"], 0), tmp_path)
    default = SyntheticDataset.Options().layout
    assert {entry["root"] for entry in recipe["data"]["train"] + recipe["evaluate"]["datasets"]} == {
        str(tmp_path / "data" / f"synthetic-{default}")}


def test_the_reduced_recipe_is_tiny_and_on_the_cpu(arms_table: ArmsTable, tmp_path: Path) -> None:
    recipe = _recipe(Job(arms_table.arms["student"], arms_table.modalities["rgbt"], 0), tmp_path, reduced=True)
    assert recipe["train"]["device"] == "cpu" and recipe["teacher"]["optim"]["epochs"] == 1
    assert recipe["student"]["optim"]["samples_per_epoch"] == 12
    entry = recipe["evaluate"]["datasets"][0]
    assert entry["root"] == str(tmp_path / "data" / "synthetic-lasher-reduced")
    assert {k: entry[k] for k in ("n_train", "n_test", "frames")} == {
        k: REDUCED_DATA[k] for k in ("n_train", "n_test", "frames")}


def test_write_recipes_writes_one_valid_recipe_per_planned_job(arms_folder: Path, arms_table: ArmsTable,
                                                               tmp_path: Path) -> None:
    paths = write_recipes(arms_folder, tmp_path / "recipes", seeds=[0, 1], out_dir=tmp_path / "out",
                          overrides=["train.log_every=7"])
    assert [path.stem for path in paths] == FULL_PLAN
    text = (tmp_path / "recipes" / "rgbt-teacher-no-token-s0.yaml").read_text()
    assert "token_attention: false" in text and "log_every: 7" in text
