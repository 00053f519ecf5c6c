"""Built-in dataset plugins of mmtrack-kd.

One module a benchmark, each registered through the ``mmtrack_kd`` entry-point group exactly as a
third-party plugin would be (the engine never imports this package by name):

- :mod:`plugins.lasher` -- LasHeR (RGB-T), train/test.
- :mod:`plugins.rgbt234` -- RGBT234 (RGB-T) with per-modality ground truth.
- :mod:`plugins.rgbt210` -- RGBT210 (RGB-T), one ground truth.
- :mod:`plugins.gtot` -- GTOT (RGB-T), corner-format per-modality ground truth.
- :mod:`plugins.vtuav` -- VTUAV (RGB-T), short-term and long-term, annotated every 10th frame.
- :mod:`plugins.depthtrack` -- DepthTrack (RGB-D, VOT layout).
- :mod:`plugins.visevent` -- VisEvent (RGB-E), event frames and optional converted raw events.
- :mod:`plugins.folder` -- a plain layout for a user's own two-stream data.

:mod:`plugins.common` holds what they share: text parsing with errors that name dataset,
sequence, file and line; frame-folder scanning and pairing; and :class:`~plugins.common.
BenchmarkDataset`, the base class that finds split folders and sequences and offers
:meth:`~plugins.common.BenchmarkDataset.load_groundtruth` (ground truth without frames, for
scoring published results). ``plugins/splits/`` holds the official split lists and attribute
tables shipped as package data (see its README for where each came from).
"""
