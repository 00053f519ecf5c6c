"""The HDF5 event file: exact layout, round trip, slice-only reads and refused input."""

from __future__ import annotations

import h5py
import numpy as np
import pytest

from mmtrack_kd.errors import DataError
from mmtrack_kd.data.event_store import FORMAT, VERSION, EventStore, write_event_h5


def random_events(rng, count=500, width=12, height=9, t_max=10_000):
    t = np.sort(rng.integers(0, t_max, size=count))
    return (
        rng.integers(0, width, size=count),
        rng.integers(0, height, size=count),
        t,
        rng.integers(0, 2, size=count),
    )


@pytest.fixture
def event_file(tmp_path):
    rng = np.random.default_rng(3)
    x, y, t, p = random_events(rng)
    # Frames cover [1000, 9000): events before and after belong to no frame; one frame is empty.
    frame_times = np.array([1000, 2500, 2500, 4000, 7000, 9000])
    path = write_event_h5(tmp_path / "events.h5", x, y, t, p, frame_times, 12, 9)
    return path, (x, y, t, p), frame_times


def test_layout_is_exactly_the_agreed_one(event_file):
    path, (x, y, t, p), frame_times = event_file
    with h5py.File(path, "r") as file:
        assert set(file) == {"x", "y", "t", "p", "frame_times", "frame_offsets"}
        assert file["x"].dtype == np.uint16 and file["y"].dtype == np.uint16
        assert file["t"].dtype == np.int64 and file["p"].dtype == np.uint8
        assert file["frame_times"].dtype == np.int64 and file["frame_offsets"].dtype == np.int64
        assert file["frame_times"].shape == file["frame_offsets"].shape == (6,)
        assert dict(file.attrs) == {"width": 12, "height": 9, "format": FORMAT, "version": VERSION}
        np.testing.assert_array_equal(file["t"][()], t)
        offsets = file["frame_offsets"][()]
    for k in range(5):
        inside = np.flatnonzero((frame_times[k] <= t) & (t < frame_times[k + 1]))
        if len(inside):
            assert (offsets[k], offsets[k + 1]) == (inside[0], inside[-1] + 1)
        else:
            assert offsets[k] == offsets[k + 1]
    assert not list(path.parent.glob(".*.tmp"))  # the temporary file was renamed away


def test_round_trip_frame_by_frame(event_file):
    path, (x, y, t, p), frame_times = event_file
    with EventStore(path) as store:
        assert (store.width, store.height, store.n_frames, store.n_events) == (12, 9, 5, len(t))
        np.testing.assert_array_equal(store.frame_times, frame_times)
        for k in range(5):
            inside = (frame_times[k] <= t) & (t < frame_times[k + 1])
            events = store.frame(k)
            assert events.x.dtype == np.uint16 and events.t.dtype == np.int64
            for got, want in zip(events, (x, y, t, p)):
                np.testing.assert_array_equal(got, want[inside])
            between = store.between(frame_times[k], frame_times[k + 1])
            for got, want in zip(between, events):
                np.testing.assert_array_equal(got, want)
        assert len(store.frame(1)) == 0  # [2500, 2500) is empty


class RecordingDataset:
    """Stands in for an h5py dataset and records every index a read asks for."""

    def __init__(self, dataset, log):
        self.dataset, self.log = dataset, log

    def __getitem__(self, key):
        self.log.append(key)
        return self.dataset[key]

    @property
    def shape(self):
        return self.dataset.shape


def test_reading_frame_k_touches_only_its_slice(event_file):
    path, _, _ = event_file
    with EventStore(path) as store:
        log: list = []
        for name in ("_x", "_y", "_t", "_p"):
            setattr(store, name, RecordingDataset(getattr(store, name), log))
        offsets = store.frame_offsets
        store.frame(3)
        assert log == [slice(int(offsets[3]), int(offsets[4]))] * 4


def test_polarity_minus_one_is_off_and_floats_must_be_whole(tmp_path):
    path = write_event_h5(
        tmp_path / "e.h5", [0, 1], [0, 0], [5.0, 6.0], [-1, 1], [0, 10], width=2, height=1
    )
    with EventStore(path) as store:
        np.testing.assert_array_equal(store.frame(0).p, [0, 1])
    with pytest.raises(ValueError, match="whole numbers"):
        write_event_h5(tmp_path / "f.h5", [0], [0], [5.5], [1], [0, 10], 2, 1)


@pytest.mark.parametrize(
    "arguments, message",
    [
        (([0, 1], [0], [1, 2], [1, 1], [0, 5]), "same length"),
        (([0, 1], [0, 0], [2, 1], [1, 1], [0, 5]), "non-decreasing"),
        (([0, 4], [0, 0], [1, 2], [1, 1], [0, 5]), "x must lie"),
        (([0, 1], [0, 3], [1, 2], [1, 1], [0, 5]), "y must lie"),
        (([0, 1], [0, 0], [1, 2], [1, 1], [5]), r"\(N \+ 1,\)"),
        (([0, 1], [0, 0], [1, 2], [1, 1], [5, 0]), "frame_times must be non-decreasing"),
    ],
)
def test_writer_refuses_bad_input(tmp_path, arguments, message):
    with pytest.raises(ValueError, match=message):
        write_event_h5(tmp_path / "bad.h5", *arguments, width=4, height=3)
    assert not (tmp_path / "bad.h5").exists()


def test_empty_recording_and_compression(tmp_path):
    path = write_event_h5(tmp_path / "none.h5", [], [], [], [], [0, 10, 20], 4, 3)
    with EventStore(path) as store:
        assert store.n_events == 0 and len(store.frame(1)) == 0
    rng = np.random.default_rng(0)
    x, y, t, p = random_events(rng, count=200)
    packed = write_event_h5(tmp_path / "lzf.h5", x, y, t, p, [0, 10_000], 12, 9, compression="lzf")
    with EventStore(packed) as store:
        np.testing.assert_array_equal(store.frame(0).t, t)


def test_unreadable_files_name_the_file(tmp_path):
    missing = tmp_path / "missing.h5"
    with pytest.raises(DataError, match="does not exist") as error:
        EventStore(missing, where="visevent/dvSave-1")
    assert "visevent/dvSave-1" in str(error.value) and str(missing) in str(error.value)

    garbage = tmp_path / "garbage.h5"
    garbage.write_bytes(b"no hdf5 here")
    with pytest.raises(DataError, match="cannot be opened as HDF5") as error:
        EventStore(garbage)
    assert str(garbage) in str(error.value)

    foreign = tmp_path / "foreign.h5"
    with h5py.File(foreign, "w") as file:
        file.create_dataset("events", data=np.zeros((3, 4)))
    with pytest.raises(DataError, match="format attribute") as error:
        EventStore(foreign)
    assert str(foreign) in str(error.value)

    broken = write_event_h5(tmp_path / "broken.h5", [0], [0], [1], [1], [0, 5], 2, 2)
    with h5py.File(broken, "a") as file:
        del file["frame_offsets"]
    with pytest.raises(DataError, match="missing dataset"):
        EventStore(broken)
