"""Crop geometry: where the target lands, zero padding, the inverse mapping."""

from __future__ import annotations

import math
from types import SimpleNamespace

import cv2
import numpy as np
import pytest

from mmtrack_kd.data.crop import (
    CropSettings,
    clip_box,
    crop,
    crop_frames,
    crop_window,
    map_box_back,
    padding_mask,
    sample_target,
)
from mmtrack_kd.recipe import BackboneConfig, ModelConfig


def ostrack_sample_target(image: np.ndarray, box, factor: float, size: int) -> np.ndarray:
    """OSTrack's crop (slice, zero-pad, cv2.resize), written out for comparison."""
    x, y, w, h = box
    side = math.ceil(math.sqrt(w * h) * factor)
    x1 = round(x + 0.5 * w - side * 0.5)
    y1 = round(y + 0.5 * h - side * 0.5)
    x2, y2 = x1 + side, y1 + side
    x1_pad, y1_pad = max(0, -x1), max(0, -y1)
    x2_pad, y2_pad = max(x2 - image.shape[1], 0), max(y2 - image.shape[0], 0)
    cropped = image[y1 + y1_pad : y2 - y2_pad, x1 + x1_pad : x2 - x2_pad]
    padded = cv2.copyMakeBorder(cropped, y1_pad, y2_pad, x1_pad, x2_pad, cv2.BORDER_CONSTANT)
    return cv2.resize(padded, (size, size))


def box_image(height: int, width: int, box, channels: int = 3, value: float = 1.0) -> np.ndarray:
    image = np.zeros((height, width, channels), dtype=np.float32)
    x, y, w, h = (int(v) for v in box)
    image[y : y + h, x : x + w] = value
    return image


def test_window_follows_ostrack_geometry():
    window = crop_window([100.0, 60.0, 40.0, 30.0], factor=2.0, size=64)
    side = math.ceil(math.sqrt(40 * 30) * 2)
    assert window.side == side
    assert window.x0 == round(120 - side / 2)
    assert window.y0 == round(75 - side / 2)
    assert window.scale == pytest.approx(64 / side)


@pytest.mark.parametrize("box", [[0, 0, 0, 10], [5, 5, 10, -1], [np.nan, 0, 10, 10]])
def test_degenerate_boxes_are_refused(box):
    with pytest.raises(ValueError):
        crop_window(box, 2.0, 64)


def test_box_lands_where_the_geometry_says_and_pixels_agree():
    box = [100.0, 60.0, 40.0, 30.0]
    image = box_image(240, 320, box)
    result = sample_target(image, box, factor=3.0, size=80)
    window = result.window
    expected = np.array([(100 - window.x0), (60 - window.y0), 40, 30]) * window.scale
    np.testing.assert_allclose(result.box, expected)
    # the target sits at the crop's centre up to the rounding of the crop corner
    centre = result.box[:2] + result.box[2:] / 2
    assert np.all(np.abs(centre - 40) <= 0.5 * window.scale + 1e-9)
    # crop pixels whose centres lie clearly inside / outside the box carry its value / zero
    x, y, w, h = result.box
    u = np.arange(80) + 0.5
    margin = window.scale  # bilinear reach of one image pixel
    inside_x = (u > x + margin) & (u < x + w - margin)
    inside_y = (u > y + margin) & (u < y + h - margin)
    outside_x = (u < x - margin) | (u > x + w + margin)
    outside_y = (u < y - margin) | (u > y + h + margin)
    pixels = result.image[..., 0]
    assert inside_x.sum() > 10 and inside_y.sum() > 5
    np.testing.assert_allclose(pixels[np.ix_(inside_y, inside_x)], 1.0, atol=1e-5)
    outside = outside_y[:, None] | outside_x[None, :]
    np.testing.assert_allclose(pixels[outside], 0.0, atol=1e-5)


def test_matches_ostrack_pixels_inside_the_image():
    rng = np.random.default_rng(0)
    image = rng.uniform(0, 1, (200, 260, 3)).astype(np.float32)
    for box, factor, size in [([90, 70, 50, 40], 2.0, 64), ([100, 80, 20, 24], 4.0, 128)]:
        ours = crop(image, crop_window(box, factor, size))
        theirs = ostrack_sample_target(image, box, factor, size)
        # OSTrack's resize replicates the crop's own edge, we read the neighbouring pixels:
        # the outermost ring may differ, everything else is the same resampling.
        np.testing.assert_allclose(ours[1:-1, 1:-1], theirs[1:-1, 1:-1], atol=1e-4)


