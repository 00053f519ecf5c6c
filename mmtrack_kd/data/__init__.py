"""Data types, the plugin interfaces for modalities and datasets, and what plugins share.

This package is the public API of plugins: a modality or dataset plugin imports what it needs
from here (and ``mmtrack_kd.hookimpl``), never from the engine's other packages or from another
plugin package.

- Interfaces: :class:`ModalityAdapter` (with :class:`AdapterOptions`; normalised with ImageNet's
  :data:`IMAGENET_MEAN` and :data:`IMAGENET_STD` unless it says otherwise) and
  :class:`DatasetPlugin` (with :class:`DatasetOptions`), and the :class:`Sequence` a dataset
  plugin returns.
- Readers and writers: :func:`read_image`, :func:`read_rgb`, :func:`unit_float` (an 8-bit frame
  in ``[0, 1]``), :func:`polygon_to_xywh`, and the HDF5 event file (:class:`EventStore`,
  :func:`write_event_h5`).
- Other plugins by name: :func:`installed_plugins` (the plugin registry).
- Errors (each ends a command with one message): :class:`DataError` (unreadable data),
  :class:`RecipeError` with :func:`validation_problems` (options that do not validate),
  :class:`PluginError`, :class:`NotAvailableError` (a missing optional package), and their
  base :class:`MmtrackError`.
"""

from mmtrack_kd.data.boxes import polygon_to_xywh
from mmtrack_kd.data.dataset import DatasetOptions, DatasetPlugin, root_variable
from mmtrack_kd.data.event_store import EventStore, write_event_h5
from mmtrack_kd.data.io import read_image, read_rgb, unit_float
from mmtrack_kd.data.lookup import installed_plugins
from mmtrack_kd.data.modality import (
    IMAGE_SUFFIXES,
    IMAGENET_MEAN,
    IMAGENET_STD,
    AdapterOptions,
    ModalityAdapter,
)
from mmtrack_kd.data.sequence import Sequence
from mmtrack_kd.errors import (
    DataError,
    MmtrackError,
    NotAvailableError,
    PluginError,
    RecipeError,
    validation_problems,
)

__all__ = [
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "IMAGE_SUFFIXES",
    "AdapterOptions",
    "DataError",
    "DatasetOptions",
    "DatasetPlugin",
    "EventStore",
    "MmtrackError",
    "ModalityAdapter",
    "NotAvailableError",
    "PluginError",
    "RecipeError",
    "Sequence",
    "installed_plugins",
    "polygon_to_xywh",
    "read_image",
    "read_rgb",
    "root_variable",
    "unit_float",
    "validation_problems",
    "write_event_h5",
]
