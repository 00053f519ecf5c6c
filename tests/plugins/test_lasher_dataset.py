"""LasHeR: split lists, frame pairing across inconsistent names, absent targets, attributes."""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np
import pytest

from mmtrack_kd.errors import DataError
from plugins.common import DatasetWarning
from plugins.lasher import LASHER_ATTRIBUTES, LasHeR
from tests.plugins.layouts import default_boxes, lasher_sequence, write_rows

BACKTICK = "blkboy`shead"  # both in the official test list
QUOTE = "leftgirl'swhitebag"


def lasher(root: Path, **options) -> LasHeR:
    return LasHeR(LasHeR.Options(root=root, **options))


def test_lists_the_official_test_split_restricted_to_sequences(tmp_path: Path):
    lasher_sequence(tmp_path, BACKTICK, split="test")
    lasher_sequence(tmp_path, QUOTE, split="test")
    dataset = lasher(tmp_path, split="test", sequences=[QUOTE, BACKTICK])
    assert dataset.list_sequences() == [QUOTE, BACKTICK]
    assert lasher(tmp_path, split="test", sequences=[BACKTICK]).list_sequences() == [BACKTICK]


def test_missing_listed_sequences_fail_or_are_skipped_with_a_warning(tmp_path: Path):
    lasher_sequence(tmp_path, BACKTICK, split="test")
    with pytest.raises(DataError) as error:
        lasher(tmp_path, split="test").list_sequences()
    message = str(error.value)
    assert "lasher" in message and "244 of the 245" in message and "skip_missing" in message
    with pytest.warns(DatasetWarning, match="244 of the 245"):
        names = lasher(tmp_path, split="test", skip_missing=True).list_sequences()
    assert names == [BACKTICK]


def test_unknown_requested_sequence_and_split(tmp_path: Path):
    lasher_sequence(tmp_path, BACKTICK, split="test")
    with pytest.raises(DataError, match="split 'test' has no sequence 'nosuchseq'"):
        lasher(tmp_path, split="test", sequences=["nosuchseq"]).list_sequences()
    with pytest.raises(DataError, match="unknown split 'val'"):
        lasher(tmp_path, split="val")


def test_splits_are_separate_folders(tmp_path: Path):
    lasher_sequence(tmp_path, "comingboy'shead", split="train")
    lasher_sequence(tmp_path, BACKTICK, split="test")
    train = lasher(tmp_path, split="train", skip_missing=True)
    with pytest.warns(DatasetWarning):
        assert train.list_sequences() == ["comingboy'shead"]
    with pytest.raises(DataError, match="no such sequence folder"):
        train.load_sequence(BACKTICK)


def test_pairs_frames_with_different_name_patterns_in_natural_order(tmp_path: Path):
    rgb = [f"v{i:06d}.jpg" for i in (1, 2, 10, 11)]
    thermal = [f"{i:d}.jpg" for i in (0, 1, 2, 3)]
    lasher_sequence(tmp_path, BACKTICK, split="test", rgb_names=rgb, thermal_names=thermal)
    sequence = lasher(tmp_path, split="test", sequences=[BACKTICK]).load_sequence(BACKTICK)
    assert [p.name for p in sequence.frames["rgb"]] == rgb
    assert [p.name for p in sequence.frames["thermal"]] == thermal
    assert sequence.streams == ("rgb", "thermal") and sequence.n_frames == 4
    assert sequence.name == BACKTICK and sequence.dataset == "lasher"


def test_frame_count_mismatch_names_the_sequence_and_folders(tmp_path: Path):
    folder = lasher_sequence(tmp_path, QUOTE, split="test")
    os.remove(folder / "infrared" / "i000004.jpg")
    with pytest.raises(DataError) as error:
        lasher(tmp_path, split="test", sequences=[QUOTE]).load_sequence(QUOTE)
    message = str(error.value)
    assert f"lasher/{QUOTE}" in message and "do not pair up" in message
    assert str(folder / "infrared") in message and "has 3" in message and "has 4" in message


def test_absent_rows_are_kept_and_not_visible(tmp_path: Path):
    boxes = default_boxes(4)
    boxes[1] = [0, 0, 0, 0]
    boxes[2] = [12, 22, 0, 0]
    lasher_sequence(tmp_path, BACKTICK, split="test", boxes=boxes)
    sequence = lasher(tmp_path, split="test", sequences=[BACKTICK]).load_sequence(BACKTICK)
    np.testing.assert_array_equal(sequence.boxes, boxes)
    assert sequence.visible.tolist() == [True, False, False, True]
    assert sequence.modality_boxes == {}


def test_init_txt_is_used_when_visible_txt_is_missing(tmp_path: Path):
    lasher_sequence(tmp_path, BACKTICK, split="test", gt_file="init.txt")
    sequence = lasher(tmp_path, split="test", sequences=[BACKTICK]).load_sequence(BACKTICK)
    np.testing.assert_array_equal(sequence.boxes, default_boxes(4))


