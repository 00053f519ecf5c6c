"""Options of the ``synthetic`` dataset plugin: where and what to generate.

Two groups: :class:`SyntheticOptions` (a recipe's dataset entry: layout, root, split, sizes,
seed) and :class:`ContentOptions` (the ``content`` sub-section: how hard the scenes are). Every
option that changes the bytes on disk is part of the *fingerprint* stored in the generated root;
a root generated with another fingerprint is refused (or regenerated, ``on_mismatch``).
"""

from __future__ import annotations

import hashlib
import json
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from mmtrack_kd.data import DatasetOptions

Layout = Literal["lasher", "depthtrack", "visevent"]

#: The auxiliary stream each layout carries, as the modality adapters name it.
AUX_OF_LAYOUT: dict[str, str] = {"lasher": "thermal", "depthtrack": "depth", "visevent": "event"}

#: Bumped whenever the generator's output for the same options changes, so an old root is
#: recognised as stale instead of silently mixing two generator versions.
GENERATOR_VERSION = 1


class ContentOptions(BaseModel):
    """How the scenes look and how hard they are (the ``content`` sub-section)."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    distractors: tuple[int, int] = Field(
        (2, 4),
        description="Least and most look-alike distractors per sequence (same colours with "
        "another pattern, the same pattern in other colours, or neither). They are hot, near "
        "and moving like the target, so the auxiliary stream alone is ambiguous.",
    )
    clutter: float = Field(
        1.0, ge=0, description="Density of background clutter shapes (0: a plain smooth background)."
    )
    target_size: tuple[float, float] = Field(
        (0.08, 0.2),
        description="Range of the target's sqrt(w * h) as a fraction of min(width, height).",
    )
    speed: tuple[float, float] = Field(
        (0.004, 0.018),
        description="Range of the usual target speed, in min(width, height) per frame.",
    )
    spell_frames: tuple[int, int] = Field(
        (8, 20),
        description="Least and most frames of one modality spell (an RGB spell: darkness, "
        "glare or blur hide the target in RGB; an auxiliary spell: thermal crossover, target at "
        "the background's depth, or a still target without events).",
    )
    spells_per_100: float = Field(
        1.5,
        ge=0,
        description="Mean number of spells per 100 frames for each of the two streams. From 1 "
        "on, a sequence has at least one spell of each stream (so its dominant stream switches) "
        "except for 15 % of sequences that keep a stream clean, for attribute-based tables.",
    )
    occlusion: float = Field(
        0.35, ge=0, le=1, description="Share of sequences in which an occluder crosses the target."
    )
    fast_motion: float = Field(
        0.3, ge=0, le=1, description="Share of sequences with a burst of fast target motion."
    )
    camera_motion: float = Field(
        0.25, ge=0, le=1, description="Share of sequences whose camera pans (the background moves)."
    )
    target_texture: Literal["pattern", "flat"] = Field(
        "pattern",
        description="'pattern': a two-colour pattern that tells the target from its look-alikes; "
        "'flat': one flat colour (pure magenta, for tests that locate the drawn target).",
    )
    noise: float = Field(1.0, ge=0, description="Sensor noise multiplier (0: noise-free frames).")
    jpeg_quality: int = Field(90, ge=10, le=100, description="Quality of JPEG frames.")
    event_threshold: float = Field(
        0.25,
        gt=0,
        description="Contrast threshold of the simulated event camera, in log intensity.",
    )

    @model_validator(mode="after")
    def _ranges_are_ordered(self) -> "ContentOptions":
        for key in ("distractors", "target_size", "speed", "spell_frames"):
            low, high = getattr(self, key)
            if low > high or low < 0:
                raise ValueError(f"{key} must be [low, high] with 0 <= low <= high, got {[low, high]}")
        if self.target_size[1] > 0.45:
            raise ValueError("target_size above 0.45 of the frame leaves no room to move")
        if self.spell_frames[0] < 1:
            raise ValueError("spell_frames must be at least 1 frame")
        return self


class SyntheticOptions(DatasetOptions):
    """Options of the ``synthetic`` dataset plugin (a recipe's dataset entry)."""

    layout: Layout = Field(
        "lasher",
        description="On-disk layout, which also picks the auxiliary stream: 'lasher' (RGB-T, "
        "thermal), 'depthtrack' (RGB-D, depth), 'visevent' (RGB-E, events).",
    )
    n_train: int = Field(100, ge=0, description="Sequences in the train split.")
    n_test: int = Field(20, ge=0, description="Sequences in the test split.")
    frames: int = Field(100, ge=8, description="Frames per sequence.")
    width: int = Field(320, ge=64, description="Frame width in pixels.")
    height: int = Field(240, ge=64, description="Frame height in pixels.")
    seed: int = Field(0, ge=0, description="Seed: the same seed and options give the same bytes.")
    content: ContentOptions = Field(default_factory=ContentOptions)
    generate: bool = Field(
        True,
        description="Generate the data when the root is missing or empty (otherwise a missing "
        "root is an error).",
    )
    on_mismatch: Literal["error", "regenerate"] = Field(
        "error",
        description="When the root was generated with other options: 'error' stops with a "
        "message naming the differences; 'regenerate' deletes that generated data and "
        "writes it again.",
    )
    workers: int = Field(
        2, ge=1, description="Processes that generate sequences in parallel (same bytes for any number)."
    )


#: Options that decide the bytes written; the rest (root, split, workers, ...) do not.
FINGERPRINT_FIELDS = ("layout", "n_train", "n_test", "frames", "width", "height", "seed", "content")


def generation_options(options: SyntheticOptions) -> dict[str, Any]:
    """The options that decide the generated bytes, as plain JSON data."""
    data = options.model_dump(mode="json", include=set(FINGERPRINT_FIELDS))
    data["generator_version"] = GENERATOR_VERSION
    return data


def fingerprint(generation: dict[str, Any]) -> str:
    """A short hash of :func:`generation_options` (stored in the root's manifest)."""
    text = json.dumps(generation, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]
