"""Writers of the real datasets' on-disk layouts, and the attributes each one carries.

Each :class:`LayoutWriter` writes one sequence folder (frames, ground truth, attributes) as the
real benchmark lays it out, so the real dataset plugin and the modality adapters read the
synthetic data through their ordinary code paths; :meth:`LayoutWriter.finish_split` writes the
split's sequence list once every sequence exists.

- ``lasher`` (RGB-T): ``trainingset/<seq>/visible/v%06d.jpg``, ``infrared/i%06d.jpg`` (grey
  thermal as 3-channel JPEG), ``visible.txt`` = ``infrared.txt`` = ``init.txt`` with integer
  ``x,y,w,h`` (``0,0,0,0`` when absent); ``testingset/`` likewise; ``trainingsetList.txt`` and
  ``testingsetList.txt``; ``AttriSeqsTxt/<seq>.txt`` with LasHeR's 19 flags.
- ``depthtrack`` (RGB-D, VOT): ``train/<seq>/color/%08d.jpg``, ``depth/%08d.png`` (uint16
  millimetres), ``groundtruth.txt`` (``nan,nan,nan,nan`` when absent), per-frame VOT tags
  ``<tag>.tag``; ``train/list.txt``; ``test/`` likewise.
- ``visevent`` (RGB-E): ``train_subset/<seq>/vis_imgs/frame%04d.bmp``,
  ``event_imgs/frame%04d.bmp``, ``groundtruth.txt`` (``0,0,0,0`` when absent),
  ``absent_label.txt`` (1 = present), the raw events in ``events.h5``
  (:mod:`mmtrack_kd.data.event_store`'s layout, written by its ``write_event_h5``) and
  mmtrack-kd's ``attributes.txt``; ``trainlist.txt``; ``test_subset/`` and ``testlist.txt``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

import cv2
import numpy as np

from mmtrack_kd.data import write_event_h5
from plugins.synthetic.render import FRAME_INTERVAL_US, Frame
from plugins.synthetic.scene import ScenePlan

#: LasHeR's 19 challenge attributes in its own order.
LASHER_ATTRIBUTES = (
    "NO", "PO", "TO", "HO", "MB", "LI", "HI", "AIV", "LR", "DEF",
    "BC", "SA", "CM", "TC", "FL", "OV", "FM", "SV", "ARC",
)  # fmt: skip


def _fmt_box_int(box: np.ndarray, visible: bool) -> str:
    """LasHeR's integer ``x,y,w,h``: edges rounded to the nearest pixel boundary."""
    if not visible:
        return "0,0,0,0"
    x0, y0 = int(round(box[0])), int(round(box[1]))
    x1, y1 = int(round(box[0] + box[2])), int(round(box[1] + box[3]))
    return f"{x0},{y0},{max(x1 - x0, 1)},{max(y1 - y0, 1)}"


def _fmt_box_float(box: np.ndarray, visible: bool, absent: str) -> str:
    if not visible:
        return absent
    return ",".join(f"{v:.2f}" for v in box)


def _write_lines(path: Path, lines: list[str]) -> None:
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")


def _encode(path: Path, image: np.ndarray, params: list[int] | None = None) -> None:
    """Encode with OpenCV and write (OpenCV's encoders are deterministic)."""
    ok, data = cv2.imencode(path.suffix, image, params or [])
    if not ok:  # pragma: no cover - only on a broken OpenCV build
        raise OSError(f"OpenCV could not encode {path}")
    path.write_bytes(data.tobytes())


class LayoutWriter:
    """Writes sequences in one benchmark's layout; one instance per sequence.

    Class attributes:
        layout: layout name (``lasher``).
        dataset: name of the real dataset plugin that reads it.
        protocol: that dataset's evaluation protocol.
        aux: the auxiliary stream (``thermal``).
    """

    layout: ClassVar[str]
    dataset: ClassVar[str]
    protocol: ClassVar[str]
    aux: ClassVar[str]
    split_folders: ClassVar[dict[str, str]]
    #: The attribute names this writer writes (the dataset's vocabulary, plus extras).
    attribute_names: ClassVar[tuple[str, ...]]

    def __init__(self, root: Path, split: str, plan: ScenePlan, jpeg_quality: int = 90) -> None:
        self.root = root
        self.split = split
        self.plan = plan
        self.jpeg = [cv2.IMWRITE_JPEG_QUALITY, int(jpeg_quality)]
        self.folder = self.split_dir(root, split) / plan.name
        self.folder.mkdir(parents=True, exist_ok=False)
        self.start()

    @classmethod
    def split_dir(cls, root: Path, split: str) -> Path:
        """The folder that holds the sequences of ``split``."""
        return root / cls.split_folders[split]

    def start(self) -> None:
        """Create the sequence's sub-folders."""

    def write_frame(self, k: int, frame: Frame) -> None:
        """Write frame ``k`` of every stream."""
        raise NotImplementedError

    def finish(self, boxes: np.ndarray, visible: np.ndarray, facts: dict[str, Any]) -> dict[str, bool]:
        """Write ground truth and attributes after the last frame; returns the attribute flags
        written (in the dataset's vocabulary), derived from the generator's ``facts``
        (sequence-level flags, and per-frame ones under ``facts["frames"]``)."""
        raise NotImplementedError

    @classmethod
    def finish_split(cls, root: Path, split: str, names: list[str]) -> None:
        """Write the split-level files (sequence lists) once every sequence exists."""
        raise NotImplementedError


