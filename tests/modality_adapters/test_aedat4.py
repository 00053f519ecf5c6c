"""``convert_aedat4`` with a stand-in for the ``aedat`` decoder (no .aedat4 file is shipped).

The stand-in yields packets in the shape the ``aedat`` package documents (2.x): ``id_to_stream``
and dictionaries with ``stream_id`` and one of ``events`` / ``frame`` / ``imus``.
"""

from __future__ import annotations

import sys
import types
from pathlib import Path

import numpy as np
import pytest

from mmtrack_kd.data import EventStore
from mmtrack_kd.errors import DataError, NotAvailableError
from mmtrack_kd.plugins import default_registry
from modality_adapters.aedat4 import convert_aedat4, main
from tests.plugins.layouts import visevent_sequence

EVENT_DTYPE = np.dtype([("t", "<u8"), ("x", "<u2"), ("y", "<u2"), (("p", "on"), "?")])
BASE = 1_600_000_000_000_000


def fake_aedat(packets, streams=None, error=None):
    """A module object with a ``Decoder`` class that replays ``packets``."""

    class Decoder:
        def __init__(self, path):
            if error is not None:
                raise error
            self.path = path

        def id_to_stream(self):
            return streams or {
                0: {"type": "events", "width": 8, "height": 6},
                1: {"type": "frame", "width": 8, "height": 6},
                2: {"type": "imus"},
            }

        def __iter__(self):
            return iter(packets)

    return types.SimpleNamespace(Decoder=Decoder)


def event_packet(t, x, y, on):
    events = np.zeros(len(t), dtype=EVENT_DTYPE)
    events["t"], events["x"], events["y"], events["on"] = t, x, y, on
    return {"stream_id": 0, "events": events}


def frame_packet(t):
    pixels = np.zeros((6, 8), np.uint8)
    return {
        "stream_id": 1,
        "frame": {"t": t, "format": "L", "width": 8, "height": 6, "pixels": pixels},
    }


@pytest.fixture
def recording(tmp_path):
    """Events every 100 us from BASE, APS frames at BASE + 1000, 2000, ..., 5000."""
    t = BASE + np.arange(0, 6000, 100)
    x, y, on = np.arange(len(t)) % 8, np.arange(len(t)) % 6, np.arange(len(t)) % 2 == 0
    packets = [
        event_packet(t[:30], x[:30], y[:30], on[:30]),
        frame_packet(BASE + 1000),
        frame_packet(BASE + 2000),
        {"stream_id": 2, "imus": np.zeros(0)},
        event_packet(t[30:], x[30:], y[30:], on[30:]),
        frame_packet(BASE + 3000),
        frame_packet(BASE + 4000),
        frame_packet(BASE + 5000),
    ]
    source = tmp_path / "dvSave-2021_02_06_17_31_44.aedat4"
    source.write_bytes(b"stand-in")
    return source, packets, (t, x, y, on)


def test_frames_from_file_timestamps(tmp_path, monkeypatch, recording):
    source, packets, (t, x, y, on) = recording
    monkeypatch.setitem(sys.modules, "aedat", fake_aedat(packets))
    out = convert_aedat4(source, 3, tmp_path / "events.h5", first_frame=1)
    with EventStore(out) as store:
        assert (store.width, store.height, store.n_events, store.n_frames) == (8, 6, len(t), 3)
        # Frame k = APS frame 1 + k; its events are those after the previous APS frame, up to
        # and including its own timestamp.
        np.testing.assert_array_equal(store.frame_times, BASE + np.array([1001, 2001, 3001, 4001]))
        events = store.frame(0)
        np.testing.assert_array_equal(events.t, t[(t > BASE + 1000) & (t <= BASE + 2000)])
        inside = (t > BASE + 1000) & (t <= BASE + 2000)
        np.testing.assert_array_equal(events.x, x[inside])
        np.testing.assert_array_equal(events.p, on[inside].astype(np.uint8))


def test_first_frame_window_is_one_interval_long(tmp_path, monkeypatch, recording):
    source, packets, _ = recording
    monkeypatch.setitem(sys.modules, "aedat", fake_aedat(packets))
    out = convert_aedat4(source, 2, tmp_path / "events.h5")
    with EventStore(out) as store:
        np.testing.assert_array_equal(store.frame_times, BASE + np.array([1, 1001, 2001]))


def test_explicit_boundaries_and_even_spacing(tmp_path, monkeypatch, recording):
    source, packets, (t, *_) = recording
    monkeypatch.setitem(sys.modules, "aedat", fake_aedat(packets))
    explicit = BASE + np.array([0, 700, 5000])
    with EventStore(convert_aedat4(source, explicit, tmp_path / "a.h5")) as store:
        np.testing.assert_array_equal(store.frame_times, explicit)

    without_frames = [packet for packet in packets if "frame" not in packet]
    monkeypatch.setitem(sys.modules, "aedat", fake_aedat(without_frames))
    with EventStore(convert_aedat4(source, 4, tmp_path / "b.h5")) as store:
        assert store.frame_times[0] == t[0] and store.frame_times[-1] == t[-1] + 1
        assert sum(len(store.frame(k)) for k in range(4)) == len(t)  # every event in a frame


def test_too_few_frames_is_an_error_naming_the_file(tmp_path, monkeypatch, recording):
    source, packets, _ = recording
    monkeypatch.setitem(sys.modules, "aedat", fake_aedat(packets))
    with pytest.raises(DataError, match="holds 5 frames") as error:
        convert_aedat4(source, 5, tmp_path / "events.h5", first_frame=1, where="visevent/x")
    assert "visevent/x" in str(error.value) and str(source) in str(error.value)
    assert not (tmp_path / "events.h5").exists()


