"""Our OTB curves against ``got10k``'s OTB experiment report on the same result files.

``got10k`` (PyPI ``got10k``) reads ``<tracker>/<seq>.txt`` with ``numpy.loadtxt(delimiter=",")``
and replaces frame 1 by the ground truth; the plain OTB protocol replaces nothing, so frame 1 of
the predictions is the ground truth here. Its IoU adds ``eps`` to the union; the float boxes here
keep every value away from the thresholds.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from tests.evaluation.eval_helpers import import_or_skip, noisy_predictions, random_walk_boxes, write_otb_folder

from mmtrack_kd.evaluation import GroundTruth, score_results_folder


class _Dataset:
    """The part of got10k's OTB dataset that ``ExperimentOTB.report`` uses."""

    def __init__(self, names: list[str], annos: list[np.ndarray]) -> None:
        self.seq_names = names
        self.annos = annos

    def __len__(self) -> int:
        return len(self.seq_names)

    def __getitem__(self, index: int) -> tuple[list[str], np.ndarray]:
        return [], self.annos[index]


def test_otb_curves_equal_got10k(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    otb = import_or_skip("got10k.experiments.otb")
    rng = np.random.default_rng(21)
    names = [f"Basketball{i}" for i in range(6)]
    gts, preds = [], {}
    for name in names:
        n = int(rng.integers(30, 150))
        gt = np.round(random_walk_boxes(rng, n), 4)  # frame 1 is written exactly
        pred = noisy_predictions(rng, gt, lost=0.2)
        pred[0] = gt[0]  # got10k replaces frame 1 by the ground truth; plain OTB does not
        pred[rng.random(n) < 0.05, 2] = 0.0  # zero width: IoU 0, centre error as computed
        gts.append(GroundTruth(name, gt))
        preds[name] = pred
    result_dir = tmp_path / "results"
    write_otb_folder(result_dir / "ours", preds)

    experiment = otb.ExperimentOTB.__new__(otb.ExperimentOTB)  # no dataset download
    experiment.dataset = _Dataset(names, [g.boxes for g in gts])
    experiment.result_dir = str(result_dir)
    experiment.report_dir = str(tmp_path / "reports")
    experiment.nbins_iou = 21
    experiment.nbins_ce = 51
    monkeypatch.setattr(otb.ExperimentOTB, "plot_curves", lambda self, names: None)
    theirs = experiment.report(["ours"])["ours"]

    ours = score_results_folder("otb", result_dir / "ours", gts)
    overall = theirs["overall"]
    np.testing.assert_allclose(ours.curves["success"].mean, overall["success_curve"], atol=1e-12)
    np.testing.assert_allclose(
        ours.curves["precision"].mean, overall["precision_curve"], atol=1e-12
    )
    assert ours.scores["SR"] == pytest.approx(overall["success_score"], abs=1e-12)
    assert ours.scores["PR"] == pytest.approx(overall["precision_score"], abs=1e-12)
    for name in names:
        seq = theirs["seq_wise"][name]
        np.testing.assert_allclose(
            ours.curves["success"].per_sequence[name], seq["success_curve"], atol=1e-12
        )
        np.testing.assert_allclose(
            ours.curves["precision"].per_sequence[name], seq["precision_curve"], atol=1e-12
        )
