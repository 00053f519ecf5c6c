"""The tracker: Hann window, windowed decode, map-back, clipping, checkpoints, run_sequence."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from mmtrack_kd.checkpoints import RunCheckpoint
from mmtrack_kd.data.crop import CropSettings
from mmtrack_kd.data.sequence import Sequence
from mmtrack_kd.errors import CheckpointError, DataError, MmtrackError
from mmtrack_kd.models import TrackerOutput, boxes_at
from mmtrack_kd.tracking import Tracker, TrackerSettings, hann_window, run_sequence, windowed_peak
from modality_adapters.rgb import RGBAdapter


def ostrack_hann1d(n: int) -> torch.Tensor:
    """OSTrack's ``hann1d(n, centered=True)``, written from its formula."""
    k = torch.arange(1, n + 1, dtype=torch.float64)
    return 0.5 * (1 - torch.cos(2 * math.pi * k / (n + 1)))


# -- Hann window and windowed decode ------------------------------------------------------------


@pytest.mark.parametrize("n", [4, 16, 17])
def test_hann_window_is_ostracks_hann2d(n: int) -> None:
    expected = torch.outer(ostrack_hann1d(n), ostrack_hann1d(n)).float()
    window = hann_window(n)
    assert window.shape == (n, n)
    torch.testing.assert_close(window, expected)
    assert window.min() > 0  # border cells damped, never ruled out
    assert window.max() <= 1


def test_window_moves_the_peak_from_a_border_distractor_to_the_centre() -> None:
    n = 16
    score = torch.full((1, 1, n, n), 0.05)
    score[0, 0, 0, 0] = 0.95  # a strong response at the border of the search region
    score[0, 0, 7, 8] = 0.60  # a weaker one near the centre (where the target was)
    size = torch.rand(1, 2, n, n)
    offset = torch.rand(1, 2, n, n)
    assert score.flatten(1).argmax(1).item() == 0  # unwindowed: the border wins

    boxes, scores = windowed_peak(score, size, offset, hann_window(n))

    index = torch.tensor([7 * n + 8])
    torch.testing.assert_close(boxes, boxes_at(index, size, offset))
    expected_score = 0.60 * ostrack_hann1d(n)[7] * ostrack_hann1d(n)[8]
    assert scores.item() == pytest.approx(expected_score.item(), rel=1e-5)
    # the box is read at column 8, row 7: cx = (8 + offset_x) / 16
    assert boxes[0, 0].item() == pytest.approx((8 + offset[0, 0, 7, 8].item()) / n)
    assert boxes[0, 1].item() == pytest.approx((7 + offset[0, 1, 7, 8].item()) / n)


def test_windowed_peak_keeps_a_dominant_border_response() -> None:
    n = 16
    score = torch.full((1, 1, n, n), 1e-4)
    score[0, 0, 0, 15] = 0.9
    _, scores = windowed_peak(score, torch.rand(1, 2, n, n), torch.rand(1, 2, n, n), hann_window(n))
    assert scores.item() == pytest.approx(0.9 * (ostrack_hann1d(n)[0] * ostrack_hann1d(n)[15]).item(), rel=1e-5)


# -- map back and clip with a model whose answer is known -----------------------------------------


class FixedBoxModel(nn.Module):
    """A stand-in model: 4 x 4 score map peaking at ``cell`` with the given offset and size."""

    num_modalities = 1

    def __init__(self, cell=(1, 3), offset=(0.5, 0.25), size=(0.25, 0.125)) -> None:
        super().__init__()
        self.config = {"template_size": 32, "search_size": 64, "patch_size": 16}
        self.cell, self.offset, self.size = cell, offset, size
        self.searches: list[torch.Tensor] | None = None
        self.templates: list[torch.Tensor] | None = None

    def set_template(self, templates):
        self.templates = templates

    def track(self, searches, keep_ratio=None) -> TrackerOutput:
        self.searches = searches
        score = torch.full((1, 1, 4, 4), 0.1)
        score[0, 0, self.cell[0], self.cell[1]] = 0.9
        size = torch.empty(1, 2, 4, 4)
        offset = torch.empty(1, 2, 4, 4)
        for channel in range(2):
            size[:, channel] = self.size[channel]
            offset[:, channel] = self.offset[channel]
        boxes = boxes_at(score.flatten(1).argmax(1), size, offset)
        return TrackerOutput(score.logit(), score, size, offset, boxes)