def test_ground_truth_row_count_mismatch_names_the_file(tmp_path: Path):
    folder = lasher_sequence(tmp_path, BACKTICK, split="test")
    write_rows(folder / "visible.txt", default_boxes(5))
    with pytest.raises(DataError) as error:
        lasher(tmp_path, split="test", sequences=[BACKTICK]).load_sequence(BACKTICK)
    message = str(error.value)
    assert f"lasher/{BACKTICK}" in message and str(folder / "visible.txt") in message
    assert "5 ground-truth rows" in message and "4 frames" in message


def test_malformed_row_names_dataset_sequence_file_and_line(tmp_path: Path):
    folder = lasher_sequence(tmp_path, QUOTE, split="test")
    (folder / "visible.txt").write_text("1,2,3,4\n1,2,3,4\n1,2;;\n1,2,3,4\n")
    with pytest.raises(DataError) as error:
        lasher(tmp_path, split="test", sequences=[QUOTE]).load_sequence(QUOTE)
    message = str(error.value)
    assert f"lasher/{QUOTE}" in message and str(folder / "visible.txt") in message
    assert "line 3" in message


def test_attributes_from_the_shipped_table_and_from_attriseqstxt(tmp_path: Path):
    lasher_sequence(tmp_path, BACKTICK, split="test")
    sequence = lasher(tmp_path, split="test", sequences=[BACKTICK]).load_sequence(BACKTICK)
    assert list(sequence.attributes) == list(LASHER_ATTRIBUTES)
    # From the LasHeR toolkit's AttriSeqsTxt/blkboy`shead.txt.
    assert [name for name, on in sequence.attributes.items() if on] == [
        "HO",
        "MB",
        "CM",
        "FM",
        "SV",
        "ARC",
    ]

    flags = [1] + [0] * 17 + [1]
    lasher_sequence(tmp_path, QUOTE, split="test", attributes=flags)
    sequence = lasher(tmp_path, split="test", sequences=[QUOTE]).load_sequence(QUOTE)
    assert [name for name, on in sequence.attributes.items() if on] == ["NO", "ARC"]


def test_malformed_attribute_file_is_an_error_naming_it(tmp_path: Path):
    lasher_sequence(tmp_path, QUOTE, split="test", attributes=[1, 0, 1])
    with pytest.raises(DataError, match=r"AttriSeqsTxt/leftgirl'swhitebag\.txt must hold 19"):
        lasher(tmp_path, split="test", sequences=[QUOTE]).load_sequence(QUOTE)


def test_official_layout_variants_are_found(tmp_path: Path):
    folder = lasher_sequence(tmp_path / "tmp", BACKTICK, split="test")
    target = tmp_path / "LasHeR" / "TestingSet" / "testingset"
    target.mkdir(parents=True)
    folder.rename(target / BACKTICK)
    dataset = lasher(tmp_path / "LasHeR", split="test", sequences=[BACKTICK])
    assert dataset.split_dir() == target
    assert dataset.load_sequence(BACKTICK).path == target / BACKTICK


def test_ground_truth_without_frames(tmp_path: Path):
    folder = lasher_sequence(tmp_path, BACKTICK, split="test")
    for stream in ("visible", "infrared"):
        for image in (folder / stream).iterdir():
            image.unlink()
        (folder / stream).rmdir()
    dataset = lasher(tmp_path, split="test", sequences=[BACKTICK])
    assert dataset.list_sequences() == [BACKTICK]
    with pytest.raises(DataError, match="no rgb frame folder"):
        dataset.load_sequence(BACKTICK)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        truth = dataset.load_groundtruth(BACKTICK)
    assert truth.frames == {} and truth.n_frames == 4 and truth.attributes["HO"]
    np.testing.assert_array_equal(truth.boxes, default_boxes(4))


def test_list_source_chooses_between_the_disk_list_and_the_shipped_one(tmp_path: Path):
    lasher_sequence(tmp_path, "mysequence", split="test")
    lasher_sequence(tmp_path, BACKTICK, split="test")
    (tmp_path / "testingsetList.txt").write_text("mysequence\r\n")
    assert lasher(tmp_path, split="test").list_sequences() == ["mysequence"]
    assert lasher(tmp_path, split="test", list_source="disk").list_sequences() == ["mysequence"]
    with pytest.raises(DataError, match=r"plugins/splits/lasher_test\.txt"):
        lasher(tmp_path, split="test", list_source="official").list_sequences()
    (tmp_path / "testingsetList.txt").unlink()
    on_disk = lasher(tmp_path, split="test", list_source="disk").list_sequences()
    assert on_disk == [BACKTICK, "mysequence"]
    # A sequence outside the official list still loads (its attributes are unknown).
    assert lasher(tmp_path, split="test").load_sequence("mysequence").attributes == {}