class LasherWriter(LayoutWriter):
    layout = "lasher"
    dataset = "lasher"
    protocol = "lasher"
    aux = "thermal"
    split_folders = {"train": "trainingset", "test": "testingset"}
    attribute_names = LASHER_ATTRIBUTES
    list_files = {"train": "trainingsetList.txt", "test": "testingsetList.txt"}
    attribute_folder = "AttriSeqsTxt"

    def start(self) -> None:
        (self.folder / "visible").mkdir()
        (self.folder / "infrared").mkdir()

    def write_frame(self, k: int, frame: Frame) -> None:
        _encode(self.folder / "visible" / f"v{k + 1:06d}.jpg", frame.rgb[:, :, ::-1], self.jpeg)
        grey = np.repeat(frame.aux[:, :, None], 3, axis=2)  # LasHeR stores grey as 3 channels
        _encode(self.folder / "infrared" / f"i{k + 1:06d}.jpg", grey, self.jpeg)

    def finish(self, boxes: np.ndarray, visible: np.ndarray, facts: dict[str, Any]) -> dict[str, bool]:
        lines = [_fmt_box_int(b, bool(v)) for b, v in zip(boxes, visible)]
        for name in ("visible.txt", "infrared.txt", "init.txt"):
            _write_lines(self.folder / name, lines)
        attributes = self.attribute_flags(facts)
        folder = self.root / self.attribute_folder
        folder.mkdir(exist_ok=True)
        flags = ",".join("1" if attributes[a] else "0" for a in LASHER_ATTRIBUTES)
        _write_lines(folder / f"{self.plan.name}.txt", [flags])
        return attributes

    @staticmethod
    def attribute_flags(facts: dict[str, Any]) -> dict[str, bool]:
        """LasHeR's 19 flags from the generator's facts."""
        flags = {name: False for name in LASHER_ATTRIBUTES}
        flags.update(
            NO=not (facts["partial_occlusion"] or facts["total_occlusion"]),
            PO=facts["partial_occlusion"],
            TO=facts["total_occlusion"],
            MB=facts["blur"],
            LI=facts["dark"],
            HI=facts["glare"],
            AIV=facts["abrupt_illumination"],
            LR=facts["low_resolution"],
            DEF=facts["deformation"],
            BC=facts["clutter"],
            SA=facts["similar_appearance"],
            CM=facts["camera_motion"],
            TC=facts["aux_spell"],
            FM=facts["fast_motion"],
            SV=facts["scale_variation"],
            ARC=facts["aspect_ratio_change"],
        )
        return flags

    @classmethod
    def finish_split(cls, root: Path, split: str, names: list[str]) -> None:
        _write_lines(root / cls.list_files[split], names)


#: DepthTrack's VOT tags as its plugin names them, plus ``depth-camouflage`` (ours).
DEPTHTRACK_TAGS = (
    "aspect-change", "background-clutter", "dark-scene", "deformable", "depth-change",
    "fast-motion", "full-occlusion", "moving-view", "out-of-frame", "out-of-plane",
    "partial-occlusion", "reflective-target", "similar-objects", "size-change", "depth-camouflage",
)  # fmt: skip


class DepthTrackWriter(LayoutWriter):
    """DepthTrack's VOT layout. Attributes are VOT per-frame tags (``<tag>.tag``, one 0/1 a
    frame) with DepthTrack's tag names, plus ``depth-camouflage`` for the frames in which the
    target sits at the background's depth (the depth stream's spell; not a DepthTrack tag)."""

    layout = "depthtrack"
    dataset = "depthtrack"
    protocol = "depthtrack"
    aux = "depth"
    split_folders = {"train": "train", "test": "test"}
    attribute_names = DEPTHTRACK_TAGS

    def start(self) -> None:
        (self.folder / "color").mkdir()
        (self.folder / "depth").mkdir()

    def write_frame(self, k: int, frame: Frame) -> None:
        _encode(self.folder / "color" / f"{k + 1:08d}.jpg", frame.rgb[:, :, ::-1], self.jpeg)
        _encode(self.folder / "depth" / f"{k + 1:08d}.png", frame.aux)

    def finish(self, boxes: np.ndarray, visible: np.ndarray, facts: dict[str, Any]) -> dict[str, bool]:
        lines = [_fmt_box_float(b, bool(v), "nan,nan,nan,nan") for b, v in zip(boxes, visible)]
        _write_lines(self.folder / "groundtruth.txt", lines)
        tags = self.frame_tags(facts)
        for tag, flags in tags.items():
            _write_lines(self.folder / f"{tag}.tag", ["1" if f else "0" for f in flags])
        return {tag: bool(np.any(flags)) for tag, flags in tags.items()}

    @staticmethod
    def frame_tags(facts: dict[str, Any]) -> dict[str, np.ndarray]:
        """Per-frame tags from the generator's per-frame facts."""
        frames = facts["frames"]
        n = len(frames["dark"])
        every = lambda flag: np.full(n, bool(flag))  # noqa: E731 - sequence-level tags
        return {
            "aspect-change": frames["aspect_ratio_change"],
            "background-clutter": every(facts["clutter"]),
            "dark-scene": frames["dark"],
            "deformable": every(facts["deformation"]),
            "depth-change": every(facts["depth_change"]),
            "fast-motion": frames["fast_motion"],
            "full-occlusion": frames["total_occlusion"],
            "moving-view": frames["camera_motion"],
            "out-of-frame": np.zeros(n, dtype=bool),
            "out-of-plane": np.zeros(n, dtype=bool),
            "partial-occlusion": frames["partial_occlusion"],
            "reflective-target": np.zeros(n, dtype=bool),
            "similar-objects": frames["similar_appearance"],
            "size-change": frames["scale_variation"],
            "depth-camouflage": frames["aux_spell"],
        }

    @classmethod
    def finish_split(cls, root: Path, split: str, names: list[str]) -> None:
        _write_lines(cls.split_dir(root, split) / "list.txt", names)


