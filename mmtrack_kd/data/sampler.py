"""Training pair sampling: which dataset, sequence, template frame and search frame.

OSTrack's ``TrackingSampler`` in its default ``causal`` mode: a dataset is chosen by weight, a
sequence uniformly within it, a template frame uniformly among the visible ones, and a search
frame uniformly among the visible frames *after* it, at most ``max_gap`` frames later. The
``interval`` mode (pytracking's original) lets the search frame lie on either side of the
template, at most ``max_gap`` frames away.

Differences from OSTrack's code, each documented where it happens:

* OSTrack draws the search frame from ``range(t + 1, t + max_gap)``, so its largest gap is
  ``max_gap - 1``; here the gap is ``1 .. max_gap`` ("at most max_gap frames later").
* OSTrack re-draws a template that has no visible frame within reach and widens the gap by five
  frames per failure, without bound. Here a template is drawn only among frames that have a
  visible partner within ``max_gap`` (the distribution of OSTrack's first successful attempt), so
  a draw never fails and never loops; sequences without any such pair are left out at
  construction, with one log line per dataset.
* A frame counts as visible when the sequence marks it visible *and* its box is finite with
  positive width and height (real annotations have zero-size boxes on "visible" frames).
* ``max_gap == 0`` pairs a frame with itself (a still-image pair).

Every random choice comes from the ``numpy.random.Generator`` passed to :meth:`PairSampler.draw`,
so a draw is a pure function of the generator's state.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Literal

import numpy as np

from mmtrack_kd.data.sequence import Sequence
from mmtrack_kd.errors import DataError

log = logging.getLogger(__name__)

FrameSampleMode = Literal["causal", "interval"]


@dataclass(frozen=True)
class PairDraw:
    """One drawn training pair.

    Attributes:
        source: index of the dataset in the sampler's list.
        sequence: the sequence both frames come from.
        template: template frame index.
        search: search frame index.
    """

    source: int
    sequence: Sequence
    template: int
    search: int

    @property
    def gap(self) -> int:
        """``search - template`` in frames (negative in ``interval`` mode when the search frame
        comes first)."""
        return self.search - self.template


def usable_frames(sequence: Sequence) -> np.ndarray:
    """``(N,)`` bool: visible with a finite box of positive width and height."""
    boxes = np.asarray(sequence.boxes, dtype=np.float64)
    finite = np.isfinite(boxes).all(axis=1)
    with np.errstate(invalid="ignore"):
        positive = (boxes[:, 2] > 0) & (boxes[:, 3] > 0)
    return np.asarray(sequence.visible, dtype=bool) & finite & positive


def _visible_in_window(usable: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """Number of usable frames in ``[lo, hi)`` for arrays of bounds (clipped to the sequence)."""
    n = len(usable)
    prefix = np.concatenate([[0], np.cumsum(usable, dtype=np.int64)])
    return prefix[np.clip(hi, 0, n)] - prefix[np.clip(lo, 0, n)]


def template_candidates(usable: np.ndarray, max_gap: int, mode: FrameSampleMode) -> np.ndarray:
    """Frames that can serve as template: usable, with a usable search partner in reach.

    ``causal``: a usable frame in ``(t, t + max_gap]``; ``interval``: in ``[t - max_gap,
    t + max_gap]`` other than ``t``; ``max_gap == 0``: the frame itself.
    """
    frames = np.flatnonzero(usable)
    if max_gap == 0:
        return frames
    if mode == "causal":
        partners = _visible_in_window(usable, frames + 1, frames + max_gap + 1)
    elif mode == "interval":
        partners = _visible_in_window(usable, frames - max_gap, frames + max_gap + 1) - 1
    else:
        raise ValueError(f"unknown frame sample mode {mode!r}; use 'causal' or 'interval'")
    return frames[partners > 0]


@dataclass(frozen=True)
class _Source:
    """One dataset's usable sequences, precomputed once."""

    name: str
    sequences: tuple[Sequence, ...]
    usable: tuple[np.ndarray, ...]
    templates: tuple[np.ndarray, ...]


