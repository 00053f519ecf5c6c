"""The inference tracker (OSTrack's test-time procedure) and the ``mmtrack-kd track`` command.

- :class:`Tracker` -- ``initialize(frames, box)`` / ``track(frames) -> (box, confidence)``, built
  from a model and adapters or from a checkpoint file alone (:meth:`Tracker.from_checkpoint`),
  run as :class:`TrackerSettings` say (keep ratio, Hann window, precision, compilation);
- :func:`run_sequence` -- one-pass tracking of a :class:`~mmtrack_kd.data.sequence.Sequence` for
  the evaluation runner;
- :func:`track` -- the ``track`` command (videos or frame folders in, result files and an
  annotated video out).
"""

from mmtrack_kd.tracking.command import TrackRun, parse_box, track
from mmtrack_kd.tracking.tracker import (
    CLIP_MARGIN,
    SequenceResult,
    Tracker,
    TrackerSettings,
    adapters_from_checkpoint,
    frames_per_second,
    hann_window,
    run_sequence,
    windowed_peak,
)

__all__ = [
    "CLIP_MARGIN",
    "SequenceResult",
    "TrackRun",
    "Tracker",
    "TrackerSettings",
    "adapters_from_checkpoint",
    "frames_per_second",
    "hann_window",
    "parse_box",
    "run_sequence",
    "track",
    "windowed_peak",
]
