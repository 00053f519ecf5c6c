"""Reading the per-job records: headline scores, spreads, stream reliance, suspect evaluations
and which teacher file a student distilled from.

A record is the dict :func:`mmtrack_kd.experiments.running.run_job` stores in
``results/<job id>.json``; the helpers here read it and never write it. Scores in a record are
fractions; everything returned here is in percent.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from mmtrack_kd.errors import PluginError
from mmtrack_kd.evaluation.protocols import Protocol, get_protocol
from mmtrack_kd.evaluation.runner import load_ground_truths

#: Margin (points of per-frame precision) of the stream-reliance flags: a description of where a
#: model loses frames, not a verdict (claims are read from measured noise, see
#: :func:`mmtrack_kd.experiments.claims.read_claim`).
RELIANCE_MARGIN = 5.0
#: Centre-error threshold (pixels) of the per-frame stream-reliance check (LasHeR's PR).
PR_PIXELS = 20.0


# --------------------------------------------------------------------------- scores and spreads


def finite(value: Any) -> float | None:
    """``value`` as a float, or None when it is missing, not a number, or not finite."""
    try:
        value = float(value)
    except (TypeError, ValueError):
        return None
    return value if math.isfinite(value) else None


#: ``(score key, the name the report prints it under)``, in the order :func:`headline` lists
#: them: the report prints precision and success as PR / SR whatever a protocol calls them, as
#: the paper prints RGBT234's MPR / MSR.
SHOWN_AS: tuple[tuple[str, str], ...] = (("PR", "PR"), ("MPR", "PR"), ("SR", "SR"), ("MSR", "SR"),
                                         ("NPR", "NPR"), ("Pr", "Pr"), ("Re", "Re"), ("F", "F"))


def headline(record: dict[str, Any]) -> dict[str, float]:
    """The record's scores in percent, under the names of :data:`SHOWN_AS` (PR / SR, or
    Pr / Re / F for DepthTrack's protocol); missing and non-finite scores are left out."""
    scores = next(iter(record["evaluation"].values()))["scores"]
    out = {}
    for key, shown in SHOWN_AS:
        if key in scores and finite(scores[key]) is not None and shown not in out:
            out[shown] = 100.0 * float(scores[key])
    return out


def score_key(scores: Mapping[str, Any], shown: str) -> str:
    """The key of ``scores`` that :func:`headline` prints as ``shown`` (``PR`` may be ``MPR``);
    ``shown`` itself when none is there."""
    return next((key for key, name in SHOWN_AS if name == shown and key in scores), shown)


def _protocol(name: str | None) -> Protocol | None:
    """The registered protocol called ``name``; None for no name, or one no loaded plugin
    registers (a record written with a plugin that is not installed here)."""
    if not name:
        return None
    try:
        return get_protocol(name)
    except PluginError:
        return None


def reading_key(scores: Mapping[str, Any], protocol: str | None = None) -> str:
    """The key of ``scores`` (one evaluation's) that the experiments read an arm on.

    It is a fact of the evaluation's ``protocol``: a short-term protocol (one with a success
    curve) is read on its precision curve's score (``PR``; GTOT's ``MPR``), any other on the
    protocol's own headline score (DepthTrack's ``F``). Scores stored without their protocol, or
    with one no loaded plugin registers, are read on ``F`` when they have it and on what
    :func:`headline` prints as ``PR`` otherwise.
    """
    found = _protocol(protocol)
    if found is None:
        return "F" if "F" in scores else score_key(scores, "PR")
    if "success" in found.curve_scores:
        return found.curve_scores.get("precision", found.headline_score)
    return found.headline_score


def summary_keys(scores: Mapping[str, Any], protocol: str | None = None) -> tuple[str, ...]:
    """The keys of ``scores`` a table cell shows for one evaluation: a short-term protocol's
    precision and success scores (``PR`` / ``SR``; GTOT's ``MPR`` / ``MSR``), any other
    protocol's headline score (``F``). Without a known protocol, those of PR / SR / F (as
    :func:`headline` names them) that ``scores`` has."""
    found = _protocol(protocol)
    if found is None:
        return tuple(k for k in (score_key(scores, shown) for shown in ("PR", "SR", "F")) if k in scores)
    if "success" in found.curve_scores:
        return tuple(found.curve_scores[c] for c in ("precision", "success") if c in found.curve_scores)
    return (found.headline_score,)


def headline_score(record: dict[str, Any]) -> float | None:
    """The figure a record is read on (:func:`reading_key`), in percent; None when missing."""
    evaluation = next(iter(record["evaluation"].values()))
    value = finite(evaluation["scores"].get(reading_key(evaluation["scores"], evaluation.get("protocol"))))
    return 100.0 * value if value is not None else None


def format_stats(values: list[float | None]) -> str:
    """``mean`` for one value; ``mean (min-max, n=k)`` for several; ``-`` for none (missing and
    non-finite values are left out)."""
    values = [v for v in values if v is not None and math.isfinite(v)]
    if not values:
        return "-"
    mean = statistics.fmean(values)
    if len(values) == 1:
        return f"{mean:.1f}"
    return f"{mean:.1f} ({min(values):.1f}-{max(values):.1f}, n={len(values)})"


def finite_mean(values: list[float | None]) -> float | None:
    """The mean of the finite values; None when there are none."""
    values = [v for v in values if v is not None and math.isfinite(v)]
    return statistics.fmean(values) if values else None


def records_of(records: list[dict[str, Any]], modality: str, arm: str) -> list[dict[str, Any]]:
    """The records of ``arm`` on ``modality`` (one per seed run), in the order given."""
    return [r for r in records if r["modality"] == modality and r["arm"] == arm]


