"""Helpers shared by the adapters: display conversion and statistics estimation."""

from __future__ import annotations

import numpy as np
import pytest

from modality_adapters.common import estimate_statistics, to_uint8_rgb
from modality_adapters.thermal import ThermalAdapter


def test_to_uint8_rgb_clips_rounds_and_repeats_grey():
    grey = np.array([[-0.5, 0.5], [1.0, 2.0]], np.float32)
    image = to_uint8_rgb(grey)
    assert image.shape == (2, 2, 3) and image.dtype == np.uint8
    np.testing.assert_array_equal(image[:, :, 0], [[0, 128], [255, 255]])
    with pytest.raises(ValueError):
        to_uint8_rgb(np.zeros((2, 2, 5)))


def test_estimate_statistics_over_frames(tmp_path, make_sequence, write_image):
    values = (0, 51, 102, 255)
    paths = [
        write_image(tmp_path / f"{i}.png", np.full((2, 3), v, np.uint8))
        for i, v in enumerate(values)
    ]
    sequence = make_sequence({"thermal": paths})
    mean, std = estimate_statistics(ThermalAdapter(), [sequence], step=1)
    expected = np.array(values) / 255.0
    np.testing.assert_allclose(mean, [expected.mean()] * 3, atol=1e-7)
    np.testing.assert_allclose(std, [expected.std()] * 3, atol=1e-7)
    every_other, _ = estimate_statistics(ThermalAdapter(), [sequence], step=2)
    np.testing.assert_allclose(every_other, [expected[::2].mean()] * 3, atol=1e-7)
