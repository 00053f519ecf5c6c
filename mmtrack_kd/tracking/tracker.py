"""The inference tracker: OSTrack's test-time procedure for any of our models.

Per sequence (OSTrack's ``lib/test/tracker/ostrack.py``, without online update):

1. ``initialize``: crop the template once around the initial box (side ``sqrt(w * h)`` times the
   template factor, 2 by default, resized to the template size), normalise every modality with
   its adapter's statistics and hand the crops to ``model.set_template``.
2. ``track`` on each later frame: crop the search region around the previous box (factor 4,
   resized to the search size), run ``model.track``, multiply the score map by a Hann window,
   read the box at the windowed peak, map it back to the image and clip it to the image with a
   10-pixel margin (OSTrack's ``clip_box(..., margin=10)``). The clipped box is the next state.

Confidence is the peak value of the windowed score map (what ViPT returns as ``best_score`` and
what the long-term RGB-D protocol thresholds); it lies in ``[0, 1]``.

The Hann window is OSTrack's ``hann2d(..., centered=True)``: per axis
``0.5 * (1 - cos(2 * pi * k / (n + 1)))`` for ``k = 1..n``, which is
``torch.hann_window(n + 2, periodic=False)[1:-1]`` -- the symmetric window of ``n + 2`` points
without its two zero end points, so that border cells are damped but never ruled out.

Geometry goes through :mod:`mmtrack_kd.data.crop` (the crops of training), so the box predicted
in a crop maps back by the exact inverse of the mapping that made the crop; OSTrack's own
``map_box_back`` ignores the rounding of the crop corner (a sub-pixel difference, see that module).
"""

from __future__ import annotations

import math
import os
import time
from dataclasses import dataclass
from typing import Any, Callable, Literal, NamedTuple, Sequence as SequenceOf, get_args

import numpy as np
import torch
from torch import Tensor, nn

from mmtrack_kd.checkpoints import ModalityEntry, RunCheckpoint, load_model
from mmtrack_kd.data.crop import CropSettings, clip_box, crop_frames, crop_window, map_box_back
from mmtrack_kd.data.modality import ModalityAdapter
from mmtrack_kd.data.sequence import Sequence
from mmtrack_kd.errors import CheckpointError, DataError, MmtrackError, PluginError
from mmtrack_kd.models.head import boxes_at
from mmtrack_kd.plugins import default_registry
from mmtrack_kd.runtime.device import choose_device
from mmtrack_kd.runtime.precision import autocast, autocast_dtype, quantize_int8

#: OSTrack's ``clip_box`` margin at test time: a box keeps at least this many pixels inside.
CLIP_MARGIN = 10.0

Precision = Literal["fp32", "bf16", "int8"]
PRECISIONS: tuple[str, ...] = get_args(Precision)


@dataclass(frozen=True)
class TrackerSettings:
    """How a tracker runs its model at inference (not what the model is). One object goes from
    the command line through the evaluation workers to each :class:`Tracker`, and names the
    results folder of a run with non-default settings (:meth:`variant_name`).

    Args:
        keep_ratio: candidate-elimination keep ratio for ``model.track`` (None: the model's
            configured one; models without elimination ignore it).
        hann_window: weight the score map with a Hann window before taking its peak (OSTrack);
            ``evaluate.hann_window: false`` is the ablation without it.
        precision: ``"fp32"``, or ``"bf16"`` to run the model under bfloat16 autocast (faster
            on CPUs with AVX-512 BF16 / AMX and on GPUs; the peak and the box are still decoded
            in float32); ``"int8"`` to run a copy of the model whose Linear layers are dynamically
            quantized to int8 (CPU only). ``mmtrack-kd benchmark --what agreement`` shows how
            far their boxes move from float32's on a trained model.
        compile: a ``torch.compile`` backend, by name (``"inductor"``, what ``--compile`` asks
            for) or as a callable, to compile the per-frame forward with; None runs it eagerly.
            The first tracked frame pays the compilation (tens of seconds for ViT-B on a CPU).

    Raises:
        MmtrackError: an unknown precision or a keep ratio outside (0, 1].
    """

    keep_ratio: float | None = None
    hann_window: bool = True
    precision: Precision = "fp32"
    compile: str | Callable[..., Any] | None = None

    def __post_init__(self) -> None:
        if self.precision not in PRECISIONS:
            raise MmtrackError(f"precision {self.precision!r}: one of {', '.join(PRECISIONS)}")
        if self.keep_ratio is not None and not 0 < self.keep_ratio <= 1:
            raise MmtrackError(f"keep ratio {self.keep_ratio}: must be in (0, 1]")

    def variant_name(self, name: str) -> str:
        """``name`` with a suffix per non-default setting that changes boxes, so a resumed
        evaluation never mixes boxes tracked with other settings. Compilation changes speed,
        not boxes (within float rounding): it keeps the name."""
        return (name + (f"-keep{self.keep_ratio:g}" if self.keep_ratio is not None else "")
                + ("" if self.hann_window else "-nohann")
                + ("" if self.precision == "fp32" else f"-{self.precision}"))

