"""The plain folder layout, and the cost of listing many sequences."""

from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np
import pytest

from mmtrack_kd.errors import DataError
from plugins.folder import Folder
from tests.plugins.layouts import default_boxes, folder_sequence, write_rows


def test_default_layout_lists_every_sequence_folder(tmp_path: Path):
    folder_sequence(tmp_path, "walk10")
    folder_sequence(tmp_path, "walk9")
    (tmp_path / "not_a_sequence").mkdir()
    dataset = Folder(Folder.Options(root=tmp_path))
    assert dataset.options.split == "all" and dataset.modalities == ("rgb", "thermal")
    assert dataset.list_sequences() == ["walk9", "walk10"]
    sequence = dataset.load_sequence("walk9")
    assert sequence.streams == ("rgb", "thermal") and sequence.dataset == "folder"
    np.testing.assert_array_equal(sequence.boxes, default_boxes(4))


def test_options_name_the_modality_and_folders(tmp_path: Path):
    folder_sequence(
        tmp_path, "desk", aux="depth", rgb_dir="color", aux_dir="D", aux_boxes=default_boxes(4) + 1
    )
    dataset = Folder(Folder.Options(root=tmp_path, aux="depth", rgb_dir="color", aux_dir="D"))
    assert dataset.modalities == ("rgb", "depth")
    sequence = dataset.load_sequence("desk")
    assert sequence.streams == ("rgb", "depth") and sequence.frames["depth"][0].parent.name == "D"
    np.testing.assert_array_equal(sequence.modality_boxes["depth"], default_boxes(4) + 1)
    with pytest.raises(ValueError):
        Folder.Options(root=tmp_path, aux="Not A Name")
    with pytest.raises(DataError, match="not rgb"):
        Folder(Folder.Options(root=tmp_path, aux="rgb"))


def test_named_splits_need_their_list_file(tmp_path: Path):
    folder_sequence(tmp_path, "a")
    folder_sequence(tmp_path, "b")
    with pytest.raises(DataError, match=r"split 'train' needs .*train\.txt"):
        Folder(Folder.Options(root=tmp_path, split="train")).list_sequences()
    (tmp_path / "train.txt").write_text("b\n")
    assert Folder(Folder.Options(root=tmp_path, split="train")).list_sequences() == ["b"]


def test_wrong_row_count_and_nan_rows(tmp_path: Path):
    boxes = default_boxes(4)
    boxes[0] = np.nan
    folder = folder_sequence(tmp_path, "a", boxes=boxes)
    sequence = Folder(Folder.Options(root=tmp_path)).load_sequence("a")
    assert sequence.visible.tolist() == [False, True, True, True]
    write_rows(folder / "groundtruth.txt", default_boxes(2))
    with pytest.raises(DataError) as error:
        Folder(Folder.Options(root=tmp_path)).load_sequence("a")
    assert "folder/a" in str(error.value) and str(folder / "groundtruth.txt") in str(error.value)


def test_listing_a_thousand_sequences_scans_once_and_reads_no_image(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    for index in range(1000):
        write_rows(tmp_path / f"seq{index:04d}" / "groundtruth.txt", default_boxes(1))
    calls: list[str] = []
    real_scandir = os.scandir

    def counting_scandir(path="."):
        calls.append(str(path))
        return real_scandir(path)

    def no_reads(*args, **kwargs):
        raise AssertionError("an image was read while listing")

    monkeypatch.setattr(os, "scandir", counting_scandir)
    monkeypatch.setattr(cv2, "imread", no_reads)
    names = Folder(Folder.Options(root=tmp_path)).list_sequences()
    assert len(names) == 1000 and names[:2] == ["seq0000", "seq0001"]
    assert calls == [str(tmp_path)]


def test_loading_scans_each_frame_folder_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    folder_sequence(tmp_path, "a")
    dataset = Folder(Folder.Options(root=tmp_path))
    dataset.list_sequences()
    calls: list[str] = []
    real_scandir = os.scandir

    def counting_scandir(path="."):
        calls.append(str(path))
        return real_scandir(path)

    monkeypatch.setattr(os, "scandir", counting_scandir)
    dataset.load_sequence("a")
    dataset.load_sequence("a")
    assert sorted(calls) == [str(tmp_path / "a" / "rgb"), str(tmp_path / "a" / "thermal")]


def test_attributes_txt(tmp_path: Path):
    folder = folder_sequence(tmp_path, "a")
    (folder / "attributes.txt").write_text("night\n")
    assert Folder(Folder.Options(root=tmp_path)).load_sequence("a").attributes == {"night": True}
