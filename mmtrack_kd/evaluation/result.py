"""What a scoring protocol returns: headline numbers, curves for plots, attribute breakdowns."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np


@dataclass(frozen=True, eq=False)
class Curve:
    """One performance curve (e.g. precision over centre-error thresholds).

    Attributes:
        key: ``"precision"``, ``"normalized_precision"``, ``"success"``, ``"recall"`` or
            ``"f_score"``.
        thresholds: ``(T,)`` threshold values, in the unit of ``x_label``.
        mean: ``(T,)`` the protocol's aggregate curve (mean over sequences, or pooled over frames
            for a pooled protocol); this is what a paper plots.
        per_sequence: sequence name -> ``(T,)`` that sequence's own curve.
        x_label: Axis label for plots, with the unit.
        y_label: Axis label for plots.
    """

    key: str
    thresholds: np.ndarray
    mean: np.ndarray
    per_sequence: dict[str, np.ndarray]
    x_label: str
    y_label: str

    def to_dict(self, per_sequence: bool = True) -> dict[str, Any]:
        """Plain-data form (lists of floats) for JSON reports."""
        out: dict[str, Any] = {
            "key": self.key,
            "thresholds": [_json_float(t) for t in self.thresholds],
            "mean": self.mean.tolist(),
            "x_label": self.x_label,
            "y_label": self.y_label,
        }
        if per_sequence:
            out["per_sequence"] = {k: v.tolist() for k, v in self.per_sequence.items()}
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Curve:
        """The inverse of :meth:`to_dict` (``"inf"`` thresholds and ``null`` values included)."""
        return cls(
            key=data["key"],
            thresholds=_array(data["thresholds"]),
            mean=_array(data["mean"]),
            per_sequence={k: _array(v) for k, v in (data.get("per_sequence") or {}).items()},
            x_label=data.get("x_label", ""),
            y_label=data.get("y_label", ""),
        )


@dataclass(frozen=True, eq=False)
class ProtocolResult:
    """Scores of one tracker on a set of sequences under one protocol.

    Attributes:
        protocol: Registry name of the protocol (its ``Protocol.name``).
        scores: Headline numbers in ``[0, 1]``, in the order a paper prints them, e.g.
            ``{"PR": 0.702, "NPR": 0.665, "SR": 0.559}``, ``{"MPR": ..., "MSR": ...}`` or the
            long-term ``{"Pr": ..., "Re": ..., "F": ...}``.
        curves: Curve key -> :class:`Curve` (mean and per-sequence, for plots).
        sequences: Names of the sequences scored, in input order.
        sequence_scores: Sequence name -> that sequence's headline numbers (same keys as
            ``scores``, computed from its own curves).
        per_attribute: Attribute name -> the same protocol over the sequences that have the
            attribute (their ``per_attribute`` is empty). Attributes no sequence has are absent.
        dropped: Curve key -> sequences left out of the mean because their whole curve is zero
            (some toolkits' rule); empty for other protocols.
        details: Protocol-specific extras, e.g. the threshold at which a long-term F peaks.
    """

    protocol: str
    scores: dict[str, float]
    curves: dict[str, Curve]
    sequences: tuple[str, ...]
    sequence_scores: dict[str, dict[str, float]]
    per_attribute: dict[str, ProtocolResult] = field(default_factory=dict)
    dropped: dict[str, tuple[str, ...]] = field(default_factory=dict)
    details: dict[str, Any] = field(default_factory=dict)

    def to_dict(self, per_sequence: bool = True) -> dict[str, Any]:
        """Plain-data form for JSON reports; ``per_sequence=False`` keeps only the means."""
        return {
            "protocol": self.protocol,
            "scores": dict(self.scores),
            "sequences": list(self.sequences),
            "sequence_scores": {k: dict(v) for k, v in self.sequence_scores.items()}
            if per_sequence
            else {},
            "curves": {k: c.to_dict(per_sequence) for k, c in self.curves.items()},
            "per_attribute": {
                k: r.to_dict(per_sequence=False) for k, r in self.per_attribute.items()
            },
            "dropped": {k: list(v) for k, v in self.dropped.items()},
            "details": _plain(self.details),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ProtocolResult:
        """The inverse of :meth:`to_dict`, e.g. to compare runs from their ``report.json``
        files (``null`` scores read back as NaN)."""
        return cls(
            protocol=data["protocol"],
            scores={k: _float(v) for k, v in data["scores"].items()},
            curves={k: Curve.from_dict(c) for k, c in (data.get("curves") or {}).items()},
            sequences=tuple(data.get("sequences") or ()),
            sequence_scores={n: {k: _float(v) for k, v in scores.items()}
                             for n, scores in (data.get("sequence_scores") or {}).items()},
            per_attribute={k: cls.from_dict(r) for k, r in (data.get("per_attribute") or {}).items()},
            dropped={k: tuple(v) for k, v in (data.get("dropped") or {}).items()},
            details=dict(data.get("details") or {}),
        )


def _float(value: Any) -> float:
    """A JSON number back as a float: ``null`` -> NaN, ``"inf"`` / ``"-inf"`` -> infinity."""
    return float("nan") if value is None else float(value)


def _array(values: list[Any]) -> np.ndarray:
    return np.array([_float(v) for v in values], dtype=np.float64)


def _json_float(value: float) -> float | str:
    """A float for strict JSON: infinite thresholds (long-term confidence ends) become
    ``"inf"``/``"-inf"``."""
    value = float(value)
    if np.isinf(value):
        return "inf" if value > 0 else "-inf"
    return value


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, (float, np.floating)):
        return _json_float(value)
    if isinstance(value, np.generic):
        return value.item()
    return value