def test_map_back_inverts_the_search_crop() -> None:
    model = FixedBoxModel()
    tracker = Tracker(model, [RGBAdapter()])
    frame = np.zeros((200, 200, 3), dtype=np.float32)
    tracker.initialize([frame], (40, 30, 20, 20))
    assert model.templates[0].shape == (1, 3, 32, 32)

    box, confidence = tracker.track([frame])

    # Search crop: side ceil(20 * 4) = 80 around centre (50, 40), corner (10, 0), so one crop
    # unit is 80 pixels. Peak at row 1, column 3 with offsets (0.5, 0.25):
    # cx = 10 + 80 * 3.5 / 4 = 80, cy = 0 + 80 * 1.25 / 4 = 25, w = 80 * 0.25, h = 80 * 0.125.
    np.testing.assert_allclose(box, [80 - 10, 25 - 5, 20, 10])
    assert model.searches[0].shape == (1, 3, 64, 64)
    hann = ostrack_hann1d(4)
    assert confidence == pytest.approx(0.9 * (hann[1] * hann[3]).item(), rel=1e-5)
    np.testing.assert_allclose(tracker.state, box)


def test_boxes_are_clipped_with_ostracks_margin() -> None:
    tracker = Tracker(FixedBoxModel(), [RGBAdapter()])
    frame = np.zeros((100, 75, 3), dtype=np.float32)  # 75 wide: the predicted box (70..90) sticks out
    tracker.initialize([frame], (40, 30, 20, 20))
    box, _ = tracker.track([frame])
    # clip_box(margin=10): x1 = min(70, 75 - 10) = 65, x2 = min(90, 75) = 75.
    np.testing.assert_allclose(box, [65, 20, 10, 10])


def test_normalisation_uses_the_adapters_statistics() -> None:
    model = FixedBoxModel()
    tracker = Tracker(model, [RGBAdapter()])
    frame = np.full((200, 200, 3), 0.5, dtype=np.float32)
    tracker.initialize([frame], (90, 90, 20, 20))  # template well inside the image
    mean, std = np.array(RGBAdapter().mean), np.array(RGBAdapter().std)
    expected = torch.tensor((0.5 - mean) / std, dtype=torch.float32).view(1, 3, 1, 1).expand(1, 3, 32, 32)
    torch.testing.assert_close(model.templates[0], expected)


def test_track_before_initialize_is_an_error() -> None:
    tracker = Tracker(FixedBoxModel(), [RGBAdapter()])
    with pytest.raises(RuntimeError, match="initialize"):
        tracker.track([np.zeros((50, 50, 3), dtype=np.float32)])


def test_adapter_count_must_match_the_model() -> None:
    with pytest.raises(ValueError, match="2 modality adapters"):
        Tracker(FixedBoxModel(), [RGBAdapter(), RGBAdapter()])


# -- real (tiny) models from checkpoints ---------------------------------------------------------

MODELS = {
    "teacher": dict(kind="teacher"),
    "student": dict(kind="student"),
    "student-ce": dict(kind="student", ce_layers=[0, 1], ce_keep_ratio=0.7),
    "single": dict(kind="student", aux=None),
}


