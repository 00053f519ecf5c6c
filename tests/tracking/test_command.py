"""The ``track`` command end to end: frame folders, mp4 videos, outputs and input errors."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from mmtrack_kd.errors import CheckpointError, DataError, MmtrackError
from mmtrack_kd.tracking import parse_box, track
from mmtrack_kd.data.event_store import write_event_h5

INIT = "30,20,16,12"


def _read_video(path: Path) -> list[np.ndarray]:
    capture = cv2.VideoCapture(str(path))
    frames = []
    while True:
        ok, frame = capture.read()
        if not ok:
            break
        frames.append(frame)
    capture.release()
    return frames


def _check_outputs(run, out: Path, n: int, width: int, height: int) -> None:
    lines = (out / "boxes.txt").read_text().splitlines()
    assert len(lines) == n
    assert lines[0] == "30.0000,20.0000,16.0000,12.0000"
    boxes = np.array([[float(v) for v in line.split(",")] for line in lines])
    assert all(len(v.split(".")[1]) == 4 for line in lines for v in line.split(","))
    assert np.all(boxes[:, :2] >= 0)
    assert np.all(boxes[:, 0] + boxes[:, 2] <= 96 + 1e-3) and np.all(boxes[:, 1] + boxes[:, 3] <= 72 + 1e-3)
    confidences = np.loadtxt(out / "confidence.txt")
    assert confidences.shape == (n,) and confidences[0] == 1.0
    assert np.all((confidences >= 0) & (confidences <= 1))
    np.testing.assert_allclose(run.boxes, boxes, atol=1e-4)
    frames = _read_video(out / "track.mp4")
    assert len(frames) == n
    assert frames[0].shape == (height, width, 3)
    assert run.video_path == out / "track.mp4" and str(out) in run.summary()


def _boxes_differ(boxes: np.ndarray, other: np.ndarray) -> bool:
    """Tracked boxes that differ after the first frame (the given box) by more than rounding."""
    return bool(np.abs(np.asarray(boxes)[1:] - np.asarray(other)[1:]).max() > 1e-3)


def test_track_frame_folders(tmp_path, make_checkpoint, registry, scene_frames, folder_writer) -> None:
    rgb, thermal, _ = scene_frames(12)  # 12 frames: 1.png .. 12.png must sort naturally
    folder_writer(tmp_path / "rgb", rgb, ".jpg")
    folder_writer(tmp_path / "ir", thermal)
    out = tmp_path / "out"
    seen = []

    run = track(make_checkpoint(), tmp_path / "rgb", tmp_path / "ir", INIT, out, device="cpu",
                registry=registry, on_frame=lambda done, total: seen.append((done, total)))

    _check_outputs(run, out, 12, 2 * 96, 72)
    assert seen[-1] == (12, 12)
    assert run.modalities == "rgb+thermal"


def test_track_videos(tmp_path, make_checkpoint, registry, scene_frames, video_writer) -> None:
    rgb, thermal, _ = scene_frames(6)
    rgb_video = video_writer(tmp_path / "rgb.mp4", rgb)
    ir_video = video_writer(tmp_path / "ir.mp4", thermal)
    out = tmp_path / "out"

    run = track(make_checkpoint(kind="teacher"), rgb_video, ir_video, INIT, out, device="cpu", registry=registry)

    _check_outputs(run, out, 6, 2 * 96, 72)
    capture = cv2.VideoCapture(str(out / "track.mp4"))
    assert capture.get(cv2.CAP_PROP_FPS) == pytest.approx(10.0)  # the RGB video's rate
    capture.release()


def test_track_depth_pngs_and_mixed_inputs(tmp_path, make_checkpoint, registry, scene_frames, folder_writer,
                                           video_writer) -> None:
    rgb, thermal, _ = scene_frames(5)
    depth = [(t.astype(np.uint16) * 20 + 500) for t in thermal]  # 16-bit millimetres
    folder_writer(tmp_path / "depth", depth)
    rgb_video = video_writer(tmp_path / "rgb.mp4", rgb)
    checkpoint = make_checkpoint(aux="depth")
    run = track(checkpoint, rgb_video, tmp_path / "depth", INIT, tmp_path / "out", device="cpu", registry=registry)
    assert run.n_frames == 5 and run.modalities == "rgb+depth"
    # the depth frames reach the model: the same RGB with zero depth tracks other boxes
    folder_writer(tmp_path / "zeros", [np.zeros_like(d) for d in depth])
    blank = track(checkpoint, rgb_video, tmp_path / "zeros", INIT, tmp_path / "out-zeros", device="cpu",
                  registry=registry)
    assert _boxes_differ(run.boxes, blank.boxes)


def test_track_raw_event_file_as_voxel_grids(tmp_path, make_checkpoint, registry, scene_frames,
                                             folder_writer) -> None:
    rgb, _, boxes = scene_frames(4)
    folder_writer(tmp_path / "rgb", rgb)
    # Events on the target's edges, 100 microseconds per frame.
    rng = np.random.default_rng(0)
    xs, ys, ts = [], [], []
    for index, (x, y, w, h) in enumerate(boxes.astype(int)):
        xs.append(rng.integers(x, x + w, 50))
        ys.append(rng.integers(y, y + h, 50))
        ts.append(np.sort(rng.integers(100 * index, 100 * index + 100, 50)))
    x, y, t = np.concatenate(xs), np.concatenate(ys), np.concatenate(ts)
    events = write_event_h5(tmp_path / "events.h5", x, y, t, rng.integers(0, 2, len(t)),
                            np.arange(0, 500, 100), width=96, height=72)
    checkpoint = make_checkpoint(aux="event", aux_options={"representation": "voxel", "bins": 5}, aux_in_chans=5)
    run = track(checkpoint, tmp_path / "rgb", events, INIT, tmp_path / "out", device="cpu", registry=registry)
    assert run.n_frames == 4 and run.modalities == "rgb+event"
    # the events reach the model: a stream without events (all-zero voxel grids) tracks other boxes
    empty = write_event_h5(tmp_path / "none.h5", x[:0], y[:0], t[:0], np.zeros(0, dtype=np.int64),
                           np.arange(0, 500, 100), width=96, height=72)
    blank = track(checkpoint, tmp_path / "rgb", empty, INIT, tmp_path / "out-none", device="cpu", registry=registry)
    assert _boxes_differ(run.boxes, blank.boxes)


def test_voxel_grids_cannot_come_from_a_video(tmp_path, make_checkpoint, registry, scene_frames, folder_writer,
                                              video_writer) -> None:
    rgb, thermal, _ = scene_frames(3)
    folder_writer(tmp_path / "rgb", rgb)
    checkpoint = make_checkpoint(aux="event", aux_options={"representation": "voxel", "bins": 5}, aux_in_chans=5)
    with pytest.raises(DataError, match=r"--aux .*ev\.mp4: the event modality has 5 channels"):
        track(checkpoint, tmp_path / "rgb", video_writer(tmp_path / "ev.mp4", thermal), INIT, tmp_path / "out",
              device="cpu", registry=registry)


def test_single_modality_needs_no_aux(tmp_path, make_checkpoint, registry, scene_frames, video_writer) -> None:
    rgb, _, _ = scene_frames(4)
    out = tmp_path / "out"
    run = track(make_checkpoint(aux=None), video_writer(tmp_path / "rgb.mp4", rgb), None, INIT, out,
                device="cpu", registry=registry)
    _check_outputs(run, out, 4, 96, 72)
    assert run.modalities == "rgb"


# -- errors -------------------------------------------------------------------------------------


@pytest.mark.parametrize("text", ["1,2,3", "a,b,c,d", "1,2,0,5", "1,2,3,-4", "1,2,nan,4", ""])
def test_bad_init(text: str) -> None:
    with pytest.raises(MmtrackError, match="--init"):
        parse_box(text)


def test_init_parses_spaces_and_decimals() -> None:
    np.testing.assert_array_equal(parse_box(" 10.5, 20 ,30,40 "), [10.5, 20, 30, 40])


@pytest.fixture
def pair(tmp_path, scene_frames, folder_writer) -> tuple[Path, Path]:
    rgb, thermal, _ = scene_frames(4)
    folder_writer(tmp_path / "rgb", rgb)
    folder_writer(tmp_path / "ir", thermal)
    return tmp_path / "rgb", tmp_path / "ir"


def test_init_outside_the_frame(tmp_path, make_checkpoint, registry, pair) -> None:
    with pytest.raises(MmtrackError, match=r"--init 500,500,10,10: the box lies outside the first frame \(96x72\)"):
        track(make_checkpoint(), *pair, "500,500,10,10", tmp_path / "out", device="cpu", registry=registry)


def test_missing_aux_for_a_two_stream_checkpoint(tmp_path, make_checkpoint, registry, pair) -> None:
    with pytest.raises(MmtrackError, match="--aux"):
        track(make_checkpoint(), pair[0], None, INIT, tmp_path / "out", device="cpu", registry=registry)


def test_missing_rgb(tmp_path, make_checkpoint, registry, pair) -> None:
    with pytest.raises(DataError, match=r"--rgb .*missing\.mp4 does not exist"):
        track(make_checkpoint(), tmp_path / "missing.mp4", pair[1], INIT, tmp_path / "out", device="cpu",
              registry=registry)


def test_unreadable_video(tmp_path, make_checkpoint, registry, pair) -> None:
    bad = tmp_path / "ir.mp4"
    bad.write_bytes(b"\x00" * 100)
    with pytest.raises(DataError, match=r"--aux .*ir\.mp4 cannot be opened as a video"):
        track(make_checkpoint(), pair[0], bad, INIT, tmp_path / "out", device="cpu", registry=registry)


def test_missing_checkpoint(tmp_path, registry, pair) -> None:
    with pytest.raises(CheckpointError, match="absent.pt"):
        track(tmp_path / "absent.pt", *pair, INIT, tmp_path / "out", device="cpu", registry=registry)


def test_frame_count_mismatch_names_both_streams(tmp_path, make_checkpoint, registry, scene_frames, folder_writer,
                                                 video_writer) -> None:
    rgb, thermal, _ = scene_frames(5)
    rgb_video = video_writer(tmp_path / "rgb.mp4", rgb)
    folder_writer(tmp_path / "ir", thermal[:4])
    with pytest.raises(DataError, match=r"--rgb .*rgb\.mp4 has 5 frames but --aux .*ir has 4 frames"):
        track(make_checkpoint(), rgb_video, tmp_path / "ir", INIT, tmp_path / "out", device="cpu",
              registry=registry)
    assert not (tmp_path / "out" / "boxes.txt").exists()


def test_frame_size_mismatch(tmp_path, make_checkpoint, registry, scene_frames, folder_writer) -> None:
    rgb, thermal, _ = scene_frames(3)
    folder_writer(tmp_path / "rgb", rgb)
    folder_writer(tmp_path / "ir", [t[:, :64] for t in thermal])
    with pytest.raises(DataError, match=r"--aux .*ir frames are 64x72 but --rgb .*rgb frames are 96x72"):
        track(make_checkpoint(), tmp_path / "rgb", tmp_path / "ir", INIT, tmp_path / "out", device="cpu",
              registry=registry)


def test_unreadable_frame_mid_sequence_keeps_earlier_results(tmp_path, make_checkpoint, registry, pair) -> None:
    (pair[1] / "3.png").write_bytes(b"broken")
    out = tmp_path / "out"
    with pytest.raises(DataError, match=r"3\.png cannot be decoded(.|\n)*first 2 frames"):
        track(make_checkpoint(), *pair, INIT, out, device="cpu", registry=registry)
    assert len((out / "boxes.txt").read_text().splitlines()) == 2
