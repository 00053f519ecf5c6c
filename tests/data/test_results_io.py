"""Result files: OTB-style and VOT long-term layouts, round trips and error messages."""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
import pytest
from tests.evaluation.eval_helpers import noisy_predictions, random_walk_boxes

from mmtrack_kd.data.results_io import (
    OTB_RESULTS,
    atomic_file,
    atomic_write_text,
    VOT_LONGTERM_RESULTS,
    otb_result_path,
    read_otb_result,
    read_otb_results,
    read_vot_longterm_result,
    vot_longterm_files,
    write_otb_result,
    write_vot_longterm_result,
)
from mmtrack_kd.errors import DataError, MmtrackError


def test_otb_round_trip(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    boxes = noisy_predictions(rng, random_walk_boxes(rng, 30))
    boxes[4] = np.nan
    path = write_otb_result(otb_result_path(tmp_path / "tracker", "seq`a'"), boxes)
    assert path == tmp_path / "tracker" / "seq`a'.txt"
    first = path.read_text().splitlines()[0].split(",")
    assert len(first) == 4 and all(len(v.split(".")[1]) == 4 for v in first)
    assert path.read_text().splitlines()[4] == "nan,nan,nan,nan"
    back = read_otb_results(tmp_path / "tracker", ["seq`a'"])["seq`a'"]
    np.testing.assert_allclose(back, boxes, atol=5e-5)
    assert np.isnan(back[4]).all()
    assert [p.name for p in (tmp_path / "tracker").iterdir()] == ["seq`a'.txt"]  # no temp files


def test_an_atomic_file_replaces_the_old_one_only_when_whole(tmp_path: Path) -> None:
    path = tmp_path / "new" / "record.json"
    assert atomic_write_text(path, "first\n") == path and path.read_bytes() == b"first\n"
    with pytest.raises(RuntimeError):
        with atomic_file(path) as handle:
            handle.write("half")
            raise RuntimeError("interrupted")
    assert path.read_text() == "first\n"  # the old file stays, the temporary one is gone
    with atomic_file(path, "wb") as handle:
        handle.write(b"\x00bytes")
    assert path.read_bytes() == b"\x00bytes" and [p.name for p in path.parent.iterdir()] == ["record.json"]


@pytest.mark.parametrize(
    "text",
    [
        "1\t2\t3\t4\n5\t6\t7\t8\n",  # OSTrack: tab-separated integers
        "1,2,3,4\n5,6,7,8\n\n",  # comma, trailing blank line
        "1.0, 2.0, 3.0, 4.0\r\n5 6 7 8\r\n",  # spaces, CRLF
    ],
)
def test_otb_reader_accepts_separators(tmp_path: Path, text: str) -> None:
    path = tmp_path / "s.txt"
    path.write_text(text)
    np.testing.assert_array_equal(read_otb_result(path), [[1, 2, 3, 4], [5, 6, 7, 8]])


@pytest.mark.parametrize(
    ("text", "line"),
    [("1,2,3,4\n5,6,7\n", 2), ("1,2,3,4\n\n5,6,7,8\n", 2), ("1,2,3,4\n1,2,3,4\n1,x,3,4\n", 3)],
)
def test_otb_reader_names_file_and_line(tmp_path: Path, text: str, line: int) -> None:
    path = tmp_path / "bad.txt"
    path.write_text(text)
    with pytest.raises(DataError, match=rf"bad\.txt, line {line}:"):
        read_otb_result(path)


def test_missing_result_file_names_expected_path(tmp_path: Path) -> None:
    write_otb_result(otb_result_path(tmp_path, "a"), np.ones((3, 4)))
    with pytest.raises(DataError, match=r"b\.txt: no result for sequence 'b'"):
        read_otb_results(tmp_path, ["a", "b"])
    assert OTB_RESULTS.finished(tmp_path, ["a", "b"]) == ["a"]


def test_vot_longterm_round_trip(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    boxes = noisy_predictions(rng, random_walk_boxes(rng, 12))
    boxes[6] = np.nan
    conf = rng.random(12)
    conf[8] = np.nan
    times = rng.random(12) * 0.01
    files = write_vot_longterm_result(tmp_path / "T", "box_darkroom", boxes, conf, times)
    folder = tmp_path / "T" / "longterm" / "box_darkroom"
    assert files.boxes == folder / "box_darkroom_001.txt"
    assert files.confidence == folder / "box_darkroom_001_confidence.value"
    assert files.time == folder / "box_darkroom_001_time.value"
    lines = files.boxes.read_text().splitlines()
    assert lines[0] == "1" and len(lines) == 12 and lines[6] == "nan,nan,nan,nan"
    assert files.confidence.read_text().splitlines()[0] == ""
    back = read_vot_longterm_result(tmp_path / "T", "box_darkroom")
    assert np.isnan(back.boxes[0]).all()  # the initialisation marker has no box
    np.testing.assert_allclose(back.boxes[1:], boxes[1:], atol=5e-5)
    assert back.confidences[0] == 0.0  # empty line: the toolkit's default
    np.testing.assert_array_equal(back.confidences[1:], conf[1:])  # exact: repr precision
    np.testing.assert_array_equal(back.times, times)
    assert VOT_LONGTERM_RESULTS.finished(tmp_path / "T", ["box_darkroom", "x"]) == [
        "box_darkroom"
    ]
    assert sorted(p.name for p in folder.iterdir()) == sorted(
        [files.boxes.name, files.confidence.name, files.time.name]
    )


def test_vot_reader_errors(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"longterm/s/s_001\.txt: no result for sequence 's'"):
        read_vot_longterm_result(tmp_path, "s")
    files = vot_longterm_files(tmp_path, "s")
    files.boxes.parent.mkdir(parents=True)
    files.boxes.write_text("1\n1,2,3,4\n1,2,3\n")
    files.confidence.write_text("\n0.5\n0.5\n")
    with pytest.raises(DataError, match=r"s_001\.txt, line 3: expected a rectangle"):
        read_vot_longterm_result(tmp_path, "s")
    files.boxes.write_text("1\n1,2,3,4\n0\n")  # a special code: no box
    files.confidence.write_text("\n0.5\nhigh\n")
    with pytest.raises(DataError, match=r"confidence\.value, line 3: 'high' is not a number"):
        read_vot_longterm_result(tmp_path, "s")
    files.confidence.write_text("\n0.5\n")
    with pytest.raises(DataError, match=r"2 confidence values for the 3 frames"):
        read_vot_longterm_result(tmp_path, "s")
    files.confidence.unlink()
    with pytest.raises(DataError, match=r"confidence\.value: confidence file not found"):
        read_vot_longterm_result(tmp_path, "s")
    files.confidence.write_text("\n0.5\n0.25\n")
    result = read_vot_longterm_result(tmp_path, "s")
    assert np.isnan(result.boxes[2]).all() and result.times is None


def test_vot_binary_trajectory(tmp_path: Path) -> None:
    """vot-toolkit >= 0.6 writes ``<seq>_001.bin`` by default: ``<hI`` header, then per frame a
    type byte and its data (0: special code ``<I``, 1: rectangle ``<ffff``)."""
    files = vot_longterm_files(tmp_path, "s")
    files.boxes.parent.mkdir(parents=True)
    data = struct.pack("<hI", 1, 3) + struct.pack("<BI", 0, 1)
    data += struct.pack("<Bffff", 1, 10.5, 20.25, 30.0, 40.0) + struct.pack("<BI", 0, 0)
    files.boxes_binary.write_bytes(data)
    files.confidence.write_text("\n0.75\n0.5\n")
    result = read_vot_longterm_result(tmp_path, "s")
    assert np.isnan(result.boxes[[0, 2]]).all()
    np.testing.assert_array_equal(result.boxes[1], [10.5, 20.25, 30.0, 40.0])
    assert VOT_LONGTERM_RESULTS.finished(tmp_path, ["s"]) == ["s"]
    files.boxes_binary.write_bytes(data[:-3])
    with pytest.raises(DataError, match=r"s_001\.bin: cannot read the binary trajectory"):
        read_vot_longterm_result(tmp_path, "s")
    files.boxes_binary.write_bytes(struct.pack("<hI", 1, 1) + struct.pack("<BH", 2, 0))
    with pytest.raises(DataError, match=r"frame 1 holds a region of type 2"):
        read_vot_longterm_result(tmp_path, "s")


def test_gtot_polygon_results_read_as_their_bounding_boxes(tmp_path):
    """GTOT's published raw results are 8-value polygons: read as axis-aligned boxes (w = max x
    - min x), as the ground-truth reader reads polygons."""
    path = tmp_path / "MANet_BlackCar.txt"
    path.write_text("10 20 50 20 50 60 10 60\n12.5 20 40 22 38 61 11 58\n")
    np.testing.assert_allclose(read_otb_result(path), [[10, 20, 40, 40], [11, 20, 29, 41]])
    path.write_text("10 20 50 20 50 60 10 60\n1 2 3 4\n")
    with pytest.raises(DataError, match="line 2: expected 8 values"):
        read_otb_result(path)


def test_layouts_write_read_and_refuse_published_variants(tmp_path: Path) -> None:
    """Each layout writes what it reads back; prefixes and corner formats exist only for
    OTB-style files (published raw results)."""
    boxes = np.array([[1.0, 2, 3, 4], [5, 6, 7, 8]])
    confidences = np.array([1.0, 0.5])
    for layout in (OTB_RESULTS, VOT_LONGTERM_RESULTS):
        folder = tmp_path / layout.name
        path = layout.write(folder, "s", boxes, confidences, np.array([0.1, 0.2]))
        assert path == layout.box_file(folder, "s") and layout.finished(folder, ["s", "t"]) == ["s"]
        read = layout.read(folder, ["s"])
        assert read.files == {"s": path}
        if layout is OTB_RESULTS:
            np.testing.assert_allclose(read.boxes["s"], boxes)
            assert read.confidences is None
        else:
            np.testing.assert_allclose(read.boxes["s"][1], boxes[1])
            np.testing.assert_allclose(read.confidences["s"], [0.0, 0.5])
    with pytest.raises(MmtrackError, match="VOT long-term layout; --prefix and --box-format"):
        VOT_LONGTERM_RESULTS.read(tmp_path / "vot-longterm", ["s"], prefix="T_")
