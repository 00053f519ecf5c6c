"""Reports, plots and the published tables, from protocol results built in the test."""

from __future__ import annotations

import json

import numpy as np
import pytest
from rich.console import Console

from tests.evaluation.eval_helpers import scored_pair

from mmtrack_kd.evaluation.plots import legend_score, write_plots
from mmtrack_kd.evaluation.published import (
    comparison_table,
    load_published,
    published_scores,
)
from mmtrack_kd.evaluation.report import (
    attribute_table,
    dataset_table,
    format_score,
    overview_table,
    print_report,
    write_json,
)



def render(table) -> str:
    console = Console(width=200, record=True)
    console.print(table)
    return console.export_text()


def test_tables_show_every_tracker_and_score():
    lasher = scored_pair("lasher")
    text = render(dataset_table("lasher", lasher))
    for word in ("student", "teacher", "PR", "NPR", "SR", format_score(lasher["student"].scores["PR"])):
        assert word in text
    attributes = render(attribute_table("lasher", lasher))
    assert "TC" in attributes and "FM" in attributes
    overview = render(overview_table({"lasher": lasher, "depthtrack": scored_pair("depthtrack", 1)}))
    assert "depthtrack" in overview and "F" in overview
    console = Console(width=200, record=True)
    print_report({"lasher": lasher}, console=console)
    assert "per attribute" in console.export_text()


def test_format_score_units():
    """One unit for every protocol: percent (DepthTrack's Pr / Re / F included)."""
    assert format_score(0.7123) == "71.2"
    assert format_score(0.6154) == "61.5"
    assert format_score(float("nan")) == "-"


def test_tables_read_at_80_columns():
    """Long tracker names wrap instead of being cut to ``teac…``; the attribute table has a
    row per tracker (not a column), with the attribute's sequence count."""
    long_names = {f"{name}-with-a-long-run-name": result
                  for name, result in scored_pair("lasher").items()}
    for table in (dataset_table("lasher", long_names), attribute_table("lasher", long_names),
                  overview_table({"lasher": long_names, "depthtrack": scored_pair("depthtrack", 1)})):
        console = Console(width=80, record=True)
        console.print(table)
        text = console.export_text()
        assert "…" not in text
        assert max(len(line) for line in text.splitlines()) <= 80
        assert "%" in text
    attributes = render(attribute_table("lasher", long_names))
    assert "seqs" in attributes and "TC" in attributes


def test_legend_reads_each_protocols_own_score_key():
    """DepthTrack stores precision as ``Pr``: the legend shows that score, not the curve mean."""
    depth = scored_pair("depthtrack", 1)["student"]
    assert legend_score(depth, "precision") == depth.scores["Pr"]
    assert legend_score(depth, "f_score") == depth.scores["F"]
    lasher = scored_pair("lasher")["student"]
    assert legend_score(lasher, "normalized_precision") == lasher.scores["NPR"]


def test_json_holds_every_number(tmp_path):
    scored = {"lasher": scored_pair("lasher"), "depthtrack": scored_pair("depthtrack", 1)}
    path = write_json(scored, tmp_path / "report.json")
    data = json.loads(path.read_text())  # strict JSON: no NaN / Infinity tokens
    student = data["datasets"]["lasher"]["student"]
    assert student["scores"] == pytest.approx(scored["lasher"]["student"].scores)
    assert set(student["per_attribute"]) == {"TC", "FM"}
    assert "precision" in student["curves"]
    assert data["datasets"]["depthtrack"]["teacher"]["protocol"] == "depthtrack"


@pytest.mark.slow
def test_plots_are_png(tmp_path):
    scored = {"lasher": scored_pair("lasher"), "depthtrack": scored_pair("depthtrack", 1)}
    paths = write_plots(scored, tmp_path / "plots")
    names = {p.name for p in paths}
    assert {"lasher_precision.png", "lasher_success.png", "lasher_normalized_precision.png",
            "lasher_attributes.png", "depthtrack_f_score.png", "depthtrack_sheet.png",
            "lasher_sheet.png"} <= names
    for path in paths:
        assert path.read_bytes()[:4] == b"\x89PNG"


def test_published_numbers_as_printed():
    data = load_published()
    lasher = published_scores("LasHeR")
    assert lasher["Ours-Student"] == pytest.approx({"PR": 0.714, "SR": 0.567})
    assert lasher["Ours-Teacher"] == pytest.approx({"PR": 0.712, "SR": 0.565})
    assert published_scores("RGBT234")["Ours-Teacher"] == pytest.approx({"MPR": 0.883, "MSR": 0.661})
    assert published_scores("GTOT")["Ours-Student"] == pytest.approx({"MPR": 0.924, "MSR": 0.773})
    assert published_scores("VTUAV-LT")["Ours-Student"] == pytest.approx({"MPR": 0.636, "MSR": 0.540})
    assert published_scores("DepthTrack")["Ours-Teacher"] == pytest.approx({"Pr": 0.619, "Re": 0.611, "F": 0.615})
    assert "TBSI" not in published_scores("GTOT")  # printed as '-'
    assert data["benchmarks"]["VisEvent"]["trackers"] == {}
    assert data["benchmarks"]["LasHeR"]["attributes"]["trackers"]["Ours-Student"]["TC"] == {"PR": 63.9, "SR": 50.6}
    assert len(data["benchmarks"]["RGBT234"]["trackers"]) == 25


def test_comparison_table_labels_synthetic_data():
    ours = scored_pair("lasher")
    synthetic = render(comparison_table("synthetic", "lasher", ours))
    assert "NOT comparable" in synthetic and "Ours-Student" in synthetic and "71.4" in synthetic
    real = render(comparison_table("lasher", "lasher", ours, peers=False))
    assert "NOT comparable" not in real and "TBSI" not in real
    assert comparison_table("x", "otb", ours) is None


def test_vtuav_subsets_map_to_their_own_published_rows():
    from mmtrack_kd.evaluation.published import benchmark_for, comparable

    assert benchmark_for("vtuav-lt", "vtuav") == "VTUAV-LT"
    assert benchmark_for("vtuav-st", "vtuav") == "VTUAV-ST"
    assert comparable("vtuav-lt", "vtuav") and comparable("vtuav-st", "vtuav")
    # the plugin with the subset as an option does not say which subset ran: not comparable
    assert not comparable("vtuav", "vtuav")
    assert not comparable("synthetic", "lasher") and comparable("lasher", "lasher")
    assert benchmark_for("visevent", "visevent") is None  # the paper printed no numbers