# -- the Hann window and the windowed decode --------------------------------------------------


def hann_window(height: int, width: int | None = None) -> Tensor:
    """OSTrack's centred 2-D Hann window, ``(height, width)`` float32 (``width`` = ``height``).

    The outer product of ``torch.hann_window(n + 2, periodic=False)[1:-1]`` per axis, which is
    OSTrack's ``hann1d(n, centered=True)``: largest at the centre, small but non-zero at the
    border. (``torch.hann_window(n, periodic=False)`` alone would be zero on the border and
    forbid those cells outright.)
    """
    width = height if width is None else width

    def one(n: int) -> Tensor:
        return torch.hann_window(n + 2, periodic=False, dtype=torch.float64)[1:-1]

    return torch.outer(one(height), one(width)).float()


def windowed_peak(
    score_map: Tensor, size_map: Tensor, offset_map: Tensor, window: Tensor
) -> tuple[Tensor, Tensor]:
    """Boxes at the peak of the windowed score map, and that peak's value.

    Args:
        score_map: ``(B, 1, H, W)`` centre scores in ``[0, 1]``.
        size_map, offset_map: ``(B, 2, H, W)`` (see :func:`mmtrack_kd.models.head.boxes_at`).
        window: ``(H, W)`` weights (:func:`hann_window`).

    Returns:
        ``boxes`` ``(B, 4)`` normalised ``cx, cy, w, h`` of the search crop, read at the arg-max
        of ``score_map * window``; ``scores`` ``(B,)`` the windowed score at that cell.
    """
    response = (score_map * window).flatten(1)
    index = response.argmax(dim=1)
    scores = response.gather(1, index[:, None]).squeeze(1)
    return boxes_at(index, size_map, offset_map), scores


# -- the tracker ------------------------------------------------------------------------------


