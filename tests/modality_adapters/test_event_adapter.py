"""The ``event`` adapter: rendered frames, voxel grids against the definition and tonic."""

from __future__ import annotations

import math
import pickle

import numpy as np
import pytest
from pydantic import ValidationError

from mmtrack_kd.errors import DataError
from mmtrack_kd.data import IMAGENET_MEAN
from modality_adapters.event import EventAdapter, EventOptions, render_voxel, voxel_grid
from mmtrack_kd.data.event_store import write_event_h5

WIDTH, HEIGHT = 10, 7


def loop_voxel_grid(x, y, t, p, bins, height, width):
    """The voxel grid of REFERENCE.md written as a plain loop over events: B x H x W."""
    grid = np.zeros((bins, height, width))
    if len(t) == 0:
        return grid
    t0, t_end = int(t[0]), int(t[-1])
    span = t_end - t0 if t_end != t0 else 1
    for xi, yi, ti, pi in zip(x, y, t, p):
        scaled = (bins - 1) * (int(ti) - t0) / span
        lower = math.floor(scaled)
        frac = scaled - lower
        polarity = 1.0 if pi == 1 else -1.0
        grid[lower, yi, xi] += polarity * (1.0 - frac)
        if lower + 1 < bins:
            grid[lower + 1, yi, xi] += polarity * frac
    return grid


@pytest.fixture
def recording(tmp_path):
    """Four frames of random events, the third one empty; absolute microsecond clock."""
    rng = np.random.default_rng(11)
    count = 400
    base = 1_650_000_000_000_000  # a Unix-time clock in microseconds, as DAVIS files carry
    t = base + np.sort(rng.integers(0, 40_000, size=count))
    t = t[(t < base + 20_000) | (t >= base + 30_000)]  # leave frame 2 without events
    x = rng.integers(0, WIDTH, size=len(t))
    y = rng.integers(0, HEIGHT, size=len(t))
    p = rng.integers(0, 2, size=len(t))
    frame_times = base + np.array([0, 10_000, 20_000, 30_000, 40_000])
    path = write_event_h5(tmp_path / "events.h5", x, y, t, p, frame_times, WIDTH, HEIGHT)
    return path, (x, y, t, p), frame_times


def voxel_adapter(bins=5, **options):
    return EventAdapter(EventOptions(representation="voxel", bins=bins, **options))


@pytest.mark.parametrize("bins", [1, 2, 5, 9])
def test_voxel_read_equals_the_definition(recording, make_sequence, bins):
    path, (x, y, t, p), frame_times = recording
    sequence = make_sequence(n=4, raw={"event": path})
    adapter = voxel_adapter(bins)
    assert adapter.channels == bins
    for k in range(4):
        inside = (frame_times[k] <= t) & (t < frame_times[k + 1])
        expected = loop_voxel_grid(x[inside], y[inside], t[inside], p[inside], bins, HEIGHT, WIDTH)
        frame = adapter.read(sequence, k)
        assert frame.shape == (HEIGHT, WIDTH, bins) and frame.dtype == np.float32
        np.testing.assert_allclose(frame, expected.transpose(1, 2, 0), atol=1e-5)
        # Each event spreads a total weight of exactly +-1 over the bins.
        net = np.where(p[inside] == 1, 1, -1).sum()
        assert frame.sum() == pytest.approx(net, abs=1e-4)
    assert not adapter.read(sequence, 2).any()  # the empty frame


def test_zero_span_puts_everything_in_the_first_bin():
    x, y, t, p = np.array([1, 2, 2]), np.array([0, 3, 3]), np.full(3, 42), np.array([1, 0, 0])
    grid = voxel_grid(x, y, t, p, 4, 5, 6)
    np.testing.assert_allclose(grid, loop_voxel_grid(x, y, t, p, 4, 5, 6))
    assert grid[0, 0, 1] == 1.0 and grid[0, 3, 2] == -2.0 and not grid[1:].any()


def test_voxel_grid_matches_tonic_up_to_its_documented_difference():
    tonic = pytest.importorskip("tonic")
    rng = np.random.default_rng(5)
    bins, count = 6, 300
    t = np.sort(rng.integers(0, 50_000, size=count)).astype(np.int64)
    x = rng.integers(0, WIDTH, size=count)
    y = rng.integers(0, HEIGHT, size=count)
    p = rng.integers(0, 2, size=count)
    ours = voxel_grid(x, y, t, p, bins, HEIGHT, WIDTH)

    # tonic scales by B instead of B - 1 and drops the last event (it lands at t* = B). Append
    # one dummy event at t0 + span * B / (B - 1): tonic then scales our events exactly as the
    # definition does and drops only the dummy.
    span = float(t[-1] - t[0])
    dtype = np.dtype([("x", np.int64), ("y", np.int64), ("t", np.float64), ("p", np.int64)])
    events = np.zeros(count + 1, dtype=dtype)
    events["x"][:count], events["y"][:count], events["p"][:count] = x, y, p
    events["t"][:count] = t
    events["t"][count] = t[0] + span * bins / (bins - 1)
    theirs = tonic.transforms.ToVoxelGrid(sensor_size=(WIDTH, HEIGHT, 2), n_time_bins=bins)(events)

    np.testing.assert_allclose(ours, theirs.reshape(bins, HEIGHT, WIDTH), atol=1e-6)


