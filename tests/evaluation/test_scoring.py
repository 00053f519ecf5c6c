"""Scoring a result folder: read in the protocol's own result layout, scored as in memory."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from mmtrack_kd.data.results_io import otb_result_path, write_otb_result
from mmtrack_kd.errors import DataError
from mmtrack_kd.evaluation import GroundTruth, get_protocol, score_results_folder
from tests.evaluation.eval_helpers import noisy_predictions, random_walk_boxes


def _ground_truths(rng: np.random.Generator, count: int, n: int) -> list[GroundTruth]:
    gts = []
    for i in range(count):
        boxes = random_walk_boxes(rng, n)
        gts.append(GroundTruth(f"s{i}", boxes, modality_boxes={"v": boxes, "i": boxes + 2}))
    return gts


@pytest.mark.parametrize("protocol", ["lasher", "gtot", "depthtrack"])
def test_score_results_folder_matches_in_memory(tmp_path: Path, protocol: str) -> None:
    rng = np.random.default_rng(2)
    gts = _ground_truths(rng, 3, 50)
    preds = {g.name: noisy_predictions(rng, g.boxes) for g in gts}
    confs = {g.name: rng.random(50) for g in gts}
    for g in gts:
        preds[g.name] = np.round(preds[g.name], 4)  # what the files hold
        get_protocol(protocol).result_layout.write(tmp_path, g.name, preds[g.name], confs[g.name])
    from_files = score_results_folder(protocol, tmp_path, gts)
    in_memory = get_protocol(protocol).score(preds, gts, confidences=confs)
    assert from_files.scores == pytest.approx(in_memory.scores, abs=1e-12)


def test_score_results_folder_short_file_is_named(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    gts = _ground_truths(rng, 2, 20)
    write_otb_result(otb_result_path(tmp_path, "s0"), gts[0].boxes)
    write_otb_result(otb_result_path(tmp_path, "s1"), gts[1].boxes[:15])
    with pytest.raises(DataError, match=r"s1\.txt: 15 boxes for the 20 ground-truth frames"):
        score_results_folder("otb", tmp_path, gts)
    (tmp_path / "s0.txt").unlink()
    with pytest.raises(DataError, match=r"s0\.txt: no result for sequence 's0'"):
        score_results_folder("lasher", tmp_path, gts)
