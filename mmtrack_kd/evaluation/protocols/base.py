"""The protocol interface and the machinery shared by protocols: input checks, curve counting,
aggregation, attributes.

A third-party protocol subclasses :class:`Protocol` (or :class:`MeanCurveProtocol` for curves
averaged over sequences) and registers the class through the ``mmtrack_kd_register_protocols``
hook. A protocol is two steps. ``prepare`` turns one sequence (ground truth, predictions cut to the
ground-truth length, confidences) into whatever the protocol aggregates; ``aggregate`` turns the
prepared sequences of a set (the whole dataset, or the sequences with one attribute) into
headline numbers and curves. Keeping the steps apart lets the attribute breakdown reuse the
per-sequence work.
"""

from __future__ import annotations

import abc
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from os import PathLike
from typing import Any, ClassVar, Literal

import numpy as np

from mmtrack_kd.data.results_io import OTB_RESULTS, ResultLayout
from mmtrack_kd.errors import DataError
from mmtrack_kd.evaluation.groundtruth import GroundTruth
from mmtrack_kd.evaluation.result import Curve, ProtocolResult

ArrayLike = Any
Comparison = Literal["<=", "<", ">"]

# Threshold grids, built the way the reference toolkits build them (np.linspace / np.arange),
# so that values equal to a threshold fall on the same side as in those toolkits.
PRECISION_PX = np.arange(0, 51, dtype=np.float64)  # 0..50 px
SUCCESS_21 = np.linspace(0, 1, 21)  # 0, 0.05, ..., 1
NORM_PRECISION = np.linspace(0, 0.5, 51)  # 0, 0.01, ..., 0.5


@dataclass(frozen=True)
class SequenceInput:
    """One sequence ready for a protocol.

    Attributes:
        gt: The ground truth, ``N`` frames.
        pred: ``(N, 4)`` float64 predicted boxes, already cut to ``N``.
        conf: ``(N,)`` float64 confidences, or ``None`` when the protocol needs none.
    """

    gt: GroundTruth
    pred: np.ndarray
    conf: np.ndarray | None

    @property
    def name(self) -> str:
        return self.gt.name


@dataclass
class Aggregate:
    """What ``Protocol.aggregate`` returns for a set of sequences."""

    scores: dict[str, float]
    curves: dict[str, Curve]
    sequence_scores: dict[str, dict[str, float]]
    dropped: dict[str, tuple[str, ...]] = field(default_factory=dict)
    details: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Panel:
    """One panel of a figure sheet: curve ``y`` over the thresholds, or over curve ``x``
    (DepthTrack's precision-recall curve plots the mean precision over the mean recall)."""

    y: str
    title: str
    x: str | None = None


#: The panels researchers expect from a short-term benchmark (OTB / LasHeR / RGBT234 toolkits,
#: pytracking's ``analysis``): success, then precision.
SHORT_TERM_PANELS = (Panel("success", "Success plot"), Panel("precision", "Precision plot"))


