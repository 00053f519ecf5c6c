"""Our LasHeR, RGBT234, RGBT210 and GTOT scores against the ``rgbt`` package on the same files.

The ``rgbt`` package (PyPI ``rgbt``) reads the result files we write and scores them with its
own code. Its documented differences from the official toolkits are kept out of the comparison
by construction, not by tolerance:

* it rounds results to integers on load and computes in float32: the predictions here are
  integers, and frames whose overlap or normalised error lies within 1e-5 of a threshold are
  nudged by a pixel (a float32 value so close to a threshold can fall on the other side);
* it does not drop all-zero sequences (LasHeR): no sequence here has an all-zero curve;
* it does not replace NaN predictions (LasHeR): there are none here (zero and negative sizes
  are, and both replace them);
* its RGBT210 replaces frame 1 by the ground truth, which RGBT210's protocol does not: frame 1
  is the ground truth here;
* its GTOT success grid defaults to 21 points, the protocol uses 51 (0, 0.02, ..., 1): the test
  passes that grid to its ``MSR_GTOT``; it needs ``RGBT_start()`` to read GTOT corners as
  ``w = x2 - x1``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from tests.evaluation.eval_helpers import import_or_skip, noisy_predictions, random_walk_boxes, write_otb_folder

from mmtrack_kd.evaluation import GroundTruth, score_results_folder
from mmtrack_kd.evaluation.metrics import iou, normalised_centre_error
from mmtrack_kd.evaluation.protocols.lasher import fill_bad_predictions

rgbt = import_or_skip("rgbt")

LASHER_ATTRIBUTES = (
    "NO PO TO HO MB LI HI AIV LR DEF BC SA CM TC FL OV FM SV ARC".split()
)
RGBT234_ATTRIBUTES = "BC CM DEF FM HO LI LR MB NO TC PO SC".split()


def _near(values: np.ndarray, grid: np.ndarray, exact: tuple[float, ...]) -> np.ndarray:
    """Frames whose value is within 1e-5 of a grid value (values in ``exact`` are safe)."""
    close = (np.abs(values[:, None] - grid[None, :]) < 1e-5).any(axis=1)
    return close & ~np.isin(values, exact)


def _untie(
    pred: np.ndarray,
    box_sets: list[np.ndarray],
    lasher: bool = False,
    success_grids: tuple[np.ndarray, ...] = (np.linspace(0, 1, 21),),
) -> np.ndarray:
    """Nudge predictions until no scored value sits on a threshold (see module docstring)."""
    pred = pred.copy()
    for _ in range(100):
        effective = fill_bad_predictions(pred, box_sets[0]) if lasher else pred
        source = np.arange(len(pred))
        if lasher:  # a replaced frame repeats an earlier one: nudge that one
            bad = (pred[:, 2] <= 0) | (pred[:, 3] <= 0)
            bad[0] = False
            source = np.maximum.accumulate(np.where(bad, 0, source))
        tied = np.zeros(len(pred), dtype=bool)
        for boxes in box_sets:
            for grid in success_grids:
                tied |= _near(iou(effective, boxes), grid, (0.0, 1.0))
            if lasher:
                npr = normalised_centre_error(effective, boxes)
                tied |= _near(npr, np.linspace(0, 0.5, 51), (0.0,))
        tied[0] &= not lasher  # LasHeR's frame 1 is the ground truth
        if not tied.any():
            return pred
        pred[np.unique(source[tied]), 0] += 1
    raise AssertionError("could not separate the test data from the thresholds")


def _integer_sequence(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
    gt = random_walk_boxes(rng, n, integer=True, size=float(rng.uniform(25, 90)))
    pred = noisy_predictions(rng, gt, integer=True, lost=0.15)
    pred[rng.random(n) < 0.05, 2] = 0  # zero width
    pred[rng.random(n) < 0.03, 3] = -3  # negative height
    return gt, pred


def _assert_curves(ours, key: str, names: list[str], theirs: np.ndarray) -> None:  # noqa: ANN001
    stack = np.stack([ours.curves[key].per_sequence[n] for n in names])
    np.testing.assert_allclose(stack, theirs, rtol=0, atol=1e-12)


def test_lasher_pr_npr_sr_equal_rgbt(tmp_path: Path) -> None:
    rng = np.random.default_rng(11)
    root = tmp_path / "LasHeR"
    (root / "lasher_gt").mkdir(parents=True)
    (root / "AttriSeqsTxt").mkdir()
    names = [f"seq{i}" for i in range(8)] + ["boy`s'bag"]
    gts, preds = [], {}
    for i, name in enumerate(names):
        n = int(rng.integers(40, 120))
        gt, pred = _integer_sequence(rng, n)
        gt[rng.random(n) < 0.05] = 0  # absent target: 0,0,0,0 (invalid frame)
        if i == 2:
            gt[5:12, 0] = 0  # target at the left border: x = 0 is "invalid" too
        pred = _untie(pred, [gt], lasher=True)
        if i % 3 == 0:
            pred = np.concatenate([pred, pred[:5]])  # longer than the ground truth: cut
        flags = rng.random(len(LASHER_ATTRIBUTES)) < 0.4
        np.savetxt(root / "lasher_gt" / f"{name}.txt", gt, fmt="%d", delimiter=",")
        (root / "AttriSeqsTxt" / f"{name}.txt").write_text(",".join(str(int(f)) for f in flags))
        attributes = dict(zip(LASHER_ATTRIBUTES, flags.tolist()))
        gts.append(GroundTruth(name, gt, attributes=attributes))
        preds[name] = pred
    (root / "lashertest.txt").write_text("\n".join(names) + "\n")
    tracker_dir = tmp_path / "results" / "ours"
    write_otb_folder(tracker_dir, preds)

    ours = score_results_folder("lasher", tracker_dir, gts)
    dataset = rgbt.LasHeR(
        gt_path=str(root / "lasher_gt") + "/", seq_name_path=str(root / "lashertest.txt")
    )
    dataset("ours", str(tracker_dir))
    assert not any(ours.dropped.values())  # rgbt does not drop; nothing to drop here
    for key, headline, metric in (
        ("precision", "PR", dataset.PR),
        ("normalized_precision", "NPR", dataset.NPR),
        ("success", "SR", dataset.SR),
    ):
        value, curves = metric("ours")
        _assert_curves(ours, key, names, curves)
        assert ours.scores[headline] == pytest.approx(value, abs=1e-12)
        for attribute in ("TC", "LI", "PO"):
            subset = getattr(dataset, attribute)
            if not subset:
                continue
            sub_value, _ = metric("ours", seqs=subset)
            assert list(ours.per_attribute[attribute].sequences) == list(subset)
            assert ours.per_attribute[attribute].scores[headline] == pytest.approx(
                sub_value, abs=1e-12
            )


def _write_attribute_table(folder: Path, names: list[str], flags: np.ndarray) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "SequencesName.txt").write_text("\n".join(names))
    for j, attribute in enumerate(RGBT234_ATTRIBUTES):
        (folder / f"{attribute}.txt").write_text("\n".join(str(int(f)) for f in flags[:, j]))


def test_rgbt234_mpr_msr_equal_rgbt(tmp_path: Path) -> None:
    rng = np.random.default_rng(12)
    root = tmp_path / "RGBT234"
    names = [f"car{i}" for i in range(7)]
    flags = rng.random((len(names), len(RGBT234_ATTRIBUTES))) < 0.4
    flags[0] = True
    gts, preds = [], {}
    for i, name in enumerate(names):
        n = int(rng.integers(40, 100))
        visible, pred = _integer_sequence(rng, n)
        infrared = visible + rng.integers(-3, 4, visible.shape)
        pred = _untie(pred, [visible, infrared])
        seq_dir = root / "rgbt234_gt" / name
        seq_dir.mkdir(parents=True)
        np.savetxt(seq_dir / "visible.txt", visible, fmt="%d", delimiter=",")
        np.savetxt(seq_dir / "infrared.txt", infrared, fmt="%d", delimiter=",")
        attributes = dict(zip(RGBT234_ATTRIBUTES, flags[i].tolist()))
        modality = {"visible": visible, "infrared": infrared}
        gts.append(GroundTruth(name, visible, modality_boxes=modality, attributes=attributes))
        preds[name] = pred
    _write_attribute_table(root / "attr_txt", names, flags)
    tracker_dir = tmp_path / "results" / "ours"
    write_otb_folder(tracker_dir, preds)

    ours = score_results_folder("rgbt234", tracker_dir, gts)
    dataset = rgbt.RGBT234(
        gt_path=str(root / "rgbt234_gt") + "/",
        seq_name_path=str(root / "attr_txt" / "SequencesName.txt"),
    )
    dataset("ours", str(tracker_dir))
    mpr, mpr_curves = dataset.MPR("ours")
    msr, msr_curves = dataset.MSR("ours")
    _assert_curves(ours, "precision", names, mpr_curves)
    _assert_curves(ours, "success", names, msr_curves)
    assert ours.scores == {
        "MPR": pytest.approx(mpr, abs=1e-12),
        "MSR": pytest.approx(msr, abs=1e-12),
    }
    subset = dataset.TC
    assert ours.per_attribute["TC"].scores["MPR"] == pytest.approx(
        dataset.MPR("ours", seqs=subset)[0], abs=1e-12
    )
    assert ours.per_attribute["TC"].scores["MSR"] == pytest.approx(
        dataset.MSR("ours", seqs=subset)[0], abs=1e-12
    )


def test_rgbt210_pr_sr_equal_rgbt(tmp_path: Path) -> None:
    rng = np.random.default_rng(13)
    root = tmp_path / "RGBT210"
    names = [f"kite{i}" for i in range(6)]
    flags = rng.random((len(names), len(RGBT234_ATTRIBUTES))) < 0.5
    gts, preds = [], {}
    for name in names:
        gt, pred = _integer_sequence(rng, int(rng.integers(40, 100)))
        pred[0] = gt[0]  # rgbt replaces frame 1; RGBT210's protocol does not
        pred = _untie(pred, [gt])
        (root / "groundtruth" / name).mkdir(parents=True)
        np.savetxt(root / "groundtruth" / name / "init.txt", gt, fmt="%d", delimiter=",")
        gts.append(GroundTruth(name, gt))
        preds[name] = pred
    _write_attribute_table(root / "attr_txt", names, flags)
    tracker_dir = tmp_path / "results" / "ours"
    write_otb_folder(tracker_dir, preds)

    ours = score_results_folder("rgbt210", tracker_dir, gts)
    dataset = rgbt.RGBT210(
        gt_path=str(root / "groundtruth") + "/",
        seq_name_path=str(root / "attr_txt" / "SequencesName.txt"),
    )
    dataset("ours", str(tracker_dir))
    pr, pr_curves = dataset.PR("ours")
    sr, sr_curves = dataset.SR("ours")
    _assert_curves(ours, "precision", names, pr_curves)
    _assert_curves(ours, "success", names, sr_curves)
    assert ours.scores == {"PR": pytest.approx(pr, abs=1e-12), "SR": pytest.approx(sr, abs=1e-12)}


def test_gtot_pooled_mpr_msr_equal_rgbt(tmp_path: Path) -> None:
    from rgbt.metrics import MSR_GTOT
    from rgbt.utils import RGBT_end, RGBT_start

    rng = np.random.default_rng(14)
    root = tmp_path / "GTOT"
    names = [f"Black{i}" for i in range(6)]
    success_grid = np.linspace(0, 1, 51)
    gts, preds = [], {}
    for name in names:
        visible, pred = _integer_sequence(rng, int(rng.integers(30, 120)))  # unequal lengths
        thermal = visible + rng.integers(-2, 3, visible.shape)
        pred = _untie(pred, [visible, thermal], success_grids=(success_grid,))
        seq_dir = root / "groundtruth" / name
        seq_dir.mkdir(parents=True)
        for file, boxes in (("groundTruth_v.txt", visible), ("groundTruth_i.txt", thermal)):
            corners = np.concatenate([boxes[:, :2], boxes[:, :2] + boxes[:, 2:]], axis=1)
            np.savetxt(seq_dir / file, corners, fmt="%d", delimiter=" ")
        modality = {"visible": visible, "thermal": thermal}
        gts.append(GroundTruth(name, visible, modality_boxes=modality))
        preds[name] = pred
    (root / "SequencesName.txt").write_text("\n".join(names) + "\n")
    tracker_dir = tmp_path / "results" / "ours"
    write_otb_folder(tracker_dir, preds)

    ours = score_results_folder("gtot", tracker_dir, gts)
    RGBT_start()  # GTOT corners: width = x2 - x1, as the protocol defines
    try:
        dataset = rgbt.GTOT(
            gt_path=str(root / "groundtruth") + "/",
            seq_name_path=str(root / "SequencesName.txt"),
        )
    finally:
        RGBT_end()
    dataset.MSR_fun = MSR_GTOT(thr=success_grid)
    dataset("ours", str(tracker_dir))
    mpr, _ = dataset.MPR("ours")
    msr, _ = dataset.MSR("ours")
    assert ours.scores["MPR"] == pytest.approx(mpr, abs=1e-12)
    assert ours.scores["MSR"] == pytest.approx(msr, abs=1e-12)
