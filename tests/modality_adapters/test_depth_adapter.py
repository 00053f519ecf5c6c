"""The ``depth`` adapter against ViPT's rendering rule, its options and its errors."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from pydantic import ValidationError

from mmtrack_kd.errors import DataError
from modality_adapters.depth import DepthAdapter, DepthOptions


def vipt_colormap(depth_path) -> np.ndarray:
    """ViPT's ``get_x_frame(None, depth_path, dtype='colormap', depth_clip=True)``, step by step
    (lib/train/dataset/depth_utils.py): BGR uint8."""
    dp = cv2.imread(str(depth_path), -1)
    max_depth = min(np.median(dp) * 3, 10000)
    dp[dp > max_depth] = max_depth
    dp = cv2.normalize(dp, None, alpha=0, beta=255, norm_type=cv2.NORM_MINMAX)
    dp = np.asarray(dp, dtype=np.uint8)
    return cv2.applyColorMap(dp, cv2.COLORMAP_JET)


@pytest.fixture
def depth_map() -> np.ndarray:
    """uint16 millimetres with invalid zeros, far outliers and a median giving a .5 bound."""
    rng = np.random.default_rng(7)
    depth = rng.integers(300, 4000, size=(24, 32)).astype(np.uint16)
    depth[rng.random(depth.shape) < 0.15] = 0  # missing measurements
    depth[0, :5] = 60000  # far outliers that the clip must cut
    return depth


def read_depth(tmp_path, make_sequence, write_image, depth, **options) -> np.ndarray:
    path = write_image(tmp_path / "depth" / "00000001.png", depth)
    return DepthAdapter(DepthOptions(**options)).read(make_sequence({"depth": [path]}), 0)


def test_jet_equals_vipt_rule_bit_for_bit(tmp_path, make_sequence, write_image, depth_map):
    path = write_image(tmp_path / "depth" / "00000001.png", depth_map)
    expected_bgr = vipt_colormap(path)
    sequence = make_sequence({"depth": [path]})

    as_vipt = DepthAdapter(DepthOptions(jet_order="bgr")).read(sequence, 0)
    as_rgb = DepthAdapter().read(sequence, 0)

    assert as_rgb.shape == (24, 32, 3) and as_rgb.dtype == np.float32
    np.testing.assert_array_equal(np.rint(as_vipt * 255).astype(np.uint8), expected_bgr)
    np.testing.assert_array_equal(np.rint(as_rgb * 255).astype(np.uint8), expected_bgr[:, :, ::-1])
    # Rendering shows the true JET colours whichever order the model is fed.
    np.testing.assert_array_equal(DepthAdapter().render(as_rgb), expected_bgr[:, :, ::-1])
    vipt_adapter = DepthAdapter(DepthOptions(jet_order="bgr"))
    np.testing.assert_array_equal(vipt_adapter.render(as_vipt), expected_bgr[:, :, ::-1])


def test_median3_levels_by_hand():
    depth = np.array([[0, 1000, 2000], [3000, 4000, 60000]], dtype=np.uint16)
    # ViPT: median over all six pixels, zero included = 2500 -> bound min(7500, 10000) = 7500;
    # min-max over the frame: 0 -> 0, 7500 -> 255, v -> v * 255 / 7500.
    vipt = DepthAdapter().levels(depth)
    np.testing.assert_array_equal(vipt, [[0, 34, 68], [102, 136, 255]])
    # mask: median of the valid five = 3000 -> bound 9000; range 1000..9000; zero -> 0.
    masked = DepthAdapter(DepthOptions(invalid="mask")).levels(depth)
    np.testing.assert_array_equal(masked, [[0, 0, 32], [64, 96, 255]])


def test_median3_is_capped_at_10000():
    depth = np.array([[20000, 30000, 40000, 50000]], dtype=np.uint16)  # 3 * median = 105000
    unit = DepthAdapter(DepthOptions(colormap="repeat")).unit(depth)
    np.testing.assert_allclose(unit, [[0.0, 0.0, 0.0, 0.0]])  # all clipped to 10000: flat
    capped = DepthAdapter(DepthOptions(colormap="repeat", median3_cap=45000)).unit(depth)
    np.testing.assert_allclose(capped, [[0.0, 0.4, 0.8, 1.0]], atol=1e-6)


def test_repeat_gives_three_equal_channels(tmp_path, make_sequence, write_image, depth_map):
    frame = read_depth(tmp_path, make_sequence, write_image, depth_map, colormap="repeat")
    assert frame.shape == (24, 32, 3) and frame.dtype == np.float32
    assert frame.min() == 0.0 and frame.max() == 1.0
    np.testing.assert_array_equal(frame[:, :, 0], frame[:, :, 1])
    np.testing.assert_array_equal(frame[:, :, 0], frame[:, :, 2])
    assert np.all(frame[depth_map == 0] == 0.0)  # invalid depth is the near end
    # 8-bit quantisation of the same numbers is ViPT's level image.
    np.testing.assert_array_equal(
        np.rint(frame[:, :, 0] * 255).astype(np.uint8), DepthAdapter().levels(depth_map)
    )


def test_fixed_range_clips_and_masks(tmp_path, make_sequence, write_image):
    depth = np.array([[0, 500, 1500], [2500, 3000, 9000]], dtype=np.uint16)
    frame = read_depth(
        tmp_path,
        make_sequence,
        write_image,
        depth,
        clip="fixed",
        fixed_range=(500, 2500),
        colormap="repeat",
        invalid="mask",
    )
    np.testing.assert_allclose(frame[:, :, 0], [[0.0, 0.0, 0.5], [1.0, 1.0, 1.0]], atol=1e-7)


def test_all_invalid_frame_is_zero_not_nan(tmp_path, make_sequence, write_image):
    depth = np.zeros((4, 4), np.uint16)
    for invalid in ("vipt", "mask"):
        for colormap in ("jet", "repeat"):
            frame = read_depth(
                tmp_path, make_sequence, write_image, depth, invalid=invalid, colormap=colormap
            )
            assert np.isfinite(frame).all()
            if colormap == "repeat":
                assert np.all(frame == 0.0)


def test_float_depth_is_refused_naming_the_file(tmp_path, make_sequence, write_image, where):
    path = write_image(tmp_path / "depth" / "00000001.tiff", np.ones((3, 3), np.float32))
    with pytest.raises(DataError) as error:
        DepthAdapter().read(make_sequence({"depth": [path]}), 0)
    assert where in str(error.value) and str(path) in str(error.value)


def test_missing_depth_names_the_file(tmp_path, make_sequence, where):
    missing = tmp_path / "depth" / "00000001.png"
    with pytest.raises(DataError) as error:
        DepthAdapter().read(make_sequence({"depth": [missing]}), 0)
    assert where in str(error.value) and str(missing) in str(error.value)


@pytest.mark.parametrize(
    "options",
    [{"fixed_range": (10, 10)}, {"median3_cap": 0}, {"colormap": "viridis"}, {"clip_at": 3}],
)
def test_bad_options_are_rejected(options):
    with pytest.raises(ValidationError):
        DepthOptions.model_validate(options)