def test_unsorted_packets_are_sorted(tmp_path, monkeypatch, recording):
    source, packets, (t, *_) = recording
    swapped = [packets[4], *packets[:4], *packets[5:]]
    monkeypatch.setitem(sys.modules, "aedat", fake_aedat(swapped))
    with EventStore(convert_aedat4(source, 3, tmp_path / "events.h5")) as store:
        np.testing.assert_array_equal(store.between(0, BASE * 2).t, t)


def test_missing_package_says_how_to_install(tmp_path, monkeypatch, recording):
    source, _, _ = recording
    monkeypatch.setitem(sys.modules, "aedat", None)  # makes `import aedat` fail
    with pytest.raises(NotAvailableError, match=r"pip install 'mmtrack-kd\[events\]'"):
        convert_aedat4(source, 3, tmp_path / "events.h5")


def test_decoder_failure_and_missing_file_name_the_file(tmp_path, monkeypatch, recording):
    source, _, _ = recording
    monkeypatch.setitem(sys.modules, "aedat", fake_aedat([], error=RuntimeError("bad header")))
    with pytest.raises(DataError, match="bad header") as error:
        convert_aedat4(source, 3, tmp_path / "events.h5")
    assert str(source) in str(error.value)

    monkeypatch.setitem(sys.modules, "aedat", fake_aedat([]))
    with pytest.raises(DataError, match="holds no polarity events"):
        convert_aedat4(source, 3, tmp_path / "events.h5")
    missing = tmp_path / "absent.aedat4"
    with pytest.raises(DataError, match="does not exist") as error:
        convert_aedat4(missing, 3, tmp_path / "events.h5")
    assert str(missing) in str(error.value)


def test_the_real_decoder_refuses_a_non_aedat_file(tmp_path):
    aedat = pytest.importorskip("aedat")
    assert hasattr(aedat, "Decoder")
    source = tmp_path / "not.aedat4"
    source.write_bytes(b"definitely not AEDAT 4")
    with pytest.raises(DataError) as error:
        convert_aedat4(source, 3, tmp_path / "events.h5")
    assert str(source) in str(error.value)


def test_real_aedat4_file_end_to_end(tmp_path):
    """A genuine AEDAT 4 file written by dv-processing, decoded by the real ``aedat``."""
    pytest.importorskip("aedat")
    dv = pytest.importorskip("dv_processing")
    source = tmp_path / "davis.aedat4"
    writer = dv.io.MonoCameraWriter(
        str(source), dv.io.MonoCameraWriter.DAVISConfig("DAVIS346", (8, 6))
    )
    t = BASE + np.arange(0, 4000, 50)
    x, y, on = np.arange(len(t)) % 8, (np.arange(len(t)) // 8) % 6, np.arange(len(t)) % 3 == 0
    for start, stop, frame_time in ((0, 20, 1000), (20, 40, 2000), (40, 60, 3000), (60, 80, 3950)):
        store = dv.EventStore()
        for i in range(start, stop):
            store.push_back(int(t[i]), int(x[i]), int(y[i]), bool(on[i]))
        writer.writeEvents(store)
        writer.writeFrame(dv.Frame(BASE + frame_time, np.zeros((6, 8), np.uint8)))
    del writer  # closing the writer finishes the file

    out = convert_aedat4(source, 3, tmp_path / "events.h5", first_frame=1)
    with EventStore(out) as store:
        assert (store.width, store.height, store.n_events) == (8, 6, len(t))
        np.testing.assert_array_equal(store.frame_times, BASE + np.array([1001, 2001, 3001, 3951]))
        inside = (t > BASE + 2000) & (t <= BASE + 3000)
        events = store.frame(1)
        np.testing.assert_array_equal(events.t, t[inside])
        np.testing.assert_array_equal(events.x, x[inside])
        np.testing.assert_array_equal(events.y, y[inside])
        np.testing.assert_array_equal(events.p, on[inside].astype(np.uint8))


def test_convert_a_visevent_split_in_place(tmp_path, monkeypatch, recording, capsys):
    """``mmtrack-kd-events``: each sequence's recording becomes its ``events.h5``, read back
    through the VisEvent plugin; frame 0 is APS frame N for a sequence starting at frameN; an
    existing file is kept; a sequence without a recording fails alone, named."""
    _, packets, _ = recording
    monkeypatch.setitem(sys.modules, "aedat", fake_aedat(packets))
    root = tmp_path / "visevent"
    # names from the shipped test list
    shipped = Path(__file__).resolve().parents[2] / "plugins" / "splits" / "visevent_test.txt"
    names = shipped.read_text().split()[:2]
    good = visevent_sequence(root, names[0], n=2, start=2)
    (good / "rec.aedat4").write_bytes(b"stand-in")
    visevent_sequence(root, names[1], n=2)
    args = ["--root", str(root), "--split", "test", "--sequences", *names]
    assert main(args) == 1
    out = capsys.readouterr()
    assert "converted 1 sequences; 1 failed" in out.out and names[1] in out.err
    sequence = default_registry().dataset("visevent")(
        default_registry().dataset("visevent").Options(root=root, split="test")).load_sequence(names[0])
    assert sequence.raw["event"] == good / "events.h5"
    # frame k = APS frame 2 + k (at BASE + 3000, 4000): windows (2000, 3000], (3000, 4000]
    assert sequence.frame_times.tolist() == [BASE + 2001, BASE + 3001, BASE + 4001]
    stamp = (good / "events.h5").stat().st_mtime_ns
    assert main(args[:4] + ["--sequences", names[0]]) == 0
    assert (good / "events.h5").stat().st_mtime_ns == stamp
