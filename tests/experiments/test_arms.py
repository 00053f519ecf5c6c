"""The arms table: its schema, its defaults and its errors; the shipped table loads and plans."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from mmtrack_kd.errors import MmtrackError
from mmtrack_kd.experiments.arms import ArmsTable, load_arms
from mmtrack_kd.experiments.claims import CLAIMS
from mmtrack_kd.experiments.planning import plan_jobs, write_recipes
from mmtrack_kd.experiments.report import PAPER_TABLES
from mmtrack_kd.recipe_yaml import parse_override

SHIPPED = Path(__file__).resolve().parents[2] / "recipes" / "experiments"


def test_a_table_reads_modalities_and_arms_with_their_defaults(arms_folder: Path) -> None:
    table = load_arms(arms_folder / "arms.yaml")  # the file, or the folder holding it
    assert table == load_arms(arms_folder)
    assert list(table.modalities) == ["rgbt", "rgbd"] and table.path == arms_folder / "arms.yaml"
    rgbt, rgbd = table.modalities["rgbt"], table.modalities["rgbd"]
    assert rgbt.base == (arms_folder / "base-rgbt.yaml").resolve() and rgbt.benchmark == "LasHeR"
    assert rgbt.all_seeds and not rgbd.all_seeds  # only rgbt runs every seed unless told
    assert rgbd.switch_attributes == ("dark-scene",)
    baseline, no_token = table.arms["baseline"], table.arms["teacher-no-token"]
    assert baseline.description == "RGB-only baseline"  # folded onto one line
    assert baseline.modalities == ("rgbt",) and baseline.group == "main" and baseline.teacher is None
    assert baseline.overrides[0] == "student.single_modality=true" and baseline.paper == {"table3": "baseline"}
    assert no_token.description == "teacher-no-token" and no_token.group == "ablation"  # defaults
    assert not no_token.all_seeds and table.arms["teacher-long"].all_seeds
    assert table.arms["student"].teacher == "teacher"


def test_an_arm_key_typo_names_the_arm_and_the_key(tmp_path: Path) -> None:
    table = tmp_path / "arms.yaml"
    table.write_text("modalities:\n  rgbt: {base: base-rgbt.yaml}\n"
                     "arms:\n  teacher: {stage: teacher, all_seed: true}\n", encoding="utf-8")
    with pytest.raises(MmtrackError, match=r"arms table .*\n  arms\.teacher\.all_seed .*not permitted"):
        load_arms(table)


@pytest.mark.parametrize(("arms", "message"), [
    ("  a: {stage: student, modalities: [rgbx]}\n", r"arm a: unknown modalities \['rgbx'\]"),
    ("  a: {stage: student, teacher: b}\n", "arm a: teacher 'b' is not a teacher arm"),
    ("  b: {stage: student}\n  a: {stage: student, teacher: b}\n", "arm a: teacher 'b' is not a teacher arm"),
    ("  a: {stage: pupil}\n", r"arms\.a\.stage"),
    ("  a: {stage: student, group: first}\n", r"arms\.a\.group"),
])
def test_a_bad_arm_is_an_error_naming_it(tmp_path: Path, arms: str, message: str) -> None:
    path = tmp_path / "arms.yaml"
    path.write_text("modalities:\n  rgbt: {base: base-rgbt.yaml}\narms:\n" + arms, encoding="utf-8")
    with pytest.raises(MmtrackError, match=message):
        load_arms(path)


def test_a_missing_table_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(MmtrackError, match="no arms table"):
        load_arms(tmp_path)


def _check_shipped(table: ArmsTable) -> None:
    for claim in CLAIMS:
        assert claim.arm in table.arms and claim.other in table.arms, claim
        assert claim.modality in table.arms[claim.arm].modalities and claim.kind in ("beats", "matches")
    for key, spec in PAPER_TABLES.items():
        rows = {row for row, _, _ in spec["rows"]}
        for arm in table.arms.values():
            assert arm.paper.get(key, next(iter(rows))) in rows, (arm.name, key)


def test_the_shipped_table_loads_plans_and_every_recipe_validates(tmp_path: Path) -> None:
    """recipes/experiments/arms.yaml: every planned job's recipe validates and carries its seed
    and its arm's overrides, every claim names arms it runs, and every paper row an arm names
    exists (checked on the table's structure, whatever arms it holds)."""
    table = load_arms(SHIPPED)
    _check_shipped(table)
    jobs = plan_jobs(table, [0, 1])
    assert len(jobs) == len({job.id for job in jobs}) > len(table.arms)
    paths = write_recipes(SHIPPED, tmp_path / "recipes", seeds=[0, 1], out_dir=tmp_path / "out")
    assert [path.stem for path in paths] == [job.id for job in jobs]
    for job, path in zip(jobs, paths):
        recipe = yaml.safe_load(path.read_text(encoding="utf-8"))
        assert (recipe["name"], recipe["seed"]) == (job.id, job.seed)
        for override in job.arm.overrides:
            keys, value = parse_override(override)
            node = recipe
            for key in keys:
                node = node[int(key)] if isinstance(node, list) else node[key]
            assert node == value, (job.id, override)