class PairSampler:
    """Draws (sequence, template frame, search frame) from weighted datasets.

    Args:
        datasets: ``(name, sequences, weight)`` per dataset; weights need not sum to one.
        max_gap: largest frame distance between template and search.
        mode: ``"causal"`` (OSTrack's default: search after template) or ``"interval"``.
    """

    def __init__(
        self,
        datasets: list[tuple[str, list[Sequence], float]],
        max_gap: int,
        mode: FrameSampleMode = "causal",
    ) -> None:
        if not datasets:
            raise DataError("no training datasets: add at least one entry under data.train")
        if max_gap < 0:
            raise ValueError(f"max_gap must be >= 0, got {max_gap}")
        self.max_gap = int(max_gap)
        self.mode = mode
        sources = []
        weights = []
        for name, sequences, weight in datasets:
            if not weight > 0:
                raise ValueError(f"dataset {name}: weight must be > 0, got {weight}")
            sources.append(self._prepare(name, list(sequences)))
            weights.append(float(weight))
        self.sources: tuple[_Source, ...] = tuple(sources)
        total = sum(weights)
        self.probabilities = np.array([w / total for w in weights], dtype=np.float64)
        self._cumulative = np.cumsum(self.probabilities)
        self._cumulative[-1] = 1.0

    def _prepare(self, name: str, sequences: list[Sequence]) -> _Source:
        kept, usable, templates = [], [], []
        for sequence in sequences:
            mask = usable_frames(sequence)
            candidates = template_candidates(mask, self.max_gap, self.mode)
            if len(candidates):
                kept.append(sequence)
                usable.append(mask)
                templates.append(candidates)
        reach = (
            "the same frame" if self.max_gap == 0
            else f"{self.max_gap} frames" + (" later" if self.mode == "causal" else "")
        )
        if not kept:
            raise DataError(
                f"dataset {name}: none of its {len(sequences)} sequences has a visible template "
                f"frame with a visible search frame within {reach}"
            )
        if len(kept) < len(sequences):
            log.warning(
                "dataset %s: %d of %d sequences have no visible pair within %s and are not used",
                name, len(sequences) - len(kept), len(sequences), reach,
            )
        return _Source(name, tuple(kept), tuple(usable), tuple(templates))

    @property
    def names(self) -> tuple[str, ...]:
        """Dataset names, in the order given."""
        return tuple(source.name for source in self.sources)

    def __len__(self) -> int:
        """Number of usable sequences over all datasets."""
        return sum(len(source.sequences) for source in self.sources)

    def draw(self, rng: np.random.Generator) -> PairDraw:
        """One pair; consumes a fixed number of values from ``rng`` (four)."""
        source_index = int(np.searchsorted(self._cumulative, rng.random(), side="right"))
        source_index = min(source_index, len(self.sources) - 1)
        source = self.sources[source_index]
        k = int(rng.integers(len(source.sequences)))
        usable, candidates = source.usable[k], source.templates[k]
        template = int(candidates[rng.integers(len(candidates))])
        search = self._search_frame(usable, template, rng)
        return PairDraw(source_index, source.sequences[k], template, search)

    def _search_frame(self, usable: np.ndarray, template: int, rng: np.random.Generator) -> int:
        if self.max_gap == 0:
            rng.integers(1)  # keep the number of draws fixed
            return template
        if self.mode == "causal":
            lo, hi = template + 1, template + self.max_gap + 1
        else:
            lo, hi = template - self.max_gap, template + self.max_gap + 1
        lo, hi = max(lo, 0), min(hi, len(usable))
        frames = np.flatnonzero(usable[lo:hi]) + lo
        if self.mode == "interval":
            frames = frames[frames != template]
        return int(frames[rng.integers(len(frames))])