@pytest.mark.parametrize("variant", list(MODELS))
def test_from_checkpoint_tracks_inside_the_image(variant, make_checkpoint, registry, scene_frames) -> None:
    path = make_checkpoint(**MODELS[variant])
    tracker = Tracker.from_checkpoint(path, registry=registry)
    assert tracker.crop == CropSettings(32, 64, 2.0, 4.0)
    assert [a.name for a in tracker.adapters] == (["rgb"] if variant == "single" else ["rgb", "thermal"])
    rgb, thermal, boxes = scene_frames(6)
    frames = [[r.astype(np.float32) / 255, np.repeat(t[:, :, None], 3, 2).astype(np.float32) / 255]
              for r, t in zip(rgb, thermal)]
    frames = [f[: tracker.num_modalities] for f in frames]
    height, width = rgb[0].shape[:2]

    tracker.initialize(frames[0], boxes[0])
    for step in frames[1:]:
        box, confidence = tracker.track(step)
        x, y, w, h = box
        assert 0 <= x and 0 <= y and x + w <= width + 1e-9 and y + h <= height + 1e-9
        assert w >= 10 and h >= 10
        assert 0.0 <= confidence <= 1.0


def test_from_checkpoint_takes_the_saved_adapter_options(make_checkpoint, registry) -> None:
    path = make_checkpoint(aux="depth", aux_options={"clip": "fixed", "fixed_range": [0, 5000]})
    tracker = Tracker.from_checkpoint(path, registry=registry)
    assert tracker.adapters[1].options.clip == "fixed"
    assert tuple(tracker.adapters[1].options.fixed_range) == (0, 5000)


def test_checkpoint_without_modalities_is_refused_for_two_streams(make_checkpoint, registry) -> None:
    path = make_checkpoint()
    saved = RunCheckpoint.read(path)
    saved.modalities = None
    saved.save(path)
    with pytest.raises(CheckpointError, match=str(path).replace("\\", "\\\\")):
        Tracker.from_checkpoint(path, registry=registry)


def test_checkpoint_of_an_unknown_modality_names_the_file(make_checkpoint, registry) -> None:
    path = make_checkpoint(aux="sonar")
    with pytest.raises(CheckpointError, match="sonar") as error:
        Tracker.from_checkpoint(path, registry=registry)
    assert str(path) in str(error.value)


def test_checkpoint_with_bad_adapter_options_names_the_file(make_checkpoint, registry) -> None:
    path = make_checkpoint(aux_options={"no_such_option": 1})
    with pytest.raises(CheckpointError, match="modalities.1") as error:
        Tracker.from_checkpoint(path, registry=registry)
    assert str(path) in str(error.value)


def test_missing_checkpoint_is_a_checkpoint_error(tmp_path: Path, registry) -> None:
    with pytest.raises(CheckpointError, match="nothing.pt"):
        Tracker.from_checkpoint(tmp_path / "nothing.pt", registry=registry)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_tracks_on_the_gpu_as_on_the_cpu(make_checkpoint, registry, scene_frames) -> None:
    path = make_checkpoint()
    rgb, thermal, boxes = scene_frames(4)
    frames = [[r.astype(np.float32) / 255, np.repeat(t[:, :, None], 3, 2).astype(np.float32) / 255]
              for r, t in zip(rgb, thermal)]
    results = []
    for device in ("cpu", "cuda"):
        tracker = Tracker.from_checkpoint(path, device=device, registry=registry)
        tracker.initialize(frames[0], boxes[0])
        results.append(np.array([tracker.track(step)[0] for step in frames[1:]]))
    np.testing.assert_allclose(results[0], results[1], atol=1e-2)


# -- run_sequence -------------------------------------------------------------------------------


def _sequence(tmp_path: Path, scene_frames, folder_writer, n: int = 5) -> Sequence:
    rgb, thermal, boxes = scene_frames(n)
    return Sequence(
        name="tiny",
        dataset="test",
        frames={
            "rgb": tuple(folder_writer(tmp_path / "rgb", rgb, ".jpg")),
            "thermal": tuple(folder_writer(tmp_path / "thermal", thermal)),
        },
        boxes=boxes,
        visible=np.ones(n, dtype=bool),
    )