#: Attributes written for the VisEvent layout (VisEvent publishes no per-sequence attribute
#: files; these follow the abbreviations of its paper, *unverified*): camera motion,
#: deformation, full / partial occlusion, low illumination, illumination variation (glare or
#: an abrupt light change), scale variation, aspect-ratio change, background clutter, fast
#: motion, motion blur, low resolution, similar interfering object, no motion (the target
#: stands still: the event stream's spell).
VISEVENT_ATTRIBUTES = (
    "CM", "DEF", "FOC", "POC", "LI", "IV", "SV", "ARC", "BC", "FM", "MB", "LR", "SIO", "NMO",
)  # fmt: skip


class VisEventWriter(LayoutWriter):
    """VisEvent's layout with the raw events in ``events.h5`` and the attribute names of
    :data:`VISEVENT_ATTRIBUTES` in mmtrack-kd's ``attributes.txt`` (one a line)."""

    layout = "visevent"
    dataset = "visevent"
    protocol = "visevent"
    aux = "event"
    split_folders = {"train": "train_subset", "test": "test_subset"}
    attribute_names = VISEVENT_ATTRIBUTES
    list_files = {"train": "trainlist.txt", "test": "testlist.txt"}

    def start(self) -> None:
        (self.folder / "vis_imgs").mkdir()
        (self.folder / "event_imgs").mkdir()
        self._events: list[tuple[np.ndarray, ...]] = []

    def write_frame(self, k: int, frame: Frame) -> None:
        _encode(self.folder / "vis_imgs" / f"frame{k:04d}.bmp", frame.rgb[:, :, ::-1])
        _encode(self.folder / "event_imgs" / f"frame{k:04d}.bmp", frame.aux[:, :, ::-1])
        assert frame.events is not None
        self._events.append(frame.events)

    def finish(self, boxes: np.ndarray, visible: np.ndarray, facts: dict[str, Any]) -> dict[str, bool]:
        lines = [_fmt_box_float(b, bool(v), "0,0,0,0") for b, v in zip(boxes, visible)]
        _write_lines(self.folder / "groundtruth.txt", lines)
        _write_lines(self.folder / "absent_label.txt", ["1" if v else "0" for v in visible])
        x, y, t, p = (np.concatenate(parts) for parts in zip(*self._events))
        n = self.plan.n_frames
        write_event_h5(
            self.folder / "events.h5",
            x,
            y,
            t,
            p,
            np.arange(n + 1, dtype=np.int64) * FRAME_INTERVAL_US,
            self.plan.width,
            self.plan.height,
            compression="lzf",
        )
        attributes = {
            "CM": facts["camera_motion"],
            "DEF": facts["deformation"],
            "FOC": facts["total_occlusion"],
            "POC": facts["partial_occlusion"],
            "LI": facts["dark"],
            "IV": facts["glare"] or facts["abrupt_illumination"],
            "SV": facts["scale_variation"],
            "ARC": facts["aspect_ratio_change"],
            "BC": facts["clutter"],
            "FM": facts["fast_motion"],
            "MB": facts["blur"],
            "LR": facts["low_resolution"],
            "SIO": facts["similar_appearance"],
            "NMO": facts["aux_spell"],
        }
        _write_lines(self.folder / "attributes.txt", [a for a, on in attributes.items() if on])
        return attributes

    @classmethod
    def finish_split(cls, root: Path, split: str, names: list[str]) -> None:
        _write_lines(root / cls.list_files[split], names)


WRITERS: dict[str, type[LayoutWriter]] = {
    writer.layout: writer for writer in (LasherWriter, DepthTrackWriter, VisEventWriter)
}
