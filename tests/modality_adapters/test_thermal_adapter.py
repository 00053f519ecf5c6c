"""The ``thermal`` adapter: 8-bit grey/colour, 16-bit radiometric, options and errors."""

from __future__ import annotations

import numpy as np
import pytest
from pydantic import ValidationError

from mmtrack_kd.errors import DataError
from mmtrack_kd.data import IMAGENET_MEAN, IMAGENET_STD
from modality_adapters.thermal import ThermalAdapter, ThermalOptions


def read_one(tmp_path, make_sequence, write_image, image, adapter=None, name="0001.png"):
    path = write_image(tmp_path / "infrared" / name, image)
    return (adapter or ThermalAdapter()).read(make_sequence({"thermal": [path]}), 0)


def test_three_channel_8bit_is_read_as_rgb(tmp_path, make_sequence, write_image):
    rgb = np.random.default_rng(1).integers(0, 256, size=(5, 7, 3), dtype=np.uint8)
    frame = read_one(tmp_path, make_sequence, write_image, rgb[:, :, ::-1].copy())
    assert frame.shape == (5, 7, 3) and frame.dtype == np.float32
    np.testing.assert_allclose(frame, rgb / 255.0, atol=1e-7)


def test_single_channel_8bit_is_replicated(tmp_path, make_sequence, write_image):
    grey = np.arange(20, dtype=np.uint8).reshape(4, 5) * 12
    frame = read_one(tmp_path, make_sequence, write_image, grey)
    assert frame.shape == (4, 5, 3)
    for channel in range(3):
        np.testing.assert_allclose(frame[:, :, channel], grey / 255.0, atol=1e-7)
    np.testing.assert_array_equal(ThermalAdapter().render(frame), np.dstack([grey] * 3))


def test_alpha_channel_is_dropped(tmp_path, make_sequence, write_image):
    bgra = np.zeros((3, 3, 4), np.uint8)
    bgra[..., 0], bgra[..., 1], bgra[..., 2], bgra[..., 3] = 10, 20, 30, 255
    frame = read_one(tmp_path, make_sequence, write_image, bgra)
    np.testing.assert_allclose(frame[0, 0], np.array([30, 20, 10]) / 255.0, atol=1e-7)


def test_16bit_minmax_stretches_each_frame(tmp_path, make_sequence, write_image):
    raw = np.array([[7000, 7500], [8000, 9000]], dtype=np.uint16)
    frame = read_one(tmp_path, make_sequence, write_image, raw)
    expected = (raw.astype(np.float64) - 7000) / 2000
    assert frame.shape == (2, 2, 3) and frame.dtype == np.float32
    np.testing.assert_allclose(frame[:, :, 0], expected, atol=1e-7)
    assert frame.min() == 0.0 and frame.max() == 1.0


def test_16bit_fixed_range_maps_raw_units_and_clips(tmp_path, make_sequence, write_image):
    raw = np.array([[6000, 7500], [8500, 12000]], dtype=np.uint16)
    adapter = ThermalAdapter(ThermalOptions(sixteen_bit="fixed", sixteen_bit_range=(7000, 9000)))
    frame = read_one(tmp_path, make_sequence, write_image, raw, adapter)
    np.testing.assert_allclose(frame[:, :, 1], [[0.0, 0.25], [0.75, 1.0]], atol=1e-7)


def test_flat_16bit_frame_is_black_not_nan(tmp_path, make_sequence, write_image):
    frame = read_one(tmp_path, make_sequence, write_image, np.full((3, 4), 8123, np.uint16))
    assert np.all(frame == 0.0)


def test_float_tiff_goes_through_the_raw_rule(tmp_path, make_sequence, write_image):
    raw = np.array([[20.5, 30.5], [25.5, 40.5]], dtype=np.float32)  # e.g. degrees Celsius
    frame = read_one(tmp_path, make_sequence, write_image, raw, name="0001.tiff")
    np.testing.assert_allclose(frame[:, :, 2], (raw - 20.5) / 20.0, atol=1e-6)


def test_statistics_are_options_with_imagenet_defaults():
    adapter = ThermalAdapter()
    assert adapter.mean == IMAGENET_MEAN and adapter.std == IMAGENET_STD
    custom = ThermalAdapter(ThermalOptions(mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25)))
    frame = np.full((2, 2, 3), 0.75, np.float32)
    np.testing.assert_allclose(custom.normalise(frame), 1.0)


@pytest.mark.parametrize(
    "options",
    [
        {"sixteen_bit_range": (9000, 7000)},
        {"std": (0.2, 0.0, 0.2)},
        {"sixteen_bit": "percentile"},
        {"colour": "grey"},  # a typo is an error, not silently ignored
    ],
)
def test_bad_options_are_rejected(options):
    with pytest.raises(ValidationError):
        ThermalOptions.model_validate(options)


def test_options_survive_a_recipe_round_trip():
    options = ThermalOptions(sixteen_bit="fixed", sixteen_bit_range=(100, 200))
    again = ThermalOptions.model_validate(options.model_dump(mode="json"))
    assert again == options


def test_missing_and_unreadable_frames_name_the_file(tmp_path, make_sequence, where):
    missing = tmp_path / "infrared" / "i000001.jpg"
    with pytest.raises(DataError) as error:
        ThermalAdapter().read(make_sequence({"thermal": [missing]}), 0)
    assert where in str(error.value) and str(missing) in str(error.value)
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"\x89PNG garbage")
    with pytest.raises(DataError) as error:
        ThermalAdapter().read(make_sequence({"thermal": [broken]}), 0)
    assert where in str(error.value) and str(broken) in str(error.value)