def test_own_frame_times_of_the_sequence_are_searched(recording, make_sequence):
    path, (x, y, t, p), frame_times = recording
    shifted = frame_times + 2_500  # a dataset plugin may choose other boundaries
    sequence = make_sequence(n=4, raw={"event": path}, frame_times=shifted)
    adapter = voxel_adapter(3)
    for k in range(4):
        inside = (shifted[k] <= t) & (t < shifted[k + 1])
        expected = loop_voxel_grid(x[inside], y[inside], t[inside], p[inside], 3, HEIGHT, WIDTH)
        np.testing.assert_allclose(
            adapter.read(sequence, k), expected.transpose(1, 2, 0), atol=1e-5
        )


def test_voxel_normalisation_and_rendering():
    adapter = voxel_adapter(4, voxel_std=2.0)
    assert adapter.mean == (0.0,) * 4 and adapter.std == (2.0,) * 4
    frame = np.zeros((2, 3, 4), np.float32)
    frame[0, 0, 1] = 0.25  # a fraction of one ON event
    frame[0, 1, :2] = 1.0  # two ON events
    frame[1, 2, 3] = -1.0  # one OFF event
    np.testing.assert_allclose(adapter.normalise(frame), frame / 2.0)
    image = render_voxel(frame)
    assert image.shape == (2, 3, 3) and image.dtype == np.uint8
    np.testing.assert_array_equal(image[1, 0], [255, 255, 255])  # no event: white
    np.testing.assert_array_equal(image[0, 1], [255, 0, 0])  # ON: red
    np.testing.assert_array_equal(image[1, 2], [0, 0, 255])  # OFF: blue
    np.testing.assert_array_equal(image[0, 0], [255, 191, 191])  # faint ON: pale red
    np.testing.assert_array_equal(adapter.render(frame), image)


def test_frame_representation_reads_the_rendered_images(tmp_path, make_sequence, write_image):
    rgb = np.full((HEIGHT, WIDTH, 3), 255, np.uint8)
    rgb[2, 3] = (255, 0, 0)
    path = write_image(tmp_path / "event_imgs" / "frame0000.bmp", rgb[:, :, ::-1].copy())
    adapter = EventAdapter()
    frame = adapter.read(make_sequence({"event": [path]}), 0)
    assert adapter.channels == 3 and adapter.mean == IMAGENET_MEAN
    assert frame.shape == (HEIGHT, WIDTH, 3) and frame.dtype == np.float32
    np.testing.assert_allclose(frame, rgb / 255.0)
    np.testing.assert_array_equal(adapter.render(frame), rgb)


def test_voxel_errors_name_sequence_and_file(tmp_path, recording, make_sequence, where):
    path, _, _ = recording
    with pytest.raises(DataError, match="no raw event file") as error:
        voxel_adapter().read(make_sequence(n=4), 0)
    assert where in str(error.value)

    missing = tmp_path / "nothing.h5"
    with pytest.raises(DataError) as error:
        voxel_adapter().read(make_sequence(n=4, raw={"event": missing}), 0)
    assert where in str(error.value) and str(missing) in str(error.value)

    with pytest.raises(DataError, match="indexes 4 frames but the sequence has 3") as error:
        voxel_adapter().read(make_sequence(n=3, raw={"event": path}), 0)
    assert where in str(error.value) and str(path) in str(error.value)

    with pytest.raises(DataError, match="out of range"):
        voxel_adapter().read(make_sequence(n=4, raw={"event": path}), 4)


def test_adapter_with_open_files_pickles_for_worker_processes(recording, make_sequence):
    path, _, _ = recording
    sequence = make_sequence(n=4, raw={"event": path})
    adapter = voxel_adapter()
    first = adapter.read(sequence, 1)
    clone = pickle.loads(pickle.dumps(adapter))
    np.testing.assert_array_equal(clone.read(sequence, 1), first)
    adapter.close()
    np.testing.assert_array_equal(adapter.read(sequence, 1), first)  # reopens after close
    # In a forked worker (another process id) the parent's open files are dropped, not used.
    parents = dict(adapter._stores)
    adapter._pid = -1
    np.testing.assert_array_equal(adapter.read(sequence, 1), first)
    assert all(adapter._stores[key] is not store for key, store in parents.items())


@pytest.mark.parametrize(
    "options", [{"bins": 0}, {"voxel_std": 0}, {"representation": "histogram"}, {"bin": 3}]
)
def test_bad_options_are_rejected(options):
    with pytest.raises(ValidationError):
        EventOptions.model_validate(options)