class Protocol(abc.ABC):
    """A scoring protocol; subclasses define ``prepare`` and ``aggregate``.

    Besides the maths a protocol carries every fact the engine needs about it, so that nothing
    outside the protocol asks its name:

    * ``name``: the registry name a dataset plugin's ``protocol`` refers to;
    * ``needs_confidence``: results must carry a confidence per frame;
    * ``needs_image_size``: the overlap clips boxes to the image, so the ground truth must carry
      the frame size (:attr:`GroundTruth.image_size`);
    * ``result_layout``: the result folder its toolkit reads
      (:class:`~mmtrack_kd.data.results_io.ResultLayout`), written by the evaluation runner;
    * ``curve_scores``: curve key -> the headline score that summarises it (a plot's legend);
    * ``headline_score``: the one score a cross-dataset table ranks trackers by;
    * ``panels``: the figures a report sheet draws for it (:class:`Panel`);
    * ``published_benchmarks``: dataset plugin name -> the benchmark of ``published.json`` its
      data is, for the datasets whose numbers can be set beside the paper's.

    Every score is a fraction in ``[0, 1]``; reports print them all in percent. A protocol
    class must construct without arguments (the registry builds it by name).
    """

    name: ClassVar[str] = ""
    needs_confidence: ClassVar[bool] = False
    needs_image_size: ClassVar[bool] = False
    result_layout: ClassVar[ResultLayout] = OTB_RESULTS
    curve_scores: ClassVar[dict[str, str]] = {}
    headline_score: ClassVar[str] = ""
    panels: ClassVar[tuple[Panel, ...]] = SHORT_TERM_PANELS
    published_benchmarks: ClassVar[dict[str, str]] = {}

    @abc.abstractmethod
    def prepare(self, seq: SequenceInput) -> Any:
        """Per-sequence work: errors, overlaps and whatever ``aggregate`` needs."""

    @abc.abstractmethod
    def aggregate(self, names: list[str], prepared: list[Any]) -> Aggregate:
        """Headline numbers and curves over a set of prepared sequences (non-empty)."""

    def score(
        self,
        predictions: Mapping[str, ArrayLike],
        ground_truths: Iterable[GroundTruth] | Mapping[str, GroundTruth],
        confidences: Mapping[str, ArrayLike] | None = None,
        files: Mapping[str, str | PathLike[str]] | None = None,
        attributes: bool = True,
    ) -> ProtocolResult:
        """Score a tracker: all sequences, then each attribute's subset.

        Args:
            predictions: sequence name -> ``(M, 4)`` boxes (x, y, w, h in pixels), ``M`` at least
                the number of ground-truth frames; longer results are cut.
            ground_truths: the sequences to score (a name mapping is accepted too).
            confidences: sequence name -> ``(M,)`` confidences; required when
                ``needs_confidence``, ignored otherwise.
            files: sequence name -> its result file, named in error messages.
            attributes: also score each attribute's subset.

        Raises:
            DataError: a sequence without a result, a result of the wrong shape or shorter than
                its ground truth, missing confidences (the result file named when known).
        """
        inputs = collect_inputs(self, predictions, ground_truths, confidences, files)
        names = [s.name for s in inputs]
        prepared = [self.prepare(s) for s in inputs]
        per_attribute: dict[str, ProtocolResult] = {}
        if attributes:
            attribute_names: list[str] = []
            for s in inputs:
                attribute_names += [a for a in s.gt.attributes if a not in attribute_names]
            for attribute in attribute_names:
                idx = [i for i, s in enumerate(inputs) if s.gt.attributes.get(attribute, False)]
                if not idx:
                    continue
                sub_names = [names[i] for i in idx]
                sub = self.aggregate(sub_names, [prepared[i] for i in idx])
                per_attribute[attribute] = _result(self.name, sub_names, sub, {})
        return _result(self.name, names, self.aggregate(names, prepared), per_attribute)


def rate_counts(values: np.ndarray, thresholds: np.ndarray, op: Comparison) -> np.ndarray:
    """How many ``values`` pass each threshold.

    Args:
        values: ``(N,)`` per-frame errors or overlaps; must hold no NaN (metrics return ``inf`` /
            ``0`` / ``-1`` instead).
        thresholds: ``(T,)`` thresholds.
        op: ``"<="`` or ``"<"`` (an error is a hit when below), ``">"`` (an overlap is a hit when
            above).

    Returns:
        ``(T,)`` int64 counts.
    """
    ordered = np.sort(values)
    if op == "<=":
        return np.searchsorted(ordered, thresholds, side="right").astype(np.int64)
    if op == "<":
        return np.searchsorted(ordered, thresholds, side="left").astype(np.int64)
    if op == ">":
        return len(ordered) - np.searchsorted(ordered, thresholds, side="right").astype(np.int64)
    raise ValueError(f"unknown comparison {op!r}")


def rate_curve(values: np.ndarray, thresholds: np.ndarray, op: Comparison) -> np.ndarray:
    """Share of frames passing each threshold: ``(T,)`` float64, counts over ``N``."""
    return rate_counts(values, thresholds, op) / max(len(values), 1)


