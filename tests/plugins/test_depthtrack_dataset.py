"""DepthTrack: VOT layout, nan rows, 16-bit depth, list.txt, the surplus-rows defect, tags."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from mmtrack_kd.data.io import read_image
from mmtrack_kd.errors import DataError
from mmtrack_kd.evaluation.runner import load_ground_truths
from plugins.common import DatasetWarning
from plugins.depthtrack import DEPTHTRACK_ATTRIBUTES, DepthTrack
from tests.plugins.layouts import default_boxes, depthtrack_sequence


def depthtrack(root: Path, **options) -> DepthTrack:
    return DepthTrack(DepthTrack.Options(root=root, **options))


def test_frames_boxes_and_nan_rows(tmp_path: Path):
    boxes = default_boxes(4)
    boxes[2] = np.nan
    depthtrack_sequence(tmp_path, "cup01_indoor", boxes=boxes)
    sequence = depthtrack(tmp_path, split="test", sequences=["cup01_indoor"]).load_sequence(
        "cup01_indoor"
    )
    assert sequence.streams == ("rgb", "depth")
    assert [p.name for p in sequence.frames["depth"]] == [f"{i:08d}.png" for i in range(1, 5)]
    assert np.isnan(sequence.boxes[2]).all() and sequence.visible.tolist() == [
        True,
        True,
        False,
        True,
    ]
    depth = read_image(sequence.frames["depth"][0], cv2.IMREAD_UNCHANGED)
    assert depth.dtype == np.uint16 and depth.ndim == 2


def test_surplus_rows_are_cut_with_a_warning(tmp_path: Path):
    folder = depthtrack_sequence(tmp_path, "cup01_indoor", extra_rows=3)
    dataset = depthtrack(tmp_path, split="test", sequences=["cup01_indoor"])
    with pytest.warns(DatasetWarning) as record:
        sequence = dataset.load_sequence("cup01_indoor")
    message = str(record[0].message)
    assert "depthtrack/cup01_indoor" in message and str(folder / "groundtruth.txt") in message
    assert "7 ground-truth rows for 4 frames" in message
    assert sequence.n_frames == 4


def test_fewer_rows_than_frames_is_an_error(tmp_path: Path):
    depthtrack_sequence(tmp_path, "cup01_indoor", boxes=default_boxes(3))
    with pytest.raises(DataError, match="has 3 ground-truth rows but the sequence has 4 frames"):
        depthtrack(tmp_path, split="test", sequences=["cup01_indoor"]).load_sequence("cup01_indoor")


def test_train_split_from_list_txt(tmp_path: Path):
    depthtrack_sequence(tmp_path, "toy07_indoor_320", split="train")
    depthtrack_sequence(tmp_path, "adapter02_indoor", split="train")
    depthtrack_sequence(tmp_path, "unlisted_indoor", split="train")
    (tmp_path / "train" / "list.txt").write_text("toy07_indoor_320\nadapter02_indoor\n")
    assert depthtrack(tmp_path).list_sequences() == ["toy07_indoor_320", "adapter02_indoor"]
    (tmp_path / "train" / "list.txt").unlink()
    assert depthtrack(tmp_path).list_sequences() == [
        "adapter02_indoor",
        "toy07_indoor_320",
        "unlisted_indoor",
    ]


def test_vot_workspace_layout(tmp_path: Path):
    folder = depthtrack_sequence(tmp_path / "x", "cup01_indoor")
    workspace = tmp_path / "test" / "sequences"
    workspace.mkdir(parents=True)
    folder.rename(workspace / "cup01_indoor")
    dataset = depthtrack(tmp_path, split="test", sequences=["cup01_indoor"])
    assert dataset.split_dir() == workspace and dataset.load_sequence("cup01_indoor").n_frames == 4


def test_attributes_from_tag_files(tmp_path: Path):
    depthtrack_sequence(
        tmp_path, "cup01_indoor", tags={"full-occlusion": [0, 1, 0, 0], "dark-scene": [0] * 4}
    )
    depthtrack_sequence(tmp_path, "cup02_indoor")
    dataset = depthtrack(tmp_path, split="test", sequences=["cup01_indoor", "cup02_indoor"])
    attributes = dataset.load_sequence("cup01_indoor").attributes
    assert (
        attributes["full-occlusion"]
        and not attributes["dark-scene"]
        and not attributes["size-change"]
    )
    assert dataset.load_sequence("cup02_indoor").attributes == {}


def test_missing_depth_folder_names_the_sequence(tmp_path: Path):
    folder = depthtrack_sequence(tmp_path, "cup01_indoor")
    for image in (folder / "depth").iterdir():
        image.unlink()
    with pytest.raises(
        DataError, match=r"depthtrack/cup01_indoor: frame folder .*depth holds no images"
    ):
        depthtrack(tmp_path, split="test", sequences=["cup01_indoor"]).load_sequence("cup01_indoor")
    (folder / "depth").rmdir()
    with pytest.raises(DataError, match=r"depthtrack/cup01_indoor: no depth frame folder .*depth/"):
        depthtrack(tmp_path, split="test", sequences=["cup01_indoor"]).load_sequence("cup01_indoor")


def test_a_split_never_lists_another_splits_sequences(tmp_path: Path):
    depthtrack_sequence(tmp_path, "cup01_indoor", split="test")
    with pytest.raises(DataError, match=r"no sequences of split 'train'"):
        depthtrack(tmp_path, split="train").list_sequences()
    (tmp_path / "list.txt").write_text("\n")
    with pytest.raises(DataError, match=r"list\.txt names no sequences"):
        depthtrack(tmp_path, split="train").list_sequences()


def test_attributes_txt_when_there_are_no_tags(tmp_path: Path):
    folder = depthtrack_sequence(tmp_path, "cup01_indoor")
    (folder / "attributes.txt").write_text("dark-scene\nfast-motion\n")
    attributes = (
        depthtrack(tmp_path, split="test", sequences=["cup01_indoor"])
        .load_sequence("cup01_indoor")
        .attributes
    )
    assert [name for name, on in attributes.items() if on] == ["dark-scene", "fast-motion"]
    assert set(attributes) == set(DEPTHTRACK_ATTRIBUTES)


def test_official_list_source_needs_a_shipped_list(tmp_path: Path):
    depthtrack_sequence(tmp_path, "adapter02_indoor", split="train")
    with pytest.raises(DataError, match="no official list of split 'train'"):
        depthtrack(tmp_path, list_source="official").list_sequences()


def test_scoring_ground_truth_carries_the_frame_size_for_vot_clipping(tmp_path: Path, caplog):
    """The VOT toolkit clips boxes to the image before its overlap: the ground truth the
    evaluation scores against must know each sequence's frame size, read from its first frame,
    and say so when the frames are not there to read."""
    depthtrack_sequence(tmp_path, "cup01_indoor")
    depthtrack_sequence(tmp_path, "backpack_indoor")
    dataset = depthtrack(tmp_path, split="test", sequences=["cup01_indoor", "backpack_indoor"])
    height, width = read_image(tmp_path / "test" / "cup01_indoor" / "color" / "00000001.jpg").shape[:2]
    assert [gt.image_size for gt in load_ground_truths(dataset)] == [(width, height)] * 2

    for frame in (tmp_path / "test" / "backpack_indoor").glob("*/0*.*"):
        frame.unlink()  # annotations only, as for scoring published results
    with caplog.at_level("WARNING"):
        sizes = [gt.image_size for gt in load_ground_truths(dataset)]
    assert sizes == [(width, height), None]
    assert "backpack_indoor" in caplog.text and "not clipped" in caplog.text
