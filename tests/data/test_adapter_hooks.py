"""The adapter hooks a modality whose frames are not images needs, through the optical-flow
adapter that docs/writing-a-modality-plugin.md shows (the block is run from the guide)."""

from __future__ import annotations

import re
import types
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from mmtrack_kd.data import Sequence
from mmtrack_kd.data.processing import Augmentation, CropSpec, PairProcessing
from mmtrack_kd.errors import DataError
from mmtrack_kd.plugins import load_registry
from mmtrack_kd.tracking.sources import FrameStream
from modality_adapters.depth import DepthAdapter
from modality_adapters.rgb import RGBAdapter
from modality_adapters.thermal import ThermalAdapter
from plugins.folder import Folder
from tests.tracking.conftest import write_video

GUIDE = Path(__file__).resolve().parents[2] / "docs" / "writing-a-modality-plugin.md"
_EXAMPLE = re.compile(r"<!-- example: flow-adapter -->\n```python\n(?P<code>.*?)```\n", re.S)


@pytest.fixture(scope="module")
def flow_module() -> types.ModuleType:
    """The guide's flow adapter, executed as a module."""
    match = _EXAMPLE.search(GUIDE.read_text(encoding="utf-8"))
    assert match, "the guide's flow-adapter example is missing"
    module = types.ModuleType("guide_flow_adapter")
    exec(compile(match["code"], str(GUIDE), "exec"), module.__dict__)  # noqa: S102 - our own doc
    return module


def flow_field(height: int = 48, width: int = 64) -> np.ndarray:
    """A field that moves right (dx = 3) and varies in y, so a mirror is visible."""
    flow = np.zeros((height, width, 2), np.float32)
    flow[:, :, 0] = 3.0
    flow[:, :, 1] = np.linspace(-1, 1, width, dtype=np.float32)[None, :]
    return flow


def test_flip_negates_the_x_component_and_keeps_images_as_before(flow_module):
    adapters = [RGBAdapter(), flow_module.FlowAdapter()]
    rng = np.random.default_rng(0)
    rgb = rng.random((48, 64, 3), dtype=np.float32)
    frames = [rgb, flow_field()]
    box = np.array([24.0, 16.0, 16.0, 12.0])

    def sample(probability: float) -> dict:
        processing = PairProcessing(adapters, CropSpec(32, 2.0), CropSpec(64, 4.0),
                                    augmentation=Augmentation(probability, 0.0, 0.0))
        return processing(frames, box, frames, box, np.random.default_rng(1))

    plain, flipped = sample(0.0), sample(1.0)
    for side in ("template", "search"):
        torch.testing.assert_close(flipped[side][0], plain[side][0].flip(-1))  # pixels mirrored
        flow_plain, flow_flipped = plain[side][1], flipped[side][1]
        torch.testing.assert_close(flow_flipped[0], -flow_plain[0].flip(-1))  # x negated
        torch.testing.assert_close(flow_flipped[1], flow_plain[1].flip(-1))  # y kept
    assert (plain["search"][1][0] > 0).any()  # the motion to the right is in the crop


def test_builtin_adapters_keep_the_pixel_mirror():
    frame = np.random.default_rng(0).random((4, 5, 3), dtype=np.float32)
    for adapter in (RGBAdapter(), ThermalAdapter(), DepthAdapter()):
        np.testing.assert_array_equal(adapter.flip(frame), frame[:, ::-1])
        assert adapter.reads_video
    assert DepthAdapter.video_input == "grey" and RGBAdapter.video_input == "rgb"


def test_track_reads_a_folder_of_array_frames_with_the_training_reader(tmp_path, flow_module):
    adapter = flow_module.FlowAdapter()
    folder = tmp_path / "flow"
    folder.mkdir()
    fields = [flow_field() * (i + 1) for i in range(3)]
    for i, field in enumerate(reversed(fields)):  # natural order, not write order
        np.save(folder / f"{2 - i + 1:06d}.npy", field)
    (folder / "notes.txt").write_text("not a frame")
    stream = FrameStream(folder, adapter, "aux")
    assert stream.n_frames == 3
    for got, want in zip(stream.frames(), fields):
        np.testing.assert_array_equal(got, want)
    # the same frames through training's reader
    sequence = Sequence(name="s", dataset="test", frames={"flow": tuple(sorted(folder.glob("*.npy")))},
                        boxes=np.zeros((3, 4)), visible=np.ones(3, bool))
    np.testing.assert_array_equal(adapter.read(sequence, 1), fields[1])


def test_a_video_is_refused_for_a_modality_that_is_not_three_image_channels(tmp_path, flow_module):
    video = write_video(tmp_path / "flow.mp4", [np.zeros((48, 64, 3), np.uint8)] * 3)
    adapter = flow_module.FlowAdapter()
    assert not adapter.reads_video
    with pytest.raises(DataError, match="flow modality has 2 channels and cannot be read from a video"):
        FrameStream(video, adapter, "aux")
    # a 3-channel image modality gets RGB in [0, 1] from convert (as read gives for 8-bit)
    raw = np.full((2, 2, 3), 255, np.uint8)
    np.testing.assert_array_equal(ThermalAdapter().convert(raw), np.ones((2, 2, 3), np.float32))


def test_folder_dataset_lists_the_adapters_frame_files(tmp_path, flow_module, monkeypatch):
    registry = load_registry(only=["rgb"], extra_plugins=[("flow", flow_module)])
    monkeypatch.setattr("mmtrack_kd.plugins.default_registry", lambda: registry)
    sequence = tmp_path / "walk"
    (sequence / "rgb").mkdir(parents=True)
    (sequence / "flow").mkdir()
    for i in range(3):
        cv2.imwrite(str(sequence / "rgb" / f"{i:04d}.jpg"), np.zeros((48, 64, 3), np.uint8))
        np.save(sequence / "flow" / f"{i:04d}.npy", flow_field())
    (sequence / "groundtruth.txt").write_text("10,10,20,20\n" * 3)
    dataset = Folder(Folder.Options(root=tmp_path, aux="flow"))
    loaded = dataset.load_sequence("walk")
    assert [p.suffix for p in loaded.frames["flow"]] == [".npy"] * 3
    assert flow_module.FlowAdapter().read(loaded, 0).shape == (48, 64, 2)