class Tracker:
    """Single-object tracker around a teacher, a student or a single-modality model.

    Args:
        model: a tracking model (``set_template``, ``track``, ``num_modalities``, ``config``).
        adapters: one modality adapter per model input, RGB first (their ``mean`` / ``std``
            normalise the crops, exactly as in training).
        crop: crop geometry; None takes the sizes from ``model.config`` and factors 2 and 4.
        device: where the model runs (``"cpu"``, ``"cuda"``, ``"cuda:1"``, ...).
        settings: keep ratio, Hann window, precision and compilation
            (:class:`TrackerSettings`; the defaults: the model's keep ratio, the window, fp32,
            eager). A forward that fails under compilation raises
            :class:`~mmtrack_kd.errors.MmtrackError` saying so.

    Frames passed to :meth:`initialize` and :meth:`track` are what the adapters' ``read``
    returns: one ``H x W x C_m`` float32 array per modality, all of the same ``H x W``.
    """

    def __init__(
        self,
        model: nn.Module,
        adapters: SequenceOf[ModalityAdapter],
        crop: CropSettings | None = None,
        device: str | torch.device = "cpu",
        settings: TrackerSettings = TrackerSettings(),
    ) -> None:
        self.settings = settings
        self.adapters = list(adapters)
        self.num_modalities = int(model.num_modalities)
        if len(self.adapters) != self.num_modalities:
            raise ValueError(
                f"{len(self.adapters)} modality adapters ({', '.join(a.name for a in self.adapters)}) "
                f"for a model of {self.num_modalities} modalities"
            )
        self.device = choose_device(device, "device")
        self.amp_dtype = autocast_dtype(settings.precision, self.device)
        self.model = model.to(self.device).eval()
        if settings.precision == "int8":
            if self.device.type != "cpu":
                raise MmtrackError(f"int8 tracking runs on the CPU only, not on {self.device}")
            self.model = quantize_int8(self.model)
        compile = settings.compile
        # Only the per-frame forward is compiled: the template is set once per sequence. Shapes
        # never change within a tracker, so a static graph (dynamic=False) is compiled once; the
        # template tensors are graph inputs, so a new sequence does not recompile.
        self._model_track = (self.model.track if compile is None
                             else torch.compile(self.model.track, backend=compile, dynamic=False))
        self.crop = crop if crop is not None else CropSettings.for_model(model)
        # (C, 1, 1) statistics per modality on the device: one broadcast op normalises a crop.
        self._means = [self._stat(a.mean, a) for a in self.adapters]
        self._stds = [self._stat(a.std, a) for a in self.adapters]
        # Hann window of the score map's size, made on the first frame (the map is
        # search_size / patch_size cells a side).
        self.window: Tensor | None = None
        self.state: np.ndarray | None = None

    def _stat(self, values: SequenceOf[float], adapter: ModalityAdapter) -> Tensor:
        stat = torch.as_tensor(np.asarray(values, dtype=np.float32), device=self.device)
        if stat.numel() != adapter.channels:
            raise ValueError(
                f"adapter {adapter.name} gives {stat.numel()} statistics for {adapter.channels} channels"
            )
        return stat.view(-1, 1, 1)

    # -- construction from a checkpoint --------------------------------------------------------

    @classmethod
    def from_checkpoint(
        cls,
        path: str | os.PathLike,
        device: str | torch.device = "cpu",
        registry: Any = None,
        settings: TrackerSettings = TrackerSettings(),
    ) -> "Tracker":
        """A tracker from one mmtrack-kd checkpoint file: model, adapters and crop geometry.

        The checkpoint's ``modalities`` entries (RGB first) name the adapters, built from
        ``registry`` (the installed plugins by default) with their saved options; ``crop`` gives
        sizes and factors. Problems raise
        :class:`~mmtrack_kd.errors.CheckpointError` naming the file.
        """
        model, saved = load_model(path)
        registry = registry if registry is not None else default_registry()
        adapters = adapters_from_checkpoint(saved, model.num_modalities, registry, str(path))
        return cls(model, adapters, saved.crop, device, settings)

    # -- tracking -----------------------------------------------------------------------------

    def _check_frames(self, frames: SequenceOf[np.ndarray]) -> tuple[int, int]:
        if len(frames) != self.num_modalities:
            raise ValueError(f"{len(frames)} frames for {self.num_modalities} modalities ({self.modalities})")
        height, width = frames[0].shape[:2]
        for adapter, frame in zip(self.adapters, frames):
            if frame.shape[:2] != (height, width):
                raise DataError(
                    f"{adapter.name} frame is {frame.shape[1]}x{frame.shape[0]}, the rgb frame "
                    f"{width}x{height}; modalities must be aligned"
                )
        return height, width

    def _tensors(self, crops: SequenceOf[np.ndarray]) -> list[Tensor]:
        """``S x S x C`` crops -> normalised ``(1, C, S, S)`` tensors on the device."""
        tensors = []
        for image, mean, std in zip(crops, self._means, self._stds):
            if image.ndim == 2:
                image = image[:, :, None]
            tensor = torch.from_numpy(np.ascontiguousarray(image, dtype=np.float32)).to(self.device)
            tensors.append(((tensor.permute(2, 0, 1) - mean) / std).unsqueeze(0))
        return tensors

    @property
    def modalities(self) -> str:
        """``"rgb+thermal"``: the adapters' names, for messages."""
        return "+".join(adapter.name for adapter in self.adapters)

    def initialize(self, frames: SequenceOf[np.ndarray], box_xywh: SequenceOf[float]) -> None:
        """Crop the template around ``box_xywh`` (image pixels) in every modality and set it.

        Raises ``ValueError`` for a box that is not finite or has no area.
        """
        self._check_frames(frames)
        box = np.asarray(box_xywh, dtype=np.float64).reshape(4)
        window = crop_window(box, self.crop.template_factor, self.crop.template_size)
        with torch.inference_mode(), autocast(self.device, self.amp_dtype):
            self.model.set_template(self._tensors(crop_frames(frames, window)))
        self.state = box

    def _forward(self, searches: list[Tensor]) -> Any:
        try:
            return self._model_track(searches, keep_ratio=self.settings.keep_ratio)
        except Exception as error:  # torch._dynamo / inductor errors have no common public base
            if self.settings.compile is None:
                raise
            cause = error  # dynamo wraps the backend's own error: name that one
            while (inner := getattr(cause, "inner_exception", None) or cause.__cause__) is not None:
                cause = inner
            first = (str(cause).strip().splitlines() or [""])[0]
            backend = getattr(self.settings.compile, "__name__", self.settings.compile)
            raise MmtrackError(
                f"the tracker's forward failed under torch.compile (backend {backend!r}): "
                f"{type(cause).__name__}: {first}; run without --compile"
            ) from error

    def track(self, frames: SequenceOf[np.ndarray]) -> tuple[np.ndarray, float]:
        """Locate the target in the next frame.

        Returns:
            ``box`` ``(4,)`` float64 ``x, y, w, h`` in image pixels (clipped to the image), and
            ``confidence`` in ``[0, 1]``, the peak of the Hann-windowed score map.
        """
        if self.state is None:
            raise RuntimeError("Tracker.track() before initialize()")
        height, width = self._check_frames(frames)
        window = crop_window(self.state, self.crop.search_factor, self.crop.search_size)
        with torch.inference_mode():
            with autocast(self.device, self.amp_dtype):
                out = self._forward(self._tensors(crop_frames(frames, window)))
            if self.window is None or self.window.shape != out.score_map.shape[-2:]:
                shape = out.score_map.shape[-2:]
                # Without the Hann window (an ablation) the raw peak wins: a window of ones
                # keeps one code path.
                self.window = (hann_window(*shape) if self.settings.hann_window
                               else torch.ones(*shape)).to(self.device)
            boxes, scores = windowed_peak(out.score_map.float(), out.size_map.float(),
                                          out.offset_map.float(), self.window)
            cx, cy, w, h = boxes[0].double().cpu().numpy()
            confidence = float(scores[0])
        in_crop = np.array([cx - 0.5 * w, cy - 0.5 * h, w, h])
        box = map_box_back(in_crop, window, normalised=True)
        if not (np.all(np.isfinite(box)) and math.isfinite(confidence)):
            # clipping would turn NaN into a plausible box: a made-up result, not an error
            raise MmtrackError(
                f"the model produced a non-finite box ({box.tolist()}, confidence {confidence}): "
                "its weights or its input frames hold NaN or inf"
            )
        self.state = clip_box(box, height, width, margin=CLIP_MARGIN)
        return self.state.copy(), confidence


