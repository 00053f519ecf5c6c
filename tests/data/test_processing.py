"""Jitter, joint augmentation across modalities and normalisation (the heat-map target is the
loss's: tests/engine/test_losses.py)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from mmtrack_kd.data.crop import crop_window
from mmtrack_kd.data.processing import (
    NO_AUGMENTATION,
    Augmentation,
    CropSpec,
    PairProcessing,
    jitter_box,
)
from mmtrack_kd.engine.losses import gaussian_heatmap

from tests.data.conftest import IMAGENET_MEAN, IMAGENET_STD, RGB_COLOUR, NpyEvent, PngRgb, PngThermal


# --------------------------------------------------------------------------- jitter


def test_jitter_statistics_follow_ostrack():
    rng = np.random.default_rng(0)
    box = np.array([100.0, 100.0, 40.0, 20.0])
    jittered = np.stack([jitter_box(box, 0.25, 3.0, rng) for _ in range(4000)])
    log_scale = np.log(jittered[:, 2:] / box[2:])
    assert log_scale.std(axis=0) == pytest.approx([0.25, 0.25], rel=0.08)
    assert abs(log_scale.mean()) < 0.02
    shift = (jittered[:, :2] + jittered[:, 2:] / 2) - (box[:2] + box[2:] / 2)
    reach = 3.0 * np.sqrt(jittered[:, 2] * jittered[:, 3])
    assert np.all(np.abs(shift) <= 0.5 * reach[:, None] + 1e-9)
    assert np.abs(shift / reach[:, None]).max() > 0.45  # the whole range is used
    no_jitter = jitter_box(box, 0.0, 0.0, rng)
    np.testing.assert_allclose(no_jitter, box)


# --------------------------------------------------------------------------- processing


def frames_with_box(box, height=96, width=128):
    """RGB (RGB_COLOUR on black), thermal (ones) and event (ones) frames with the box drawn."""
    x, y, w, h = (int(v) for v in box)
    rgb = np.zeros((height, width, 3), np.float32)
    rgb[y : y + h, x : x + w] = RGB_COLOUR
    thermal = np.zeros((height, width, 3), np.float32)
    thermal[y : y + h, x : x + w] = 1.0
    event = np.zeros((height, width, 5), np.float32)
    event[y : y + h, x : x + w] = 1.0
    return [rgb, thermal, event]


ADAPTERS = [PngRgb(), PngThermal(), NpyEvent()]


def processing(augmentation=NO_AUGMENTATION, search_jitter=(0.0, 0.0)):
    return PairProcessing(
        ADAPTERS,
        template=CropSpec(32, 2.0),
        search=CropSpec(64, 4.0, *search_jitter),
        augmentation=augmentation,
    )


def test_output_shapes_normalisation_and_centred_box():
    box = np.array([50.0, 40.0, 20.0, 16.0])
    frames = frames_with_box(box)
    sample = processing()(frames, box, frames, box, np.random.default_rng(0))
    assert [t.shape for t in sample["template"]] == [(3, 32, 32), (3, 32, 32), (5, 32, 32)]
    assert [t.shape for t in sample["search"]] == [(3, 64, 64), (3, 64, 64), (5, 64, 64)]
    assert all(t.dtype == torch.float32 for t in sample["template"] + sample["search"])
    # the heat-map target is the loss's to draw (from search_box), not the loader's
    assert set(sample) == {"template", "search", "template_box", "search_box"}
    assert divmod(int(gaussian_heatmap(sample["search_box"], 8).argmax()), 8) == (4, 4)
    # without jitter the box is centred up to the rounding of the crop corner
    for key, size in (("template_box", 32), ("search_box", 64)):
        window = crop_window(box, 2.0 if size == 32 else 4.0, size)
        expected = window.to_crop(box, normalised=True)
        np.testing.assert_allclose(sample[key].numpy(), expected, atol=1e-6)
        centre = expected[:2] + expected[2:] / 2
        assert np.all(np.abs(centre - 0.5) < 1.0 / size)
    # the crop's centre pixel is the target, normalised by each adapter
    rgb_centre = sample["search"][0][:, 32, 32].numpy()
    np.testing.assert_allclose(
        rgb_centre, (np.array(RGB_COLOUR) - IMAGENET_MEAN) / IMAGENET_STD, atol=1e-5
    )
    np.testing.assert_allclose(sample["search"][1][:, 32, 32].numpy(), (1 - 0.5) / 0.25, atol=1e-5)
    np.testing.assert_allclose(sample["search"][2][:, 32, 32].numpy(), 1.0, atol=1e-5)
    # a corner pixel is background
    np.testing.assert_allclose(sample["search"][2][:, 0, 0].numpy(), 0.0, atol=1e-5)


def test_flip_moves_box_and_all_modalities_identically():
    box = np.array([30.0, 40.0, 20.0, 16.0])  # off-centre once jittered
    frames = frames_with_box(box)
    plain = processing(Augmentation(0.0, 0.0, 0.0), (0.25, 3.0))
    flipped = processing(Augmentation(1.0, 0.0, 0.0), (0.25, 3.0))
    for seed in range(5):
        a = plain(frames, box, frames, box, np.random.default_rng(seed))
        b = flipped(frames, box, frames, box, np.random.default_rng(seed))
        for side in ("template", "search"):
            for ta, tb in zip(a[side], b[side]):
                torch.testing.assert_close(tb, ta.flip(-1))
            xa, ya, wa, ha = a[f"{side}_box"].tolist()
            np.testing.assert_allclose(
                b[f"{side}_box"].numpy(), [1 - xa - wa, ya, wa, ha], atol=1e-6
            )
        # the target's pixels are where the flipped box says, in every modality
        x, y, w, h = (b["search_box"].numpy() * 64).tolist()
        cx, cy = int(x + w / 2), int(y + h / 2)
        assert float(b["search"][1][0, cy, cx]) == pytest.approx(2.0, abs=1e-4)
        assert float(b["search"][2][0, cy, cx]) == pytest.approx(1.0, abs=1e-4)
        row, col = divmod(int(gaussian_heatmap(b["search_box"], 8).argmax()), 8)
        assert abs(col - (x + w / 2) / 8) <= 1 and abs(row - (y + h / 2) / 8) <= 1


def test_photometric_augmentation_touches_rgb_only():
    box = np.array([50.0, 40.0, 20.0, 16.0])
    frames = frames_with_box(box)
    plain = processing(Augmentation(0.0, 0.0, 0.0), (0.25, 3.0))
    photometric = processing(Augmentation(0.0, 0.5, 1.0), (0.25, 3.0))
    a = plain(frames, box, frames, box, np.random.default_rng(3))
    b = photometric(frames, box, frames, box, np.random.default_rng(3))
    for side in ("template", "search"):
        for stream in (1, 2):
            torch.testing.assert_close(a[side][stream], b[side][stream])
        # grey: all three RGB channels hold the same (un-normalised) value
        mean = torch.tensor(IMAGENET_MEAN)[:, None, None]
        std = torch.tensor(IMAGENET_STD)[:, None, None]
        raw = b[side][0] * std + mean
        torch.testing.assert_close(raw[0], raw[1], atol=1e-5, rtol=0)
        torch.testing.assert_close(raw[0], raw[2], atol=1e-5, rtol=0)
        assert not torch.allclose(a[side][0], b[side][0])
    torch.testing.assert_close(a["search_box"], b["search_box"])


def test_unusable_crop_is_rejected():
    box = np.array([50.0, 40.0, 20.0, 16.0])
    frames = frames_with_box(box)
    far = np.array([5000.0, 5000.0, 20.0, 16.0])
    assert processing()(frames, box, frames, far, np.random.default_rng(0)) is None


def test_an_adapter_that_overrides_normalise_is_honoured():
    class Doubling(NpyEvent):
        def normalise(self, frame):
            return frame * 2.0

    box = np.array([50.0, 40.0, 20.0, 16.0])
    frames = frames_with_box(box)
    custom = PairProcessing([PngRgb(), PngThermal(), Doubling()], CropSpec(32, 2.0),
                            CropSpec(64, 4.0), augmentation=NO_AUGMENTATION)
    sample = custom(frames, box, frames, box, np.random.default_rng(0))
    np.testing.assert_allclose(sample["search"][2][:, 32, 32].numpy(), 2.0, atol=1e-5)
