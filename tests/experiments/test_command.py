"""``mmtrack-kd experiments``: its flags reach the runner and the planner through the CLI."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from mmtrack_kd.cli import main as cli_main
from mmtrack_kd.experiments.command import main


def test_write_recipes_prints_each_recipe_and_runs_nothing(arms_folder: Path, tmp_path: Path,
                                                            capsys: pytest.CaptureFixture[str]) -> None:
    assert main([str(arms_folder), "--seeds", "0", "--out", str(tmp_path / "out"), "--set", "train.log_every=7",
                 "--write-recipes", str(tmp_path / "recipes")]) == 0
    printed = capsys.readouterr().out.split()
    assert printed[0] == str(tmp_path / "recipes" / "rgbt-baseline-s0.yaml") and len(printed) == 10
    assert "log_every: 7" in Path(printed[0]).read_text() and not (tmp_path / "out").exists()


def test_the_cli_hands_every_flag_to_the_experiments_parser(arms_folder: Path, tmp_path: Path,
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    report = tmp_path / "docs" / "results.md"
    assert cli_main(["experiments", str(arms_folder), "--out", str(tmp_path / "out"), "--report", str(report),
                     "--seeds", "0,1", "--dry-run"]) == 0
    assert capsys.readouterr().out.strip().endswith("results.md")
    raw = json.loads(report.with_name("results.json").read_text())
    assert raw["seeds"] == [0, 1] and raw["records"] == []
    assert raw["arms_table"] == str(arms_folder / "arms.yaml")


@pytest.mark.slow
def test_python_dash_m_runs_the_command(arms_folder: Path) -> None:
    done = subprocess.run([sys.executable, "-m", "mmtrack_kd.experiments", "--help"], capture_output=True,
                          text=True, check=True)
    assert done.stdout.startswith("usage: mmtrack-kd experiments") and "--write-recipes" in done.stdout