def adapters_from_checkpoint(
    checkpoint: RunCheckpoint, num_modalities: int, registry: Any, source: str
) -> list[ModalityAdapter]:
    """The modality adapters a checkpoint was trained with (its ``modalities`` entry), RGB first.

    A checkpoint without the entry (written for a bare model by ``save_model``) is accepted for
    single-modality models (the ``rgb`` adapter with default options) and refused otherwise.
    """
    entries = checkpoint.modalities
    if entries is None:
        if num_modalities == 1:
            entries = [ModalityEntry("rgb")]
        else:
            raise CheckpointError(
                f"checkpoint {source}: no 'modalities' entry, so the auxiliary modality (and its "
                "options) is unknown; use a checkpoint written by `mmtrack-kd train`"
            )
    if len(entries) != num_modalities:
        names = ", ".join(entry.name for entry in entries)
        raise CheckpointError(
            f"checkpoint {source}: {len(entries)} modalities ({names}) for a model of {num_modalities}"
        )
    adapters = []
    for index, entry in enumerate(entries):
        name = entry.name
        try:
            cls = registry.modality(name)
        except PluginError as error:
            raise CheckpointError(f"checkpoint {source}: modality {name!r} needs a plugin: {error}") from None
        try:
            adapters.append(cls(cls.Options(**entry.options)))
        except Exception as error:  # pydantic's ValidationError, or an options model's own check
            raise CheckpointError(
                f"checkpoint {source}: modalities.{index} ({name}) options do not validate: {error}"
            ) from None
    return adapters


