"""VTUAV: subsets, pack folders, one ground-truth row every 10th frame."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from mmtrack_kd.errors import DataError
from plugins.common import DatasetWarning
from plugins.vtuav import VTUAV, VTUAVLongTerm, VTUAVShortTerm
from tests.plugins.layouts import default_boxes, vtuav_sequence


def test_rows_land_on_every_tenth_frame(tmp_path: Path):
    vtuav_sequence(tmp_path, "animal_001", 23)
    dataset = VTUAV(VTUAV.Options(root=tmp_path, split="test", sequences=["animal_001"]))
    sequence = dataset.load_sequence("animal_001")
    assert sequence.n_frames == 23 and len(sequence.frames["thermal"]) == 23
    assert np.flatnonzero(sequence.visible).tolist() == [0, 10, 20]
    np.testing.assert_array_equal(sequence.boxes[[0, 10, 20]], default_boxes(3))
    assert (
        np.isnan(sequence.boxes[1]).all() and np.isnan(sequence.modality_boxes["thermal"][5]).all()
    )
    np.testing.assert_array_equal(
        sequence.modality_boxes["thermal"][10], default_boxes(3)[1] + [1, 0, 0, 0]
    )


def test_absent_annotated_rows_are_not_visible(tmp_path: Path):
    rows = default_boxes(3)
    rows[1] = [0, 0, 0, 0]
    vtuav_sequence(tmp_path, "animal_001", 30, rows=rows)
    sequence = VTUAVShortTerm(
        VTUAVShortTerm.Options(root=tmp_path, sequences=["animal_001"])
    ).load_sequence("animal_001")
    assert np.flatnonzero(sequence.visible).tolist() == [0, 20]


def test_dense_rows_are_taken_one_a_frame(tmp_path: Path):
    vtuav_sequence(tmp_path, "animal_001", 12, rows=default_boxes(12))
    sequence = VTUAV(
        VTUAV.Options(root=tmp_path, split="test", sequences=["animal_001"])
    ).load_sequence("animal_001")
    assert sequence.visible.all()


def test_too_few_rows_is_an_error_and_surplus_rows_are_cut(tmp_path: Path):
    vtuav_sequence(tmp_path, "animal_001", 25, rows=default_boxes(2))
    dataset = VTUAV(VTUAV.Options(root=tmp_path, split="test", sequences=["animal_001"]))
    with pytest.raises(DataError) as error:
        dataset.load_sequence("animal_001")
    assert "vtuav/animal_001" in str(error.value) and "rgb.txt has 2 rows" in str(error.value)

    vtuav_sequence(tmp_path, "bike_003", 20, rows=default_boxes(4))
    dataset = VTUAV(VTUAV.Options(root=tmp_path, split="test", sequences=["bike_003"]))
    with pytest.warns(DatasetWarning, match="the last 2 are cut off"):
        sequence = dataset.load_sequence("bike_003")
    assert np.flatnonzero(sequence.visible).tolist() == [0, 10]


def test_subsets_and_pack_folders(tmp_path: Path):
    vtuav_sequence(tmp_path, "animal_001", 11, pack="test_ST_001")
    vtuav_sequence(tmp_path, "bike_003", 11, pack=None)
    vtuav_sequence(tmp_path, "bus_025", 11, subset="lt", pack="test_LT_001")
    short = VTUAVShortTerm(VTUAVShortTerm.Options(root=tmp_path, skip_missing=True))
    with pytest.warns(DatasetWarning, match="174 of the 176"):
        assert short.list_sequences() == ["animal_001", "bike_003"]
    assert short.sequence_dir("animal_001") == tmp_path / "test_ST" / "test_ST_001" / "animal_001"
    long = VTUAVLongTerm(VTUAVLongTerm.Options(root=tmp_path, sequences=["bus_025"]))
    assert long.list_sequences() == ["bus_025"] and long.options.split == "test"
    assert VTUAV(
        VTUAV.Options(root=tmp_path, split="test", subset="lt", sequences=["bus_025"])
    ).list_sequences() == ["bus_025"]


def test_train_split_is_every_sequence_folder(tmp_path: Path):
    vtuav_sequence(tmp_path, "car_200", 11, split="train", pack=None)
    vtuav_sequence(tmp_path, "car_100", 11, split="train", pack="train_ST_007")
    dataset = VTUAV(VTUAV.Options(root=tmp_path))
    assert dataset.options.split == "train" and dataset.list_sequences() == ["car_100", "car_200"]


def test_vipt_layout_short_term_folder(tmp_path: Path):
    folder = vtuav_sequence(tmp_path / "x", "animal_001", 11, pack="test_ST_001")
    target = tmp_path / "VTUAV" / "test" / "short-term" / "test_ST_001"
    target.mkdir(parents=True)
    folder.rename(target / "animal_001")
    dataset = VTUAVShortTerm(
        VTUAVShortTerm.Options(root=tmp_path / "VTUAV", sequences=["animal_001"])
    )
    assert dataset.load_sequence("animal_001").path == target / "animal_001"


def test_ground_truth_only_ends_on_the_last_annotated_frame(tmp_path: Path):
    folder = vtuav_sequence(tmp_path, "animal_001", 23)
    for stream in ("rgb", "ir"):
        for image in (folder / stream).iterdir():
            image.unlink()
    truth = VTUAVShortTerm(
        VTUAVShortTerm.Options(root=tmp_path, sequences=["animal_001"])
    ).load_groundtruth("animal_001")
    assert truth.n_frames == 21 and np.flatnonzero(truth.visible).tolist() == [0, 10, 20]
    assert set(truth.modality_boxes) == {"rgb", "thermal"} and truth.frames == {}


def test_subset_plugins_share_the_vtuav_root_variable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    vtuav_sequence(tmp_path, "animal_001", 11)
    monkeypatch.delenv("MMTRACK_KD_VTUAV_ST_ROOT", raising=False)
    monkeypatch.setenv("MMTRACK_KD_VTUAV_ROOT", str(tmp_path))
    dataset = VTUAVShortTerm(VTUAVShortTerm.Options(sequences=["animal_001"]))
    assert dataset.root == tmp_path and dataset.list_sequences() == ["animal_001"]


def test_train_split_does_not_pick_up_test_packs(tmp_path: Path):
    vtuav_sequence(tmp_path, "animal_001", 11, pack="test_ST_001")
    with pytest.raises(DataError, match="no sequences of split 'train'"):
        VTUAV(VTUAV.Options(root=tmp_path, split="train")).list_sequences()
