"""``benchmark --what data``: the loader's samples/s beside the training step's time."""

from __future__ import annotations

import json
import tempfile

import pytest
import yaml

from mmtrack_kd.cli import main

from .conftest import recipe_data


@pytest.mark.slow
def test_data_benchmark_prints_loader_and_step_figures_and_leaves_nothing(synthetic_root, tmp_path,
                                                                           monkeypatch):
    recipe_file = tmp_path / "tiny.yaml"
    recipe_file.write_text(yaml.safe_dump(recipe_data(synthetic_root, tmp_path / "out")))
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    out = tmp_path / "data.json"
    assert main(["benchmark", "--what", "data", "--recipe", str(recipe_file), "--json", str(out)]) == 0
    figures = json.loads(out.read_text())
    assert [row["workers"] for row in figures["loader"]] == [0]
    assert all(row["samples_per_second"] > 0 for row in figures["loader"])
    assert [row["stage"] for row in figures["steps"]] == ["teacher", "student"]
    assert all(row["seconds_per_step"] > 0 for row in figures["steps"])
    # No run folders left behind (torch's own compile cache may appear there; it is not ours).
    assert [p for p in scratch.iterdir() if not p.name.startswith("torchinductor")] == []
    assert not (tmp_path / "out").exists()
