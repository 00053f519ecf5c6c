"""Writers of tiny sequences in each benchmark's real on-disk layout.

Plain functions (not fixtures) so that any test can build a dataset root in ``tmp_path``: each
writes one sequence and returns its folder. Frames are real images (8 x 6 pixels; DepthTrack
depth is 16-bit PNG), so a test may read them. Boxes default to ``[10 + i, 20 + i, 30, 40]`` for
frame ``i``. Names may carry the quotes and backticks real LasHeR names have.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterable, Sequence

import cv2
import numpy as np

from mmtrack_kd.data import write_event_h5

WIDTH, HEIGHT = 8, 6


def default_boxes(n: int) -> np.ndarray:
    """``(n, 4)`` boxes ``[10 + i, 20 + i, 30, 40]``."""
    return np.array([[10 + i, 20 + i, 30, 40] for i in range(n)], dtype=np.float64)


def write_image(path: Path, value: int = 0, *, depth16: bool = False, gray: bool = False) -> Path:
    """An 8 x 6 image: 3-channel uint8 by default, single-channel uint16 with ``depth16``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if depth16:
        image = np.full((HEIGHT, WIDTH), 1000 + 100 * value, dtype=np.uint16)
    elif gray:
        image = np.full((HEIGHT, WIDTH), value % 256, dtype=np.uint8)
    else:
        image = np.full((HEIGHT, WIDTH, 3), value % 256, dtype=np.uint8)
    assert cv2.imwrite(str(path), image), f"could not write {path}"
    return path


def write_frames(folder: Path, names: Iterable[str], **kwargs: bool) -> list[Path]:
    """One image a name in ``folder``."""
    return [write_image(folder / name, index, **kwargs) for index, name in enumerate(names)]


def format_rows(rows: Sequence[Sequence[float]] | np.ndarray, sep: str = ",") -> str:
    """Rows as text, one a line; integers without a decimal point, NaN as ``nan``."""

    def number(value: float) -> str:
        if np.isnan(value):
            return "nan"
        return str(int(value)) if float(value).is_integer() else repr(float(value))

    return "".join(sep.join(number(v) for v in row) + "\n" for row in rows)


