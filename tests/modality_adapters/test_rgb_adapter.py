"""The ``rgb`` adapter: reading, normalisation, rendering and errors that name the file."""

from __future__ import annotations

import numpy as np
import pytest

from mmtrack_kd.errors import DataError
from mmtrack_kd.data import IMAGENET_MEAN, IMAGENET_STD
from modality_adapters.rgb import RGBAdapter


def test_read_returns_rgb_float_in_unit_range(tmp_path, make_sequence, write_image, where):
    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 256, size=(6, 8, 3), dtype=np.uint8)
    path = write_image(tmp_path / "rgb" / "0001.png", rgb[:, :, ::-1])  # OpenCV writes BGR
    sequence = make_sequence({"rgb": [path]})
    adapter = RGBAdapter()

    frame = adapter.read(sequence, 0)

    assert frame.shape == (6, 8, 3) and frame.dtype == np.float32
    assert 0.0 <= frame.min() and frame.max() <= 1.0
    np.testing.assert_allclose(frame, rgb / 255.0, atol=1e-7)
    np.testing.assert_array_equal(adapter.render(frame), rgb)
    assert adapter.channels == 3
    assert adapter.mean == IMAGENET_MEAN and adapter.std == IMAGENET_STD
    normalised = adapter.normalise(frame)
    np.testing.assert_allclose(
        normalised, (frame - np.array(IMAGENET_MEAN)) / np.array(IMAGENET_STD), rtol=1e-5
    )


def test_missing_frame_names_dataset_sequence_and_file(tmp_path, make_sequence, write_image, where):
    missing = tmp_path / "rgb" / "0001.jpg"
    sequence = make_sequence({"rgb": [missing]})
    with pytest.raises(DataError) as error:
        RGBAdapter().read(sequence, 0)
    assert where in str(error.value) and str(missing) in str(error.value)


def test_unreadable_frame_names_the_file(tmp_path, make_sequence, write_image, where):
    broken = tmp_path / "rgb" / "0001.jpg"
    broken.parent.mkdir()
    broken.write_bytes(b"not a jpeg")
    with pytest.raises(DataError) as error:
        RGBAdapter().read(make_sequence({"rgb": [broken]}), 0)
    assert where in str(error.value) and str(broken) in str(error.value)


def test_missing_stream_and_bad_index_are_data_errors(tmp_path, make_sequence, write_image, where):
    path = write_image(tmp_path / "a.png", np.zeros((2, 2, 3), np.uint8))
    with pytest.raises(DataError, match="no 'rgb' frames"):
        RGBAdapter().read(make_sequence({"thermal": [path]}), 0)
    with pytest.raises(DataError, match="out of range"):
        RGBAdapter().read(make_sequence({"rgb": [path]}), 1)