@pytest.mark.parametrize("channels", [1, 3, 5, 10])
def test_padding_is_zero_and_the_mask_marks_it(channels):
    image = np.ones((60, 80, channels), dtype=np.float32)
    box = [2.0, 3.0, 10.0, 12.0]  # near the top-left corner: the crop leaves the image
    result = sample_target(image, box, factor=4.0, size=48)
    assert result.image.shape == (48, 48, channels)
    mask = result.mask
    assert mask.any() and (~mask).any()
    np.testing.assert_array_equal(result.image[mask], 0.0)
    # away from the image border (bilinear blend), pixels inside the image keep their value
    step = 1 / result.window.scale
    centres = result.window.x0 + (np.arange(48) + 0.5) * step
    rows = result.window.y0 + (np.arange(48) + 0.5) * step
    clear = (rows[:, None] > 1) & (centres[None, :] > 1)
    np.testing.assert_allclose(result.image[clear], 1.0, atol=1e-5)
    # the mask agrees with geometry: the top-left pixel is outside the image
    assert mask[0, 0] and not mask[-1, -1]


def test_crop_far_outside_is_all_zero_and_window_says_so():
    image = np.ones((50, 50, 3), dtype=np.float32)
    window = crop_window([500, 500, 10, 10], 2.0, 32)
    assert not window.overlaps(50, 50)
    assert np.all(crop(image, window) == 0)
    assert padding_mask(window, 50, 50).all()


def test_map_box_back_inverts_the_crop_mapping():
    rng = np.random.default_rng(1)
    for _ in range(50):
        box = np.concatenate([rng.uniform(-20, 300, 2), rng.uniform(2, 80, 2)])
        window = crop_window(box, rng.uniform(1.5, 5), int(rng.integers(16, 300)))
        boxes = np.concatenate([rng.uniform(-50, 400, (7, 2)), rng.uniform(1, 90, (7, 2))], axis=1)
        np.testing.assert_allclose(map_box_back(window.to_crop(boxes), window), boxes, atol=1e-9)
        normalised = window.to_crop(boxes, normalised=True)
        np.testing.assert_allclose(
            map_box_back(normalised, window, normalised=True), boxes, atol=1e-9
        )


def test_every_modality_gets_the_same_crop():
    box = [40.0, 30.0, 20.0, 16.0]
    rgb = box_image(100, 120, box, channels=3)
    event = box_image(100, 120, box, channels=7, value=1.0)
    window = crop_window(box, 4.0, 64)
    crops = crop_frames([rgb, event], window)
    assert crops[0].shape == (64, 64, 3) and crops[1].shape == (64, 64, 7)
    for channel in range(7):
        np.testing.assert_allclose(crops[1][..., channel], crops[0][..., 0], atol=1e-6)


def test_dtypes():
    window = crop_window([10, 10, 10, 10], 2.0, 16)
    assert crop(np.zeros((40, 40, 3), np.uint8), window).dtype == np.uint8
    assert crop(np.zeros((40, 40, 3), np.float16), window).dtype == np.float32
    assert crop(np.zeros((40, 40), np.float32), window).shape == (16, 16)


def test_clip_box_keeps_box_inside():
    np.testing.assert_allclose(clip_box([-5, -5, 30, 30], 100, 100), [0, 0, 25, 25])
    np.testing.assert_allclose(clip_box([95, 95, 30, 30], 100, 100, margin=10), [90, 90, 10, 10])


def test_one_crop_geometry_from_a_recipe_or_a_model():
    """Training takes the crops from the recipe's model section; tracking from the checkpoint's
    ``crop`` entry, or from the model's config without one: the same class, the same values."""
    recipe_model = ModelConfig(template_size=32, search_size=64, search_factor=5.0,
                               backbone=BackboneConfig(patch_size=8))
    from_recipe = CropSettings.from_recipe(recipe_model)
    assert from_recipe == CropSettings(32, 64, 2.0, 5.0, patch_size=8)
    assert from_recipe.feat_size == 8
    model = SimpleNamespace(config={"template_size": 32, "search_size": 64, "patch_size": 8})
    assert CropSettings.for_model(model) == CropSettings(32, 64, 2.0, 4.0, patch_size=8)
