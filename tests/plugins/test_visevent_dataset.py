"""VisEvent: irregular start indices, absent_label.txt (1 = present), events.h5."""

from __future__ import annotations

import os
from pathlib import Path

import h5py
import numpy as np
import pytest

from mmtrack_kd.errors import DataError
from plugins.visevent import VisEvent
from tests.plugins.layouts import default_boxes, visevent_sequence

NAME = "dvSave-2021_02_06_08_33_09_cat"  # in the official test list


def visevent(root: Path, **options) -> VisEvent:
    return VisEvent(VisEvent.Options(root=root, **options))


def test_irregular_start_index_and_float_boxes(tmp_path: Path):
    visevent_sequence(tmp_path, NAME, 12, start=97)
    sequence = visevent(tmp_path, split="test", sequences=[NAME]).load_sequence(NAME)
    assert sequence.streams == ("rgb", "event") and sequence.n_frames == 12
    assert sequence.frames["rgb"][0].name == "frame0097.bmp"
    assert sequence.frames["event"][-1].name == "frame0108.bmp"
    np.testing.assert_array_equal(sequence.boxes, default_boxes(12) + 0.5)
    assert sequence.raw == {} and sequence.frame_times is None


def test_absent_label_one_means_present(tmp_path: Path):
    boxes = default_boxes(4)
    boxes[3] = [0, 0, 0, 0]
    visevent_sequence(tmp_path, NAME, 4, boxes=boxes, present=[1, 0, 1, 1])
    sequence = visevent(tmp_path, split="test", sequences=[NAME]).load_sequence(NAME)
    assert sequence.visible.tolist() == [True, False, True, False]


def test_absent_label_length_mismatch_names_the_file(tmp_path: Path):
    folder = visevent_sequence(tmp_path, NAME, 4, present=[1, 1, 1])
    with pytest.raises(DataError) as error:
        visevent(tmp_path, split="test", sequences=[NAME]).load_sequence(NAME)
    assert f"visevent/{NAME}" in str(error.value) and str(folder / "absent_label.txt") in str(
        error.value
    )


def test_frame_folders_that_do_not_pair_up(tmp_path: Path):
    folder = visevent_sequence(tmp_path, NAME, 4, start=3)
    os.remove(folder / "event_imgs" / "frame0003.bmp")
    with pytest.raises(DataError, match="do not pair up"):
        visevent(tmp_path, split="test", sequences=[NAME]).load_sequence(NAME)


def test_events_file_gives_raw_and_frame_times(tmp_path: Path):
    times = np.arange(5, dtype=np.int64) * 33_000 + 1_000
    folder = visevent_sequence(tmp_path, NAME, 4, frame_times=times)
    sequence = visevent(tmp_path, split="test", sequences=[NAME]).load_sequence(NAME)
    assert sequence.raw == {"event": folder / "events.h5"}
    np.testing.assert_array_equal(sequence.frame_times, times)
    lazy = visevent(tmp_path, split="test", sequences=[NAME], read_event_times=False).load_sequence(
        NAME
    )
    assert lazy.raw == {"event": folder / "events.h5"} and lazy.frame_times is None


def test_events_file_with_wrong_frame_count_names_it(tmp_path: Path):
    folder = visevent_sequence(tmp_path, NAME, 4, frame_times=np.arange(4, dtype=np.int64))
    with pytest.raises(DataError) as error:
        visevent(tmp_path, split="test", sequences=[NAME]).load_sequence(NAME)
    message = str(error.value)
    assert (
        f"visevent/{NAME}" in message and str(folder / "events.h5") in message and "(5,)" in message
    )


def test_listing_opens_no_events_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    visevent_sequence(tmp_path, NAME, 4, frame_times=np.arange(5, dtype=np.int64))
    def refuse(*args, **kwargs):
        raise AssertionError("HDF5 opened while listing")

    monkeypatch.setattr(h5py, "File", refuse)
    assert visevent(tmp_path, split="test", sequences=[NAME]).list_sequences() == [NAME]


def test_train_split_from_trainlist(tmp_path: Path):
    visevent_sequence(tmp_path, "00142_tank_outdoor2", split="train")
    visevent_sequence(tmp_path, "video_0081", split="train")
    (tmp_path / "train_subset" / "trainlist.txt").write_text("video_0081\n00142_tank_outdoor2\n")
    assert visevent(tmp_path).list_sequences() == ["video_0081", "00142_tank_outdoor2"]


def test_train_split_does_not_list_test_sequences(tmp_path: Path):
    visevent_sequence(tmp_path, NAME, split="test")
    with pytest.raises(DataError, match="no sequences of split 'train'"):
        visevent(tmp_path).list_sequences()


def test_attributes_txt(tmp_path: Path):
    folder = visevent_sequence(tmp_path, NAME)
    assert visevent(tmp_path, split="test", sequences=[NAME]).load_sequence(NAME).attributes == {}
    (folder / "attributes.txt").write_text("LI\nFM\n")
    sequence = visevent(tmp_path, split="test", sequences=[NAME]).load_sequence(NAME)
    assert sequence.attributes == {"LI": True, "FM": True}
