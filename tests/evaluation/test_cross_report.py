"""``mmtrack-kd report``: several evaluated runs over several datasets and modalities in one
Markdown table, one JSON and one figure sheet per dataset, from report.json files written here."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from tests.evaluation.eval_helpers import scored_pair

from mmtrack_kd.cli import main
from mmtrack_kd.evaluation.cross_report import collect, markdown, report_dict
from mmtrack_kd.evaluation.plots import _panel_axes, _pyplot
from mmtrack_kd.evaluation.protocols import get_protocol
from mmtrack_kd.evaluation.report import write_json


def evaluated_run(root: Path, name: str, modality: str, protocol: str, seed: int) -> Path:
    """A run folder as train + evaluate leave it: recipe.yaml and eval/report.json, with the
    demo's dataset name ``synthetic`` (in the protocol's layout)."""
    run = root / name
    run.mkdir(parents=True)
    (run / "recipe.yaml").write_text(f"modality: {{name: {modality}}}\n")
    trackers = {f"{name}-{tracker}": result for tracker, result in scored_pair(protocol, seed).items()}
    write_json({"synthetic": trackers}, run / "eval" / "report.json")
    return run


@pytest.fixture
def runs(tmp_path):
    return [evaluated_run(tmp_path / "runs", "demo-rgbt", "thermal", "lasher", 0),
            evaluated_run(tmp_path / "runs", "demo-rgbd", "depth", "depthtrack", 1),
            evaluated_run(tmp_path / "runs", "demo-rgbe", "event", "visevent", 2)]


@pytest.mark.slow
def test_one_table_one_json_one_sheet_per_dataset(tmp_path, runs, capsys):
    out = tmp_path / "report"
    assert main(["report", *map(str, runs), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    text = (out / "report.md").read_text()
    assert text in printed.replace("\r", "") or "Headline score" in printed
    table = [line for line in text.splitlines() if line.startswith("|")]
    assert max(len(line) for line in table) <= 80  # readable in an 80-column terminal
    # one naming scheme: each protocol's headline score by name, one unit
    assert "| demo-rgbt-student | synthetic (lasher)" in text and "| SR " in text
    assert "| demo-rgbd-student | synthetic (depthtrack) | depth" in text and "| F " in text
    assert "synthetic (visevent)" in text and "event" in text

    data = json.loads((out / "report.json").read_text())
    assert data["unit"] == "percent"
    rows = {(row["tracker"], row["protocol"]): row for row in data["rows"]}
    assert len(rows) == 6
    depth = rows[("demo-rgbd-student", "depthtrack")]
    assert depth["headline"]["name"] == "F" and depth["modality"] == "depth"
    original = scored_pair("depthtrack", 1)["student"]
    # percent for RGB-D too, where the per-run tables once printed fractions
    assert depth["headline"]["value"] == pytest.approx(100 * original.scores["F"], abs=1e-3)
    assert depth["scores"]["Pr"] == pytest.approx(100 * original.scores["Pr"], abs=1e-3)
    assert depth["attributes"]["TC"]["sequences"] == 2
    assert rows[("demo-rgbt-teacher", "lasher")]["headline"]["name"] == "SR"

    sheets = sorted(p.name for p in (out / "figures").glob("*.png"))
    assert sheets == ["synthetic-depthtrack.png", "synthetic-lasher.png", "synthetic-visevent.png"]
    for sheet in sheets:
        assert (out / "figures" / sheet).read_bytes()[:4] == b"\x89PNG"


def test_a_bad_path_does_not_hide_the_others(tmp_path, runs, capsys):
    missing = tmp_path / "runs" / "never-evaluated"
    missing.mkdir()
    out = tmp_path / "report"
    assert main(["report", str(runs[0]), str(missing), str(tmp_path / "nowhere"),
                 "--out", str(out), "--no-plots"]) == 2
    captured = capsys.readouterr()
    assert "never-evaluated" in captured.err and "nowhere" in captured.err
    assert "demo-rgbt-student" in (out / "report.md").read_text()
    assert main(["report", str(missing)]) == 2  # nothing readable: one error, nothing written
    assert "no evaluation report" in capsys.readouterr().err


def test_protocol_facts_drive_the_panels():
    """Short-term protocols plot success and precision over thresholds; DepthTrack plots the
    precision-recall curve (precision over recall) and the F-score over the threshold."""
    assert [p.y for p in get_protocol("lasher").panels] == ["success", "precision"]
    depth = get_protocol("depthtrack")
    assert [(p.y, p.x) for p in depth.panels] == [("precision", "recall"), ("f_score", None)]
    assert get_protocol("rgbt234").headline_score == "MSR"
    assert get_protocol("gtot").curve_scores == {"precision": "MPR", "success": "MSR"}

    results = scored_pair("depthtrack", 1)
    plt = _pyplot()
    fig, ax = plt.subplots()
    _panel_axes(ax, depth.panels[0], results)
    line = ax.get_lines()[0]  # the best tracker first: the student
    student = results["student"]
    np.testing.assert_allclose(line.get_xdata(), 100 * student.curves["recall"].mean)
    np.testing.assert_allclose(line.get_ydata(), 100 * student.curves["precision"].mean)
    assert line.get_label() == f"[{100 * student.scores['Pr']:.1f}] student"
    plt.close(fig)


def test_same_tracker_name_in_two_reports_is_told_apart(tmp_path):
    first = evaluated_run(tmp_path / "a", "demo", "thermal", "lasher", 0)
    second = evaluated_run(tmp_path / "b", "demo", "thermal", "lasher", 3)
    (second.parent / "demo").rename(second.parent / "demo-again")
    entries, problems = collect([first, second.parent / "demo-again"])
    assert not problems
    assert {e.tracker for e in entries} == {"demo/demo-student", "demo/demo-teacher",
                                            "demo-again/demo-student", "demo-again/demo-teacher"}
    assert "demo-again/demo-student" in markdown(entries)
    assert len(report_dict(entries)["rows"]) == 4