def index_of(thresholds: np.ndarray, value: float) -> int:
    """Index of ``value`` in a threshold grid (e.g. 20 px in 0..50)."""
    hits = np.flatnonzero(np.isclose(thresholds, value, rtol=0, atol=1e-9))
    if not len(hits):
        raise ValueError(f"{value} is not on the threshold grid")
    return int(hits[0])


@dataclass(frozen=True)
class CurveSpec:
    """A rate curve: which per-frame values, which thresholds, which side is a hit."""

    key: str
    thresholds: np.ndarray
    op: Comparison
    x_label: str
    y_label: str


def min_error_max_overlap(
    pred: np.ndarray,
    box_sets: list[np.ndarray],
    error_fn: Callable[[np.ndarray, np.ndarray], np.ndarray],
    overlap_fn: Callable[[np.ndarray, np.ndarray], np.ndarray],
) -> tuple[np.ndarray, np.ndarray]:
    """Per frame, the smallest error and the largest overlap over several ground truths.

    Args:
        pred: ``(N, 4)`` predictions.
        box_sets: ground truths, each ``(N, 4)`` (e.g. visible and infrared).
        error_fn: per-frame error, ``(N, 4), (N, 4) -> (N,)``.
        overlap_fn: per-frame overlap, ``(N, 4), (N, 4) -> (N,)``.

    Returns:
        ``(N,)`` errors and ``(N,)`` overlaps.
    """
    errors = np.min([error_fn(pred, boxes) for boxes in box_sets], axis=0)
    overlaps = np.max([overlap_fn(pred, boxes) for boxes in box_sets], axis=0)
    return errors, overlaps


def modality_box_sets(protocol: str, gt: GroundTruth) -> list[np.ndarray]:
    """The per-modality ground truths a min/max protocol needs, or a :class:`DataError`."""
    if not gt.modality_boxes:
        where = f" ({gt.source})" if gt.source else ""
        raise DataError(
            f"sequence {gt.name!r}{where}: protocol {protocol!r} takes the minimum error and the "
            "maximum overlap over per-modality ground truths (visible and infrared), but the "
            "sequence has none"
        )
    return list(gt.modality_boxes.values())


def _describe(name: str, files: Mapping[str, Any] | None, what: str) -> str:
    path = files.get(name) if files else None
    return f"{path}" if path is not None else f"{what} of sequence {name!r}"


def collect_inputs(
    protocol: Protocol,
    predictions: Mapping[str, ArrayLike],
    ground_truths: Iterable[GroundTruth] | Mapping[str, GroundTruth],
    confidences: Mapping[str, ArrayLike] | None,
    files: Mapping[str, str | PathLike[str]] | None,
) -> list[SequenceInput]:
    """Check and align predictions with ground truths; cut longer results to the ground truth.

    Raises:
        DataError: a sequence without a result, a result that is not ``(M, 4)``, a result (or its
            confidences) shorter than the ground truth, or missing confidences. The message names
            the result file when ``files`` knows it.
    """
    gts = (
        list(ground_truths.values())
        if isinstance(ground_truths, Mapping)
        else list(ground_truths)
    )
    seen: set[str] = set()
    out = []
    for gt in gts:
        if not isinstance(gt, GroundTruth):
            raise TypeError(f"expected GroundTruth, got {type(gt).__name__}")
        name = gt.name
        if name in seen:
            raise DataError(f"sequence {name!r} appears twice in the ground truth")
        seen.add(name)
        n = len(gt)
        if n == 0:
            where = f" ({gt.source})" if gt.source else ""
            raise DataError(f"sequence {name!r}{where}: the ground truth has no frames")
        where = _describe(name, files, "result")
        if name not in predictions:
            raise DataError(f"{where}: no result for sequence {name!r}")
        pred = np.asarray(predictions[name], dtype=np.float64)
        if pred.ndim != 2 or pred.shape[1] != 4:
            raise DataError(
                f"{where}: result of sequence {name!r} must be M x 4 (x, y, w, h), "
                f"got shape {pred.shape}"
            )
        if len(pred) < n:
            raise DataError(
                f"{where}: {len(pred)} boxes for the {n} ground-truth frames of sequence {name!r}"
            )
        conf = None
        if protocol.needs_confidence:
            if confidences is None or name not in confidences:
                raise DataError(
                    f"{where}: protocol {protocol.name!r} needs a confidence per frame; "
                    f"sequence {name!r} has none"
                )
            conf = np.asarray(confidences[name], dtype=np.float64).reshape(-1)
            if len(conf) < n:
                raise DataError(
                    f"{where}: {len(conf)} confidence values for the {n} ground-truth frames of "
                    f"sequence {name!r}"
                )
            conf = conf[:n]
        out.append(SequenceInput(gt=gt, pred=pred[:n], conf=conf))
    if not out:
        raise DataError(f"protocol {protocol.name!r}: no sequences to score")
    return out