# -- a whole sequence -------------------------------------------------------------------------


class SequenceResult(NamedTuple):
    """What :func:`run_sequence` returns; unpacks as ``boxes, confidences, times``.

    Attributes:
        boxes: ``(N, 4)`` float64 ``x, y, w, h`` image pixels; row 0 is the initial box.
        confidences: ``(N,)`` float64 in ``[0, 1]``; 1 on frame 0 (VOT long-term layout).
        times: ``(N,)`` seconds the tracker spent on each frame (initialisation on frame 0),
            excluding reading the frames from disk.
    """

    boxes: np.ndarray
    confidences: np.ndarray
    times: np.ndarray


def initial_box(sequence: Sequence) -> np.ndarray:
    """The first-frame ground truth of ``sequence``; DataError when it is missing or empty."""
    box = np.asarray(sequence.boxes[0], dtype=np.float64)
    if not (np.all(np.isfinite(box)) and box[2] > 0 and box[3] > 0):
        raise DataError(
            f"{sequence.where}: the first frame has no usable ground-truth box ({box.tolist()}); "
            "a tracker needs one to start"
        )
    return box


def _check_initial_box(box: np.ndarray, frame: np.ndarray, sequence: Sequence) -> None:
    """A first box that does not overlap the first frame cannot start a tracker: its template
    would be padding only, and every later box and score would be made up."""
    height, width = frame.shape[:2]
    x, y, w, h = box
    if x >= width or y >= height or x + w <= 0 or y + h <= 0:
        raise DataError(
            f"{sequence.where}: the first ground-truth box {box.tolist()} lies outside the first "
            f"frame ({width}x{height}); check the ground-truth file and its box format"
        )


def run_sequence(
    tracker: Tracker, sequence: Sequence, adapters: SequenceOf[ModalityAdapter] | None = None
) -> SequenceResult:
    """Track ``sequence`` from its first ground-truth box (OTB/VOT one-pass evaluation).

    Args:
        tracker: the tracker (re-initialised here).
        sequence: frames of every modality the tracker's adapters read.
        adapters: readers of the frames, RGB first; the tracker's own by default.

    Returns:
        ``SequenceResult(boxes (N, 4), confidences (N,), times (N,))``.
    """
    adapters = list(adapters) if adapters is not None else tracker.adapters
    n = sequence.n_frames
    boxes = np.zeros((n, 4), dtype=np.float64)
    confidences = np.ones(n, dtype=np.float64)
    times = np.zeros(n, dtype=np.float64)
    if n == 0:
        return SequenceResult(boxes, confidences, times)
    boxes[0] = initial_box(sequence)
    for index in range(n):
        frames = [adapter.read(sequence, index) for adapter in adapters]
        start = time.perf_counter()
        try:
            if index == 0:
                _check_initial_box(boxes[0], frames[0], sequence)
                tracker.initialize(frames, boxes[0])
            else:
                boxes[index], confidences[index] = tracker.track(frames)
        except MmtrackError as error:
            if str(error).startswith(sequence.where):
                raise
            kind = DataError if isinstance(error, DataError) else MmtrackError
            raise kind(f"{sequence.where}, frame {index + 1}: {error}") from None
        times[index] = time.perf_counter() - start
    if not np.all(np.isfinite(boxes)):  # a model producing NaN is a bug, not a result
        raise RuntimeError(f"{sequence.where}: the tracker produced non-finite boxes")
    return SequenceResult(boxes, confidences, times)


def frames_per_second(times: np.ndarray) -> float:
    """Frames per second over the tracked frames (initialisation left out, as OSTrack does)."""
    tracked = np.asarray(times[1:], dtype=np.float64)
    total = float(tracked.sum())
    return len(tracked) / total if total > 0 else math.nan