def fast_evaluations(records: list[dict[str, Any]], fraction: float = 0.2) -> list[str]:
    """Ids of records whose evaluation took under ``fraction`` of the median of their stage's
    (tracking the same test sequences costs about the same for every arm of a stage, so a far
    shorter one points at boxes read from an earlier result folder rather than tracked). A stage
    with fewer than three timed records is not judged."""
    out = []
    for stage in dict.fromkeys(r["stage"] for r in records):
        times = [r["eval_s"] for r in records if r["stage"] == stage and finite(r.get("eval_s"))]
        if len(times) < 3:
            continue
        median = statistics.median(times)
        out += [r["id"] for r in records if r["stage"] == stage and finite(r.get("eval_s")) is not None
                and r["eval_s"] < fraction * median]
    return out


# --------------------------------------------------------------------------- teacher files


def teacher_job_of(record: dict[str, Any]) -> str | None:
    """The id of the teacher job whose file a student distilled from: the run folder of
    ``runs/<id>/teacher/<file>.pt``, or the kept file's folder ``teachers/<id>/best.pt``."""
    if not record.get("teacher"):
        return None
    path = Path(str(record["teacher"]))
    return path.parent.parent.name if path.parent.name == "teacher" else path.parent.name


def teacher_file(record: dict[str, Any]) -> str | None:
    """The teacher file a student distilled from: its hash, ``unrecorded`` for a record without
    one, None for arms without a teacher."""
    if not record.get("teacher"):
        return None
    return record.get("teacher_sha256") or "unrecorded"


def retrained_teacher_reading(record: dict[str, Any]) -> tuple[str, float] | None:
    """The score of the retrained teacher file a student distilled from, as ``(key, percent)``,
    from the record's ``teacher_scores`` (read on :func:`reading_key` of the protocol the record
    scored that test set with); None when its teacher is the one whose own record the report
    shows, or the score is missing."""
    if not record.get("teacher_retrained"):
        return None
    dataset, scores = next(iter((record.get("teacher_scores") or {}).items()), ("", {}))
    key = reading_key(scores, record["evaluation"].get(dataset, {}).get("protocol"))
    value = finite(scores.get(key))
    return (key, 100.0 * value) if value is not None else None


def retrained_teacher_score(record: dict[str, Any]) -> float | None:
    """The percent of :func:`retrained_teacher_reading`, or None."""
    reading = retrained_teacher_reading(record)
    return reading[1] if reading is not None else None


# --------------------------------------------------------------------------- stream reliance


def _result_boxes(folder: Path, protocol: str, sequence: str) -> np.ndarray:
    """The tracked boxes of ``sequence`` in a result folder of ``protocol``'s layout."""
    return get_protocol(protocol).result_layout.read(folder, [sequence]).boxes[sequence]


def stream_reliance(dataset: Any, folder: Path) -> dict[str, dict[str, float]] | None:
    """Per-frame check of which stream a tracker relies on (synthetic data only): precision
    (centre error <= 20 px) and success (IoU > 0.5) over the frames where only RGB shows the
    target (``rgb``: the auxiliary stream's spell), only the auxiliary stream does (``aux``: an
    RGB spell), or both. A two-stream model that learnt the easier stream and under-uses RGB
    scores low on ``rgb`` frames. Frame 0 (initialisation) is left out. None for a dataset
    without per-frame truth of the dominant stream."""
    if not hasattr(dataset, "truth"):
        return None
    protocol = str(dataset.protocol)
    hits: dict[str, list[tuple[bool, bool]]] = {"both": [], "rgb": [], "aux": []}
    for gt in load_ground_truths(dataset):
        dominant = dataset.truth(gt.name).get("dominant")
        if dominant is None:
            return None
        boxes = _result_boxes(folder, protocol, gt.name)
        n = min(len(boxes), len(gt.boxes), len(dominant))
        for k in range(1, n):
            kind = dominant[k]
            if kind not in hits:
                continue
            g, b = gt.boxes[k], boxes[k]
            if not np.all(np.isfinite(g)) or g[2] <= 0 or g[3] <= 0:
                continue
            if not np.all(np.isfinite(b)) or b[2] <= 0 or b[3] <= 0:
                hits[kind].append((False, False))
                continue
            centre = np.hypot(*(g[:2] + g[2:] / 2 - b[:2] - b[2:] / 2))
            x0, y0 = max(g[0], b[0]), max(g[1], b[1])
            x1, y1 = min(g[0] + g[2], b[0] + b[2]), min(g[1] + g[3], b[1] + b[3])
            inter = max(0.0, x1 - x0) * max(0.0, y1 - y0)
            iou = inter / (g[2] * g[3] + b[2] * b[3] - inter)
            hits[kind].append((centre <= PR_PIXELS, iou > 0.5))
    return {
        kind: {"frames": len(v), "PR": float(np.mean([h[0] for h in v])) if v else float("nan"),
               "SR": float(np.mean([h[1] for h in v])) if v else float("nan")}
        for kind, v in hits.items()
    }


def reliance_flag(rgb: float | None, aux: float | None, baseline_rgb: float | None) -> str:
    """The stream-reliance flag of a two-stream arm from its precision (points) on RGB-only and
    auxiliary-only frames and the RGB-only baseline's on RGB-only frames: ``under-uses RGB``
    more than :data:`RELIANCE_MARGIN` below the baseline there, else ``leans on the auxiliary
    stream`` more than twice that below its own auxiliary-only precision, else no flag."""
    if rgb is None:
        return ""
    if baseline_rgb is not None and rgb < baseline_rgb - RELIANCE_MARGIN:
        return "under-uses RGB (below the RGB-only baseline on RGB-only frames)"
    if aux is not None and rgb < aux - 2 * RELIANCE_MARGIN:
        return "leans on the auxiliary stream"
    return ""
