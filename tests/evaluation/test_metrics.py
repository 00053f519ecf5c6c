"""Per-frame metrics: hand-computed values, NaN safety, and the VOT rasteriser emulation."""

from __future__ import annotations

import numpy as np
import pytest

from tests.evaluation.eval_helpers import import_or_skip
from mmtrack_kd.evaluation.metrics import (
    centre_error,
    empty_region_overlap,
    iou,
    normalised_centre_error,
    vot_overlap,
)

pytestmark = pytest.mark.filterwarnings("error")  # NaN-safe means no RuntimeWarning either


def test_centre_error_hand_values() -> None:
    gt = np.array([[10, 10, 20, 20], [0, 0, 10, 10]], float)
    pred = np.array([[13, 14, 20, 20], [0, 0, 20, 10]], float)
    # centres move by (3, 4) -> 5; second: width grows by 10 -> centre moves 5 in x
    np.testing.assert_allclose(centre_error(pred, gt), [5.0, 5.0])


def test_centre_error_nan_is_inf() -> None:
    gt = np.array([[10, 10, 20, 20], [np.nan] * 4], float)
    pred = np.array([[np.nan, 10, 20, 20], [1, 1, 1, 1]], float)
    assert np.isinf(centre_error(pred, gt)).all()


def test_normalised_centre_error() -> None:
    gt = np.array([[0, 0, 10, 20], [0, 0, 0, 20]], float)
    pred = np.array([[3, 8, 10, 20], [3, 8, 10, 20]], float)
    err = normalised_centre_error(pred, gt)
    assert err[0] == pytest.approx(np.hypot(0.3, 0.4))
    assert np.isinf(err[1])  # zero-width ground truth: undefined


def test_iou_hand_values() -> None:
    gt = np.array([[0, 0, 10, 10]] * 6, float)
    pred = np.array(
        [
            [0, 0, 10, 10],  # identical
            [5, 0, 10, 10],  # half shifted: 50 / 150
            [20, 20, 5, 5],  # disjoint
            [np.nan, 0, 10, 10],  # NaN
            [0, 0, 0, 10],  # zero width
            [2, 2, -5, -5],  # negative size
        ]
    )
    np.testing.assert_allclose(iou(pred, gt), [1.0, 1 / 3, 0, 0, 0, 0])


def test_iou_continuous_subpixel() -> None:
    gt = np.array([[0.5, 0.5, 2.0, 2.0]])
    pred = np.array([[1.5, 0.5, 2.0, 2.0]])
    assert iou(pred, gt)[0] == pytest.approx(2.0 / 6.0)


def test_empty_region_overlap() -> None:
    gt = np.array([[0, 0, 10, 10], [np.nan] * 4, [np.nan] * 4, [0, 0, 10, 10]], float)
    pred = np.array([[np.nan] * 4, [np.nan] * 4, [0, 0, 5, 5], [0, 0, 10, 10]], float)
    no = np.zeros(4, bool)
    np.testing.assert_allclose(empty_region_overlap(pred, gt, no, no), [0, 1, 0, 1])


def test_vot_overlap_hand_cases() -> None:
    gt = np.array([[0, 0, 10, 10], [np.nan] * 4, [600, 300, 60, 60], [0, 0, 10, 10]], float)
    pred = np.array([[0, 0, 10, 10], [np.nan] * 4, [610, 310, 60, 60], [5, 0, 10, 10]], float)
    no = np.zeros(4, bool)
    out = vot_overlap(pred, gt, no, no, bounds=(640, 360))
    # identical; both empty; clipped to the 640 x 360 image: 30 x 50 of 40 x 60; half shift
    np.testing.assert_allclose(out, [1.0, 1.0, (30 * 50) / (40 * 60), 50 / 150])
    # the initialisation marker (an empty prediction) against a visible target
    assert vot_overlap(pred[:1], gt[:1], np.array([True]), np.array([False]))[0] == 0.0


def _random_rectangles(rng: np.random.Generator, n: int) -> np.ndarray:
    def column(lo: float, hi: float) -> np.ndarray:
        values = rng.uniform(lo, hi, n)
        halves = np.round(values * 2) / 2  # exact .5 values exercise round-half-to-even
        return np.where(rng.random(n) < 0.5, values, halves)

    return np.stack([column(-30, 80), column(-30, 60), column(-3, 40), column(-3, 40)], axis=1)


@pytest.mark.slow
@pytest.mark.parametrize("bounds", [(64, 48), None])
def test_vot_overlap_equals_vot_toolkit(bounds: tuple[int, int] | None) -> None:
    raster = import_or_skip("vot.region.raster")
    shapes = import_or_skip("vot.region.shapes")
    region = import_or_skip("vot.region")
    rng = np.random.default_rng(7)
    n = 3000
    a, b = _random_rectangles(rng, n), _random_rectangles(rng, n)
    a_empty, b_empty = rng.random(n) < 0.1, rng.random(n) < 0.1

    def as_region(box: np.ndarray, empty: bool):  # noqa: ANN202
        return region.Special(0) if empty else shapes.Rectangle(*box)

    expected = np.array(
        [
            raster.calculate_overlap(
                as_region(a[i], a_empty[i]), as_region(b[i], b_empty[i]), bounds
            )
            for i in range(n)
        ]
    )
    np.testing.assert_array_equal(vot_overlap(a, b, a_empty, b_empty, bounds), expected)
