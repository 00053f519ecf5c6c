"""Models: ViT backbone, centre head, mutual prompter, teacher, student, profiling.

Checkpoints (our format and foreign weights) live one layer up, in :mod:`mmtrack_kd.checkpoints`.

Every model takes ``model(templates, searches, return_features=False, keep_ratio=None)`` with one
tensor per modality (``[rgb, aux]``) and returns a :class:`TrackerOutput`.
"""

from mmtrack_kd.models.base import TrackerOutput, TrackingModel
from mmtrack_kd.models.build import MODEL_KINDS, build_model
from mmtrack_kd.models.head import CenterHead, HeadOutput, boxes_at, peak_index
from mmtrack_kd.models.prompter import MutualPrompter
from mmtrack_kd.models.student import OneStreamStudent
from mmtrack_kd.models.teacher import TwoStreamTeacher
from mmtrack_kd.models.vit import BackboneSettings, ViTBackbone

__all__ = [
    "MODEL_KINDS",
    "BackboneSettings",
    "CenterHead",
    "HeadOutput",
    "MutualPrompter",
    "OneStreamStudent",
    "TrackerOutput",
    "TrackingModel",
    "TwoStreamTeacher",
    "ViTBackbone",
    "boxes_at",
    "build_model",
    "peak_index",
]
