"""Frame streams: natural order, folders through the adapter, videos, and their errors."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from mmtrack_kd.data.sequence import Sequence
from mmtrack_kd.errors import DataError
from mmtrack_kd.tracking.sources import FrameStream, list_frames, natural_key
from modality_adapters.depth import DepthAdapter
from modality_adapters.rgb import RGBAdapter
from modality_adapters.thermal import ThermalAdapter


def test_natural_order() -> None:
    names = ["img10.png", "img2.png", "img1.png", "IMG3.png", "b.png", "a10b2.png", "a10b10.png"]
    assert sorted(names, key=natural_key) == [
        "a10b2.png", "a10b10.png", "b.png", "img1.png", "img2.png", "IMG3.png", "img10.png"
    ]


def test_folder_frames_in_natural_order(tmp_path: Path, folder_writer) -> None:
    frames = [np.full((8, 8, 3), 20 * i, dtype=np.uint8) for i in range(12)]
    folder_writer(tmp_path / "rgb", frames)
    (tmp_path / "rgb" / "notes.txt").write_text("not a frame")
    paths = list_frames(tmp_path / "rgb", "--rgb")
    assert [p.name for p in paths][:3] == ["1.png", "2.png", "3.png"] and paths[-1].name == "12.png"
    stream = FrameStream(tmp_path / "rgb", RGBAdapter(), "rgb")
    read = list(stream.frames())
    assert stream.n_frames == 12 and len(read) == 12
    assert [round(f[0, 0, 0] * 255) for f in read] == [20 * i for i in range(12)]


def test_depth_folder_is_read_by_the_adapter(tmp_path: Path, folder_writer) -> None:
    depth = [np.full((8, 8), 1000 * (i + 1), dtype=np.uint16) for i in range(3)]
    depth[0][:4] = 3000
    folder_writer(tmp_path / "depth", depth)
    adapter = DepthAdapter()
    frame = next(FrameStream(tmp_path / "depth", adapter, "aux").frames())
    sequence = Sequence("d", "t", {"depth": (tmp_path / "depth" / "1.png",)}, np.zeros((1, 4)), np.ones(1, bool))
    np.testing.assert_array_equal(frame, adapter.read(sequence, 0))


def test_video_frames_as_rgb_and_through_convert(tmp_path: Path, video_writer) -> None:
    grey = [np.full((16, 24), 60 + 40 * i, dtype=np.uint8) for i in range(4)]
    path = video_writer(tmp_path / "aux.mp4", grey)
    thermal = FrameStream(path, ThermalAdapter(), "aux")
    assert thermal.kind == "video" and thermal.exact_count() == 4 and thermal.fps == pytest.approx(10.0)
    frames = list(thermal.frames())
    assert len(frames) == 4 and frames[0].shape == (16, 24, 3) and frames[0].dtype == np.float32
    assert abs(frames[2].mean() - 140 / 255) < 0.05  # lossy codec: close, not exact
    depth = DepthAdapter()
    converted = list(FrameStream(path, depth, "aux").frames())
    decoded = cv2.cvtColor(next(iter(_decode(path))), cv2.COLOR_BGR2GRAY).astype(np.uint16)
    np.testing.assert_array_equal(converted[0], depth.convert(decoded))


def _decode(path: Path):
    capture = cv2.VideoCapture(str(path))
    while True:
        ok, frame = capture.read()
        if not ok:
            break
        yield frame
    capture.release()


def test_missing_path_names_it(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"--aux .*nowhere\.mp4 does not exist"):
        FrameStream(tmp_path / "nowhere.mp4", ThermalAdapter(), "aux")


def test_unreadable_video_names_it(tmp_path: Path) -> None:
    path = tmp_path / "broken.mp4"
    path.write_text("this is not a video")
    with pytest.raises(DataError, match=r"broken\.mp4 cannot be opened as a video"):
        FrameStream(path, RGBAdapter(), "rgb")


def test_empty_folder_names_it(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match=r"--rgb .*empty holds no images"):
        FrameStream(tmp_path / "empty", RGBAdapter(), "rgb")


def test_unreadable_frame_names_the_file(tmp_path: Path) -> None:
    folder = tmp_path / "rgb"
    folder.mkdir()
    (folder / "1.jpg").write_text("not a jpeg")
    with pytest.raises(DataError, match=r"1\.jpg cannot be decoded"):
        list(FrameStream(folder, RGBAdapter(), "rgb").frames())