def write_rows(path: Path, rows: Sequence[Sequence[float]] | np.ndarray, sep: str = ",") -> Path:
    """A ground-truth-like text file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(format_rows(rows, sep))
    return path


# --------------------------------------------------------------------------- RGB-T


def lasher_sequence(
    root: Path,
    name: str,
    n: int = 4,
    *,
    split: str = "train",
    rgb_names: Sequence[str] | None = None,
    thermal_names: Sequence[str] | None = None,
    boxes: np.ndarray | None = None,
    gt_file: str = "visible.txt",
    attributes: Sequence[int] | None = None,
) -> Path:
    """A LasHeR sequence in ``<root>/trainingset/`` or ``<root>/testingset/``: ``visible/``
    (``v000001.jpg``...), ``infrared/`` (``i000001.jpg``...), ``visible.txt`` (or ``gt_file``),
    ``infrared.txt`` and ``init.txt``; optionally ``<root>/AttriSeqsTxt/<name>.txt``."""
    folder = root / ("trainingset" if split == "train" else "testingset") / name
    write_frames(folder / "visible", rgb_names or [f"v{i + 1:06d}.jpg" for i in range(n)])
    write_frames(folder / "infrared", thermal_names or [f"i{i + 1:06d}.jpg" for i in range(n)])
    boxes = default_boxes(n) if boxes is None else boxes
    write_rows(folder / gt_file, boxes)
    if gt_file == "visible.txt":
        write_rows(folder / "infrared.txt", boxes)
        write_rows(folder / "init.txt", boxes)
    if attributes is not None:
        attribute_file = root / "AttriSeqsTxt" / f"{name}.txt"
        attribute_file.parent.mkdir(parents=True, exist_ok=True)
        attribute_file.write_text(",".join(str(v) for v in attributes))
    return folder


def rgbt234_sequence(
    root: Path,
    name: str,
    n: int = 4,
    *,
    visible_boxes: np.ndarray | None = None,
    infrared_boxes: np.ndarray | None = None,
) -> Path:
    """An RGBT234 sequence ``<root>/<name>/`` with ``visible/00001v.jpg``...,
    ``infrared/00001i.jpg``..., ``visible.txt``, ``infrared.txt`` and ``init.txt``."""
    folder = root / name
    write_frames(folder / "visible", [f"{i + 1:05d}v.jpg" for i in range(n)])
    write_frames(folder / "infrared", [f"{i + 1:05d}i.jpg" for i in range(n)])
    visible = default_boxes(n) if visible_boxes is None else visible_boxes
    infrared = visible + [2, 1, 0, 0] if infrared_boxes is None else infrared_boxes
    write_rows(folder / "visible.txt", visible)
    write_rows(folder / "infrared.txt", infrared)
    write_rows(folder / "init.txt", visible)
    return folder


def rgbt210_sequence(root: Path, name: str, n: int = 4, *, boxes: np.ndarray | None = None) -> Path:
    """An RGBT210 sequence ``<root>/<name>/`` with ``visible/``, ``infrared/`` and ``init.txt``."""
    folder = root / name
    write_frames(folder / "visible", [f"{i + 1:05d}v.jpg" for i in range(n)])
    write_frames(folder / "infrared", [f"{i + 1:05d}i.jpg" for i in range(n)])
    write_rows(folder / "init.txt", default_boxes(n) if boxes is None else boxes)
    return folder


def gtot_sequence(
    root: Path,
    name: str,
    n: int = 4,
    *,
    corners_v: np.ndarray | None = None,
    corners_i: np.ndarray | None = None,
) -> Path:
    """A GTOT sequence ``<root>/<name>/``: ``v/00001v.png``..., ``i/00001i.png``...,
    ``groundTruth_v.txt`` / ``groundTruth_i.txt`` (space-separated ``x1 y1 x2 y2``) and the
    tab-separated ``init.txt`` (``x y w h``)."""
    folder = root / name
    write_frames(folder / "v", [f"{i + 1:05d}v.png" for i in range(n)])
    write_frames(folder / "i", [f"{i + 1:05d}i.png" for i in range(n)], gray=True)
    xywh = default_boxes(n)
    corners = np.concatenate([xywh[:, :2], xywh[:, :2] + xywh[:, 2:]], axis=1)
    corners_v = corners if corners_v is None else corners_v
    corners_i = corners + [1, 1, 1, 1] if corners_i is None else corners_i
    write_rows(folder / "groundTruth_v.txt", corners_v, sep=" ")
    write_rows(folder / "groundTruth_i.txt", corners_i, sep=" ")
    init = np.concatenate([corners_v[:, :2], corners_v[:, 2:] - corners_v[:, :2]], axis=1)
    write_rows(folder / "init.txt", init, sep="\t")
    return folder


def vtuav_sequence(
    root: Path,
    name: str,
    n_frames: int = 21,
    *,
    split: str = "test",
    subset: str = "st",
    pack: str | None = "test_ST_001",
    rows: np.ndarray | None = None,
) -> Path:
    """A VTUAV sequence ``<root>/<split>_<ST|LT>/[<pack>/]<name>/`` with ``rgb/000001.jpg``...,
    ``ir/000001.jpg``... and space-separated ``rgb.txt`` / ``ir.txt`` holding one row every 10th
    frame (``ceil(n_frames / 10)`` rows unless ``rows`` is given)."""
    base = root / f"{split}_{subset.upper()}"
    folder = (base / pack / name) if pack else base / name
    frame_names = [f"{i + 1:06d}.jpg" for i in range(n_frames)]
    write_frames(folder / "rgb", frame_names)
    write_frames(folder / "ir", frame_names)
    if rows is None:
        rows = default_boxes(-(-n_frames // 10))
    write_rows(folder / "rgb.txt", rows, sep=" ")
    write_rows(folder / "ir.txt", np.asarray(rows) + [1, 0, 0, 0], sep=" ")
    return folder


# --------------------------------------------------------------------------- RGB-D, RGB-E


def depthtrack_sequence(
    root: Path,
    name: str,
    n: int = 4,
    *,
    split: str = "test",
    boxes: np.ndarray | None = None,
    extra_rows: int = 0,
    tags: dict[str, Sequence[int]] | None = None,
) -> Path:
    """A DepthTrack sequence ``<root>/<split>/<name>/`` in the VOT layout: ``color/%08d.jpg``,
    ``depth/%08d.png`` (16-bit), ``groundtruth.txt`` (``nan`` rows allowed; ``extra_rows``
    surplus rows reproduce the known defect) and optional ``<tag>.tag`` files."""
    folder = root / split / name
    write_frames(folder / "color", [f"{i + 1:08d}.jpg" for i in range(n)])
    write_frames(folder / "depth", [f"{i + 1:08d}.png" for i in range(n)], depth16=True)
    boxes = default_boxes(n + extra_rows) if boxes is None else boxes
    write_rows(folder / "groundtruth.txt", boxes)
    for tag, flags in (tags or {}).items():
        (folder / f"{tag}.tag").write_text("".join(f"{int(v)}\n" for v in flags))
    return folder


def visevent_sequence(
    root: Path,
    name: str,
    n: int = 4,
    *,
    split: str = "test",
    start: int = 0,
    boxes: np.ndarray | None = None,
    present: Sequence[int] | None = None,
    frame_times: np.ndarray | None = None,
) -> Path:
    """A VisEvent sequence ``<root>/<split>_subset/<name>/``: ``vis_imgs/frame%04d.bmp`` and
    ``event_imgs/frame%04d.bmp`` numbered from ``start``, comma-separated float
    ``groundtruth.txt``, ``absent_label.txt`` (1 = present; all present by default) and, with
    ``frame_times``, an ``events.h5`` in the layout of ``mmtrack_kd.data.event_store``
    (one event a frame)."""
    folder = root / f"{split}_subset" / name
    frame_names = [f"frame{start + i:04d}.bmp" for i in range(n)]
    write_frames(folder / "vis_imgs", frame_names)
    write_frames(folder / "event_imgs", frame_names)
    boxes = default_boxes(n) + 0.5 if boxes is None else boxes
    write_rows(folder / "groundtruth.txt", boxes)
    present = [1] * len(boxes) if present is None else present
    (folder / "absent_label.txt").write_text("".join(f"{int(v)}\n" for v in present))
    if frame_times is not None:
        times = np.asarray(frame_times, dtype=np.int64)
        starts = times[:-1]  # one ON event at the start of each frame
        zeros = np.zeros(len(starts), dtype=np.int64)
        write_event_h5(folder / "events.h5", zeros, zeros, starts, zeros + 1, times, WIDTH, HEIGHT)
    return folder


def folder_sequence(
    root: Path,
    name: str,
    n: int = 4,
    *,
    aux: str = "thermal",
    rgb_dir: str = "rgb",
    aux_dir: str | None = None,
    boxes: np.ndarray | None = None,
    aux_boxes: np.ndarray | None = None,
) -> Path:
    """A sequence of the plain folder layout: ``<root>/<name>/rgb/``, ``<root>/<name>/<aux>/``,
    ``groundtruth.txt`` and, with ``aux_boxes``, ``<aux>.txt``."""
    folder = root / name
    write_frames(folder / rgb_dir, [f"{i:05d}.jpg" for i in range(n)])
    write_frames(folder / (aux_dir or aux), [f"{i:05d}.png" for i in range(n)])
    write_rows(folder / "groundtruth.txt", default_boxes(n) if boxes is None else boxes)
    if aux_boxes is not None:
        write_rows(folder / f"{aux}.txt", aux_boxes)
    return folder
