"""Data types and the plugin interfaces for modalities and datasets."""

from mmtrack_kd.data.dataset import DatasetOptions, DatasetPlugin, root_variable
from mmtrack_kd.data.modality import AdapterOptions, ModalityAdapter
from mmtrack_kd.data.sequence import Sequence

__all__ = [
    "AdapterOptions",
    "DatasetOptions",
    "DatasetPlugin",
    "ModalityAdapter",
    "Sequence",
    "root_variable",
]
