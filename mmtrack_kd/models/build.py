"""Build a model from its kind and its plain-dict configuration (what a checkpoint carries)."""

from __future__ import annotations

from typing import Any, Mapping

from mmtrack_kd.models.base import TrackingModel
from mmtrack_kd.models.student import OneStreamStudent
from mmtrack_kd.models.teacher import TwoStreamTeacher

MODEL_KINDS: dict[str, type[TrackingModel]] = {
    TwoStreamTeacher.kind: TwoStreamTeacher,
    OneStreamStudent.kind: OneStreamStudent,
}


def build_model(kind: str, config: Mapping[str, Any]) -> TrackingModel:
    """``build_model("teacher" | "student", config)``; ``config`` is a model's ``.config``.

    The single-modality baseline (OSTrack) is ``build_model("student", {"num_modalities": 1, ...})``.
    Keys left out take the constructor defaults (ViT-B/16, template 128, search 256).
    """
    try:
        cls = MODEL_KINDS[kind]
    except KeyError:
        raise ValueError(f"unknown model kind {kind!r}; known: {', '.join(sorted(MODEL_KINDS))}") from None
    return cls(**dict(config))
