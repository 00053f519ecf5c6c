"""Shared parsing, scanning and shipped split data of the built-in dataset plugins."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest

from mmtrack_kd.errors import DataError
from plugins.common import (
    DatasetWarning,
    attribute_table,
    natural_key,
    packaged_list,
    parse_boxes,
    parse_flag_row,
    parse_line_flags,
    parse_name_list,
    scan_images,
    valid_boxes,
)
from plugins.lasher import LASHER_ATTRIBUTES
from plugins.rgbt234 import RGBT234_ATTRIBUTES

WHERE = "lasher/boy`s 'head'"


def test_parse_boxes_accepts_commas_spaces_tabs_nan_and_trailing_blank_lines(tmp_path: Path):
    path = tmp_path / "gt.txt"
    path.write_text("1,2,3,4\n5 6 7 8\n9\t10\t11\t12\r\nnan,nan,nan,nan\n1.5, 2.5, 3.5, 4.5\n\n\n")
    boxes = parse_boxes(path, WHERE, nan_rows=True)  # a layout that marks absence with NaN
    assert boxes.dtype == np.float64 and boxes.shape == (5, 4)
    np.testing.assert_array_equal(boxes[:3], [[1, 2, 3, 4], [5, 6, 7, 8], [9, 10, 11, 12]])
    assert np.isnan(boxes[3]).all()
    np.testing.assert_array_equal(boxes[4], [1.5, 2.5, 3.5, 4.5])
    assert valid_boxes(boxes).tolist() == [True, True, True, False, True]


def test_boxes_no_annotator_writes_are_named_by_line_in_a_warning(tmp_path: Path):
    """NaN rows (where the layout marks absence otherwise), negative sizes, infinities and
    partly-NaN rows would be read as "target absent" and move the scores: each is named."""
    path = tmp_path / "gt.txt"
    path.write_text("1,2,3,4\nnan,nan,nan,nan\n5,6,-7,8\n1,2,inf,4\n1,nan,3,4\n0,0,0,0\n")
    with pytest.warns(DatasetWarning) as caught:
        boxes = parse_boxes(path, WHERE)
    (warning,) = caught
    message = str(warning.message)
    assert str(path) in message and "4 box(es)" in message
    assert "line 2: a NaN row" in message and "line 3: a negative size" in message
    assert "line 4: an infinite value" in message and "and 1 more" in message
    assert valid_boxes(boxes).tolist() == [True, False, False, False, False, False]
    quiet = tmp_path / "ok.txt"
    quiet.write_text("1,2,3,4\nnan,nan,nan,nan\n0,0,0,0\n")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # NaN rows where the layout means them; 0,0,0,0 always
        parse_boxes(quiet, WHERE, nan_rows=True)


def test_parse_boxes_converts_corners_without_plus_one_and_polygons(tmp_path: Path):
    corners = tmp_path / "groundTruth_v.txt"
    corners.write_text("209 155 309 218\n")
    np.testing.assert_array_equal(parse_boxes(corners, WHERE, corners=True), [[209, 155, 100, 63]])
    polygon = tmp_path / "poly.txt"
    polygon.write_text("1,2,11,2,11,22,1,22\n")
    np.testing.assert_array_equal(parse_boxes(polygon, WHERE), [[1, 2, 10, 20]])


@pytest.mark.parametrize(
    ("content", "fragment"),
    [
        ("1,2,3,4\n1,2,3\n", "found 3"),
        ("1,2,3,4\n1,2,x,4\n", "not a number"),
        ("1,2,3,4\n\n1,2,3,4\n", "found 0"),
    ],
)
def test_parse_boxes_names_dataset_sequence_file_and_line(
    tmp_path: Path, content: str, fragment: str
):
    path = tmp_path / "visible.txt"
    path.write_text(content)
    with pytest.raises(DataError) as error:
        parse_boxes(path, WHERE)
    message = str(error.value)
    assert WHERE in message and str(path) in message and "line 2" in message and fragment in message


def test_parse_boxes_missing_and_empty_files(tmp_path: Path):
    with pytest.raises(DataError, match="does not exist"):
        parse_boxes(tmp_path / "nope.txt", WHERE)
    empty = tmp_path / "empty.txt"
    empty.write_text("\n")
    with pytest.raises(DataError, match="is empty"):
        parse_boxes(empty, WHERE)


def test_flag_files(tmp_path: Path):
    lines = tmp_path / "absent_label.txt"
    lines.write_text("1\n0\n1\n")
    assert parse_line_flags(lines, WHERE).tolist() == [1, 0, 1]
    lines.write_text("1\nabsent\n")
    with pytest.raises(DataError, match="line 2"):
        parse_line_flags(lines, WHERE)
    row = tmp_path / "attrs.txt"
    row.write_text("0,1, 1\n")
    assert parse_flag_row(row, WHERE, ("A", "B", "C")) == {"A": False, "B": True, "C": True}
    with pytest.raises(DataError, match="must hold 2 flags"):
        parse_flag_row(row, WHERE, ("A", "B"))


def test_name_lists_keep_quotes_and_backticks():
    text = "blkboy`shead\r\nleftgirl'swhitebag\n\n# comment\nblkboy`shead\n  spaced  \n"
    assert parse_name_list(text) == ["blkboy`shead", "leftgirl'swhitebag", "spaced"]


def test_natural_sort_and_scan_images(tmp_path: Path):
    for name in [
        "frame10.bmp",
        "frame2.bmp",
        "Frame1.BMP",
        ".hidden.bmp",
        "._frame3.bmp",
        "notes.txt",
    ]:
        (tmp_path / name).write_bytes(b"")
    assert scan_images(tmp_path) == ("Frame1.BMP", "frame2.bmp", "frame10.bmp")
    assert sorted(["v10", "v9", "i1"], key=natural_key) == ["i1", "v9", "v10"]


def test_shipped_split_lists_have_the_official_sizes():
    train, test = packaged_list("lasher_train.txt"), packaged_list("lasher_test.txt")
    assert (len(train), len(test)) == (979, 245) and not set(train) & set(test)
    assert "blkboy`shead" in test and "leftgirl'swhitebag" in test and "comingboy'shead" in train
    rgbt234 = packaged_list("rgbt234.txt")
    assert len(rgbt234) == 234 and set(packaged_list("rgbt210.txt")) < set(rgbt234)
    assert len(packaged_list("rgbt210.txt")) == 210
    assert len(packaged_list("gtot.txt")) == 50
    assert (
        len(packaged_list("vtuav_test_st.txt")) == 176
        and len(packaged_list("vtuav_test_lt.txt")) == 74
    )
    assert len(packaged_list("depthtrack_test.txt")) == 50
    assert len(packaged_list("visevent_test.txt")) == 320


def test_shipped_attribute_tables_cover_their_sequences():
    lasher = attribute_table("lasher_attributes.txt", LASHER_ATTRIBUTES)
    assert set(lasher) == set(packaged_list("lasher_train.txt")) | set(
        packaged_list("lasher_test.txt")
    )
    assert all(list(flags) == list(LASHER_ATTRIBUTES) for flags in lasher.values())
    rgbt = attribute_table("rgbt234_attributes.txt", RGBT234_ATTRIBUTES)
    assert set(rgbt) == set(packaged_list("rgbt234.txt"))
    # Each attribute occurs in some sequences and not in all (the table is not all zeros).
    for name in RGBT234_ATTRIBUTES:
        assert 0 < sum(flags[name] for flags in rgbt.values()) < 234
