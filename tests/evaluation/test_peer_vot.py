"""Our DepthTrack Pr / Re / F against the VOT toolkit's long-term analysis on the same files.

The VOT toolkit (PyPI ``vot-toolkit``; it imports on Python 3.11 with ``attributee==0.1.9``,
not 0.1.10) reads the result files we write with its own ``Trajectory.read`` and scores them with
``vot.analysis.longterm``: ``determine_thresholds`` and ``compute_tpr_curves`` per sequence, then
its ``PrecisionRecallCurve``, ``FScoreCurve`` and ``PrecisionRecall`` aggregations, fed by hand
instead of through a workspace (which needs a stack and a tracker registry). The sequence object
is a stand-in with the two members the analysis uses (``groundtruth()`` and ``size``).
"""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pytest
from tests.evaluation.eval_helpers import import_or_skip, noisy_predictions, random_walk_boxes

from mmtrack_kd.evaluation import GroundTruth, score_results_folder
from mmtrack_kd.data.results_io import (
    atomic_write_text,
    format_boxes,
    write_vot_longterm_result,
)

longterm = import_or_skip("vot.analysis.longterm")


class _Sequence:
    """What ``compute_tpr_curves`` reads from a VOT sequence."""

    def __init__(self, groundtruth: list, size: tuple[int, int]) -> None:
        self._groundtruth = groundtruth
        self.size = size

    def groundtruth(self) -> list:
        return self._groundtruth


def _make_sequence(  # noqa: ANN202
    rng: np.random.Generator, n: int, size: tuple[int, int], at_border: bool
):
    gt = random_walk_boxes(rng, n, size=50)
    if at_border:  # the target crosses the right image border: the toolkit clips to the image
        gt[:, 0] += size[0] - 320
    absent = np.zeros(n, dtype=bool)
    start = int(rng.integers(n // 3, n // 2))
    absent[start : start + n // 6] = True  # the target leaves the view for a while
    gt[absent] = np.nan
    gt = np.round(gt, 4)  # the values the ground-truth file holds
    pred = noisy_predictions(rng, np.nan_to_num(gt, nan=100.0), lost=0.2)
    no_box = absent & (rng.random(n) < 0.6)
    pred[no_box] = np.nan  # the tracker reports no box
    pred[rng.random(n) < 0.03, 2:] = 0.0  # zero-size boxes
    conf = rng.random(n) * np.where(absent, 0.5, 1.0)
    conf[rng.random(n) < 0.02] = np.nan
    return gt, pred, conf


@pytest.mark.parametrize("count", [4, 1])  # more than 98 pooled confidences, and fewer
def test_depthtrack_equals_vot_longterm_analysis(tmp_path: Path, count: int) -> None:
    from vot.region.io import read_trajectory
    from vot.tracker.results import Results, Trajectory
    from vot.utilities.data import Grid
    from vot.workspace.storage import LocalStorage

    rng = np.random.default_rng(31 + count)
    gts, vot_sequences, trajectories = [], [], []
    for i in range(count):
        size = (640, 360) if i != 2 else (640, 320)
        n = int(rng.integers(60, 160)) if count > 1 else 80
        gt, pred, conf = _make_sequence(rng, n, size, at_border=i % 2 == 0)
        name = f"adapter{i:02d}_indoor"
        gts.append(GroundTruth(name, gt, image_size=size))
        write_vot_longterm_result(tmp_path / "T", name, pred, conf, times=np.full(n, 0.02))
        gt_file = atomic_write_text(tmp_path / "gt" / name / "groundtruth.txt", format_boxes(gt))
        vot_sequences.append(_Sequence(read_trajectory(str(gt_file)), size))
        folder = tmp_path / "T" / "longterm" / name
        trajectories.append(Trajectory.read(Results(LocalStorage(str(folder))), f"{name}_001"))

    # the toolkit's analysis, step by step as its analysis classes chain it
    confidences = [
        [t.properties(i).get("confidence", 0) for i in range(len(t))] for t in trajectories
    ]
    thresholds = longterm.determine_thresholds(itertools.chain(*confidences), 100)
    per_sequence = []
    for trajectory, conf, sequence in zip(trajectories, confidences, vot_sequences):
        pr, re = longterm.compute_tpr_curves(
            trajectory.regions(), conf, sequence, thresholds, True, True, None
        )
        per_sequence.append((list(zip(pr, re)), thresholds))
    curve = longterm.PrecisionRecallCurve().aggregate(None, vot_sequences, per_sequence)
    curve_grid = Grid(1, 1)
    curve_grid[0, 0] = curve
    f_grid = longterm.FScoreCurve().compute(None, [None], vot_sequences, [curve_grid])
    joined = longterm.PrecisionRecall().compute(None, [None], vot_sequences, [curve_grid, f_grid])
    vot_pr, vot_re, vot_f = joined[0, 0]

    ours = score_results_folder("depthtrack", tmp_path / "T", gts)
    np.testing.assert_array_equal(ours.curves["f_score"].thresholds, thresholds)
    recall_curve = [re for re, _ in curve[0]]  # the toolkit stores (recall, precision)
    precision_curve = [pr for _, pr in curve[0]]
    np.testing.assert_allclose(ours.curves["precision"].mean, precision_curve, atol=1e-12)
    np.testing.assert_allclose(ours.curves["recall"].mean, recall_curve, atol=1e-12)
    np.testing.assert_allclose(ours.curves["f_score"].mean, f_grid[0, 0][0], atol=1e-12)
    assert ours.scores == {
        "Pr": pytest.approx(vot_pr, abs=1e-12),
        "Re": pytest.approx(vot_re, abs=1e-12),
        "F": pytest.approx(vot_f, abs=1e-12),
    }
    for name, (pr_re, _) in zip([g.name for g in gts], per_sequence):
        np.testing.assert_allclose(
            ours.curves["precision"].per_sequence[name], [p for p, _ in pr_re], atol=1e-12
        )


def test_binary_trajectory_written_by_the_toolkit(tmp_path: Path) -> None:
    from vot.region import Special
    from vot.region.io import write_trajectory_binary
    from vot.region.shapes import Rectangle

    from mmtrack_kd.data.results_io import read_vot_longterm_result, vot_longterm_files

    files = vot_longterm_files(tmp_path, "s")
    files.boxes.parent.mkdir(parents=True)
    regions = [Special(1), Rectangle(1.5, 2.25, 30, 40), Special(0), Rectangle(5, 6, 7, 8)]
    with open(files.boxes_binary, "wb") as handle:
        write_trajectory_binary(handle, regions)
    files.confidence.write_text("\n0.5\n0.25\n0.125\n")
    result = read_vot_longterm_result(tmp_path, "s")
    np.testing.assert_array_equal(result.boxes[[1, 3]], [[1.5, 2.25, 30, 40], [5, 6, 7, 8]])
    assert np.isnan(result.boxes[[0, 2]]).all()
    np.testing.assert_array_equal(result.confidences, [0, 0.5, 0.25, 0.125])
