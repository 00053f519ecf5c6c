"""RGBT234, RGBT210 and GTOT: per-modality ground truth, corner format, attributes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from mmtrack_kd.errors import DataError
from plugins.gtot import GTOT
from plugins.rgbt210 import RGBT210
from plugins.rgbt234 import RGBT234, RGBT234_ATTRIBUTES
from tests.plugins.layouts import (
    default_boxes,
    gtot_sequence,
    rgbt210_sequence,
    rgbt234_sequence,
    write_rows,
)


def test_rgbt234_has_one_test_split_and_per_modality_boxes(tmp_path: Path):
    rgbt234_sequence(tmp_path, "afterrain")
    dataset = RGBT234(RGBT234.Options(root=tmp_path, sequences=["afterrain"]))
    assert dataset.options.split == "test" and dataset.list_sequences() == ["afterrain"]
    sequence = dataset.load_sequence("afterrain")
    np.testing.assert_array_equal(sequence.boxes, default_boxes(4))
    np.testing.assert_array_equal(sequence.modality_boxes["rgb"], default_boxes(4))
    np.testing.assert_array_equal(
        sequence.modality_boxes["thermal"], default_boxes(4) + [2, 1, 0, 0]
    )
    assert [p.name for p in sequence.frames["thermal"]][:2] == ["00001i.jpg", "00002i.jpg"]
    with pytest.raises(DataError, match="unknown split 'train'"):
        RGBT234(RGBT234.Options(root=tmp_path, split="train"))


def test_rgbt234_visibility_counts_either_modality(tmp_path: Path):
    visible = default_boxes(3)
    infrared = default_boxes(3)
    visible[1] = [0, 0, 0, 0]
    infrared[2] = [0, 0, 0, 0]
    infrared[1] = [0, 0, 0, 0]
    rgbt234_sequence(tmp_path, "afterrain", 3, visible_boxes=visible, infrared_boxes=infrared)
    sequence = RGBT234(RGBT234.Options(root=tmp_path, sequences=["afterrain"])).load_sequence(
        "afterrain"
    )
    assert sequence.visible.tolist() == [True, False, True]


def test_rgbt234_modality_row_mismatch_names_the_infrared_file(tmp_path: Path):
    folder = rgbt234_sequence(tmp_path, "afterrain")
    write_rows(folder / "infrared.txt", default_boxes(3))
    with pytest.raises(DataError) as error:
        RGBT234(RGBT234.Options(root=tmp_path, sequences=["afterrain"])).load_sequence("afterrain")
    assert "rgbt234/afterrain" in str(error.value) and str(folder / "infrared.txt") in str(
        error.value
    )


def test_rgbt234_attributes_from_shipped_table_or_attr_txt(tmp_path: Path):
    rgbt234_sequence(tmp_path, "afterrain")
    rgbt234_sequence(tmp_path, "baby")
    sequence = RGBT234(RGBT234.Options(root=tmp_path, sequences=["afterrain"])).load_sequence(
        "afterrain"
    )
    assert list(sequence.attributes) == list(RGBT234_ATTRIBUTES)

    attr_txt = tmp_path / "attr_txt"
    attr_txt.mkdir()
    (attr_txt / "SequencesName.txt").write_text("baby\r\nafterrain\r\n")
    (attr_txt / "TC.txt").write_text("0\r\n1\r\n")
    (attr_txt / "LI.txt").write_text("1\r\n0\r\n")
    dataset = RGBT234(RGBT234.Options(root=tmp_path, sequences=["afterrain", "baby"]))
    assert dataset.load_sequence("afterrain").attributes == {"LI": False, "TC": True}
    assert dataset.load_sequence("baby").attributes == {"LI": True, "TC": False}

    (attr_txt / "PO.txt").write_text("1\n")
    with pytest.raises(DataError, match=r"PO\.txt has 1 lines for the 2 sequences"):
        RGBT234(RGBT234.Options(root=tmp_path, sequences=["baby"])).load_sequence("baby")


def test_rgbt210_reads_init_txt_and_rgbt234_attributes(tmp_path: Path):
    boxes = default_boxes(5)
    boxes[4] = [0, 0, 0, 0]
    rgbt210_sequence(tmp_path / "RGBT210", "afterrain", 5, boxes=boxes)
    dataset = RGBT210(RGBT210.Options(root=tmp_path, sequences=["afterrain"]))
    assert dataset.protocol == "rgbt210" and dataset.split_dir() == tmp_path / "RGBT210"
    sequence = dataset.load_sequence("afterrain")
    assert sequence.modality_boxes == {} and sequence.visible.tolist() == [True] * 4 + [False]
    assert list(sequence.attributes) == list(RGBT234_ATTRIBUTES)


def test_rgbt210_lists_its_own_210_sequences(tmp_path: Path):
    rgbt210_sequence(tmp_path, "afterrain")
    with pytest.raises(DataError, match="209 of the 210"):
        RGBT210(RGBT210.Options(root=tmp_path)).list_sequences()


def test_gtot_converts_corners_per_modality(tmp_path: Path):
    gtot_sequence(tmp_path, "BlackCar")
    dataset = GTOT(GTOT.Options(root=tmp_path, sequences=["BlackCar"]))
    sequence = dataset.load_sequence("BlackCar")
    np.testing.assert_array_equal(sequence.boxes, default_boxes(4))
    np.testing.assert_array_equal(
        sequence.modality_boxes["thermal"], default_boxes(4) + [1, 1, 0, 0]
    )
    assert (
        sequence.frames["rgb"][0].name == "00001v.png"
        and sequence.frames["thermal"][0].parent.name == "i"
    )


def test_gtot_falls_back_to_tab_separated_init(tmp_path: Path):
    folder = gtot_sequence(tmp_path, "BlackCar")
    (folder / "groundTruth_v.txt").unlink()
    (folder / "groundTruth_i.txt").unlink()
    sequence = GTOT(GTOT.Options(root=tmp_path, sequences=["BlackCar"])).load_sequence("BlackCar")
    np.testing.assert_array_equal(sequence.boxes, default_boxes(4))
    assert sequence.modality_boxes == {}


def test_gtot_malformed_corner_line(tmp_path: Path):
    folder = gtot_sequence(tmp_path, "BlackCar")
    (folder / "groundTruth_i.txt").write_text("1 2 3 4\n1 2 3\n")
    with pytest.raises(DataError) as error:
        GTOT(GTOT.Options(root=tmp_path, sequences=["BlackCar"])).load_sequence("BlackCar")
    message = str(error.value)
    assert (
        "gtot/BlackCar" in message
        and "groundTruth_i.txt line 2" in message
        and "x1 y1 x2 y2" in message
    )