def test_run_sequence(tmp_path, make_checkpoint, registry, scene_frames, folder_writer) -> None:
    sequence = _sequence(tmp_path, scene_frames, folder_writer)
    tracker = Tracker.from_checkpoint(make_checkpoint(), registry=registry)

    boxes, confidences, times = run_sequence(tracker, sequence, tracker.adapters)

    assert boxes.shape == (5, 4) and confidences.shape == (5,) and times.shape == (5,)
    np.testing.assert_array_equal(boxes[0], sequence.boxes[0])
    assert confidences[0] == 1.0
    assert np.all((confidences >= 0) & (confidences <= 1))
    assert np.all(times > 0)
    assert np.all(boxes[:, :2] >= 0)
    assert np.all(boxes[:, 0] + boxes[:, 2] <= 96 + 1e-9) and np.all(boxes[:, 1] + boxes[:, 3] <= 72 + 1e-9)
    # the tracker starts afresh for every sequence: a second run gives the same boxes
    again = run_sequence(tracker, sequence)
    np.testing.assert_array_equal(again.boxes, boxes)


def test_run_sequence_needs_a_first_box(tmp_path, make_checkpoint, registry, scene_frames, folder_writer) -> None:
    sequence = _sequence(tmp_path, scene_frames, folder_writer)
    sequence.boxes[0] = np.nan
    tracker = Tracker.from_checkpoint(make_checkpoint(), registry=registry)
    with pytest.raises(DataError, match="test/tiny"):
        run_sequence(tracker, sequence)


def test_without_the_hann_window_the_raw_peak_is_read(make_checkpoint, registry, scene_frames) -> None:
    """``evaluate.hann_window: false``: the confidence is the raw score map's peak, never below
    the windowed one (the window is at most 1 everywhere)."""
    path = make_checkpoint(kind="student")
    rgb, thermal, boxes = scene_frames(3)
    frames = [[r.astype(np.float32) / 255, np.repeat(t[:, :, None], 3, 2).astype(np.float32) / 255]
              for r, t in zip(rgb, thermal)]
    confidences = {}
    for hann in (True, False):
        tracker = Tracker.from_checkpoint(path, registry=registry, settings=TrackerSettings(hann_window=hann))
        tracker.initialize(frames[0], boxes[0])
        _, confidences[hann] = tracker.track(frames[1])
        assert bool(torch.all(tracker.window == 1)) != hann
    assert confidences[False] >= confidences[True]


#: bf16 against fp32 on the same search crop, image pixels (the crop is about 55 px wide here;
#: bf16 keeps 8 bits of mantissa, so a box read from a peaked score map moves by a fraction of
#: a pixel, and only a flipped peak, one 16-px cell, would exceed this).
BF16_TOLERANCE_PX = 1.0


@pytest.mark.slow
def test_bf16_precision_runs_the_model_in_bfloat16_and_decodes_in_float32(trained_checkpoint, registry,
                                                                            scene_frames) -> None:
    """On a trained tiny model that follows the target, bf16 runs the matrix products in
    bfloat16 and gives, frame by frame on the same search crop, the fp32 boxes within
    :data:`BF16_TOLERANCE_PX`."""
    rgb, thermal, boxes = scene_frames(5)
    frames = [[r.astype(np.float32) / 255, np.repeat(t[:, :, None], 3, 2).astype(np.float32) / 255]
              for r, t in zip(rgb, thermal)]
    trackers, seen = {}, {}
    for precision in ("fp32", "bf16"):
        tracker = Tracker.from_checkpoint(trained_checkpoint, registry=registry,
                                          settings=TrackerSettings(precision=precision))
        seen[precision] = []
        layer = tracker.model.backbone.blocks[0].attn.qkv  # a matrix product: where bf16 pays
        layer.register_forward_hook(lambda module, args, output, log=seen[precision]: log.append(output.dtype))
        tracker.initialize(frames[0], boxes[0])
        trackers[precision] = tracker
    for frame, truth in zip(frames[1:], boxes[1:]):
        trackers["bf16"].state = trackers["fp32"].state.copy()  # the same crop for both
        box, _ = trackers["fp32"].track(frame)
        low, _ = trackers["bf16"].track(frame)
        assert low.dtype == np.float64 and np.isfinite(low).all()
        # trained: fp32 follows the target (an untrained model's peak lands anywhere in the crop)
        assert np.hypot(*(box[:2] + box[2:] / 2 - truth[:2] - truth[2:] / 2)) < 20
        assert np.abs(low - box).max() <= BF16_TOLERANCE_PX, (low, box)
    assert set(seen["fp32"]) == {torch.float32} and set(seen["bf16"]) == {torch.bfloat16}
    with pytest.raises(MmtrackError, match="precision 'fp16'"):
        TrackerSettings(precision="fp16")