def _result(
    protocol: str, names: list[str], agg: Aggregate, per_attribute: dict[str, ProtocolResult]
) -> ProtocolResult:
    return ProtocolResult(
        protocol=protocol,
        scores=agg.scores,
        curves=agg.curves,
        sequences=tuple(names),
        sequence_scores=agg.sequence_scores,
        per_attribute=per_attribute,
        dropped=agg.dropped,
        details=agg.details,
    )


class MeanCurveProtocol(Protocol):
    """Per-sequence rate curves averaged over sequences (OTB, LasHeR, RGBT234, VTUAV, ...).

    Subclasses implement :meth:`frame_values` (per-frame values for each curve key) and
    :meth:`headline` (numbers from a set of curves).
    """

    curve_specs: tuple[CurveSpec, ...] = ()
    drop_zero_curves: bool = False

    @abc.abstractmethod
    def frame_values(self, seq: SequenceInput) -> dict[str, np.ndarray]:
        """Curve key -> ``(M,)`` per-frame values (errors or overlaps) of one sequence."""

    @abc.abstractmethod
    def headline(self, curves: dict[str, np.ndarray]) -> dict[str, float]:
        """Headline numbers from curve key -> ``(T,)`` curve."""

    def prepare(self, seq: SequenceInput) -> dict[str, np.ndarray]:
        values = self.frame_values(seq)
        return {
            spec.key: rate_curve(values[spec.key], spec.thresholds, spec.op)
            for spec in self.curve_specs
        }

    def aggregate(self, names: list[str], prepared: list[dict[str, np.ndarray]]) -> Aggregate:
        curves: dict[str, Curve] = {}
        means: dict[str, np.ndarray] = {}
        dropped: dict[str, tuple[str, ...]] = {}
        for spec in self.curve_specs:
            stack = np.stack([p[spec.key] for p in prepared])
            keep = np.ones(len(names), dtype=bool)
            if self.drop_zero_curves:
                # The MATLAB toolkits average only rows with sum(curve) > eps.
                keep = stack.sum(axis=1) > np.finfo(np.float64).eps
                dropped[spec.key] = tuple(n for n, k in zip(names, keep) if not k)
            mean = stack[keep].mean(axis=0) if keep.any() else np.zeros(len(spec.thresholds))
            means[spec.key] = mean
            curves[spec.key] = Curve(
                key=spec.key,
                thresholds=spec.thresholds.copy(),
                mean=mean,
                per_sequence={n: p[spec.key] for n, p in zip(names, prepared)},
                x_label=spec.x_label,
                y_label=spec.y_label,
            )
        return Aggregate(
            scores=self.headline(means),
            curves=curves,
            sequence_scores={n: self.headline(p) for n, p in zip(names, prepared)},
            dropped=dropped if self.drop_zero_curves else {},
        )


PRECISION_SPEC = CurveSpec(
    "precision", PRECISION_PX, "<=", "Location error threshold (px)", "Precision"
)
SUCCESS_SPEC = CurveSpec("success", SUCCESS_21, ">", "Overlap threshold", "Success rate")
NORM_PRECISION_SPEC = CurveSpec(
    "normalized_precision",
    NORM_PRECISION,
    "<=",
    "Normalised location error threshold",
    "Normalised precision",
)
