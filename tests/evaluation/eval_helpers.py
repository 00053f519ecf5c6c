"""Helpers of the evaluation tests: synthetic tracking data, optional peer imports."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pytest

from mmtrack_kd.data.results_io import otb_result_path, write_otb_result


def random_walk_boxes(
    rng: np.random.Generator, n: int, integer: bool = False, size: float = 60.0
) -> np.ndarray:
    """``(n, 4)`` ground-truth boxes drifting slowly; positive coordinates and sizes."""
    centre = np.array([320.0, 240.0]) + np.cumsum(rng.normal(0, 2.0, (n, 2)), axis=0)
    wh = np.clip(size + np.cumsum(rng.normal(0, 0.7, (n, 2)), axis=0), 12, None)
    boxes = np.concatenate([centre - wh / 2, wh], axis=1)
    return np.round(boxes) if integer else boxes


def noisy_predictions(
    rng: np.random.Generator, gt: np.ndarray, integer: bool = False, lost: float = 0.1
) -> np.ndarray:
    """Predictions around ``gt``: small noise, and a ``lost`` share of frames far away."""
    scale = gt[:, 2:].repeat(2, axis=1)
    pred = gt + rng.normal(0, 0.12, gt.shape) * scale
    far = rng.random(len(gt)) < lost
    pred[far, :2] += rng.uniform(40, 120, (int(far.sum()), 2))
    return np.round(pred) if integer else pred


def write_otb_folder(tracker_dir: Path, results: Mapping[str, np.ndarray]) -> None:
    """Write each sequence's ``(N, 4)`` boxes as ``<tracker_dir>/<sequence>.txt`` (OTB layout)."""
    for name, boxes in results.items():
        write_otb_result(otb_result_path(tracker_dir, name), boxes)


def scored_pair(protocol: str, seed: int = 0) -> dict:
    """Two trackers' results (``student`` loses 10 % of frames, ``teacher`` 30 %) on four
    40-frame sequences with attributes ``TC`` and ``FM``, under ``protocol``."""
    from mmtrack_kd.evaluation import GroundTruth, get_protocol

    rng = np.random.default_rng(seed)
    gts = [GroundTruth(f"seq{i}", random_walk_boxes(rng, 40), attributes={"TC": i % 2 == 0, "FM": i < 2})
           for i in range(4)]
    out = {}
    for tracker, lost in (("student", 0.1), ("teacher", 0.3)):
        preds = {gt.name: noisy_predictions(rng, gt.boxes, lost=lost) for gt in gts}
        conf = {gt.name: rng.random(len(gt)) for gt in gts}
        out[tracker] = get_protocol(protocol).score(preds, gts, confidences=conf)
    return out


def import_or_skip(name: str):  # noqa: ANN201 - returns a module
    """``pytest.importorskip`` that also skips when importing fails with a non-ImportError.

    vot-toolkit 0.9.0 with attributee 0.1.10 fails at import time with a ``TypeError`` on
    Python 3.11 (attributee 0.1.9 works); a broken optional peer should skip, not error.
    """
    try:
        return pytest.importorskip(name)
    except pytest.skip.Exception:
        raise
    except Exception as error:  # noqa: BLE001
        pytest.skip(
            f"{name} cannot be imported: {type(error).__name__}: {error}",
            allow_module_level=True,
        )