@pytest.mark.parametrize(("kind", "backend"), [
    ("student", "eager"), pytest.param("teacher", "eager", marks=pytest.mark.slow),
    pytest.param("student", "inductor", marks=pytest.mark.slow)])
def test_compiled_tracker_follows_the_eager_one_across_sequences(make_checkpoint, registry, scene_frames,
                                                                 kind: str, backend: str) -> None:
    """``compile=...`` tracks the boxes the eager tracker does, and a second sequence's template
    reaches the compiled graph (were the template tensors baked in as constants, the second
    sequence would be tracked against the first one's template). ``eager`` checks the graph
    capture quickly; ``inductor`` (what ``--compile`` uses) also generates and runs code."""
    path = make_checkpoint(kind=kind)
    rgb, thermal, boxes = scene_frames(4)
    frames = [[r.astype(np.float32) / 255, np.repeat(t[:, :, None], 3, 2).astype(np.float32) / 255]
              for r, t in zip(rgb, thermal)]
    starts = [(frames[0], boxes[0]), (frames[1], np.asarray(boxes[0]) + [8.0, 6.0, 4.0, 2.0])]
    tracked = {}
    for compile in (None, backend):
        tracker = Tracker.from_checkpoint(path, registry=registry, settings=TrackerSettings(compile=compile))
        runs = []
        for first, box in starts:
            tracker.initialize(first, box)
            runs.append(np.array([np.append(*tracker.track(step)) for step in frames[2:]]))
        tracked[compile] = runs
    for eager, compiled in zip(tracked[None], tracked[backend]):
        np.testing.assert_allclose(compiled, eager, rtol=0, atol=1e-3)
    assert not np.allclose(tracked[None][0], tracked[None][1])  # the two templates differ


def test_a_forward_that_fails_under_compile_names_the_option(make_checkpoint, registry, scene_frames) -> None:
    path = make_checkpoint()
    rgb, thermal, boxes = scene_frames(2)
    frames = [[r.astype(np.float32) / 255, np.repeat(t[:, :, None], 3, 2).astype(np.float32) / 255]
              for r, t in zip(rgb, thermal)]

    def broken_backend(graph, example_inputs):
        raise RuntimeError("no compiler for this graph")

    tracker = Tracker.from_checkpoint(path, registry=registry, settings=TrackerSettings(compile=broken_backend))
    tracker.initialize(frames[0], boxes[0])
    with pytest.raises(MmtrackError, match=r"torch.compile .*no compiler for this graph.*without --compile"):
        tracker.track(frames[1])


def test_tracker_settings_name_their_results_folder_and_refuse_bad_values() -> None:
    """Settings that change boxes give the results folder a suffix (a resumed evaluation never
    mixes them); compilation changes speed only and keeps the name."""
    assert TrackerSettings().variant_name("student") == "student"
    assert TrackerSettings(compile="inductor").variant_name("student") == "student"
    assert (TrackerSettings(keep_ratio=0.5, hann_window=False, precision="bf16").variant_name("student")
            == "student-keep0.5-nohann-bf16")
    for bad in (0.0, 1.5):
        with pytest.raises(MmtrackError, match=f"keep ratio {bad}"):
            TrackerSettings(keep_ratio=bad)
