"""The paper's claims as data, and their reading from measured noise.

A :class:`Claim` names two arms, a modality, a metric and what the paper says of the first
against the second (``beats`` or ``matches``). :data:`CLAIMS` lists the claims the report reads.
:func:`read_claim` turns the records into a :class:`Reading`: the mean paired difference over the
seeds both arms ran, an interval from the arms' spread over their training runs and a paired
bootstrap over the test sequences, and a verdict (:func:`verdict_of`) that one seed never makes
stronger than "suggestive".
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from mmtrack_kd.experiments.analysis import (fast_evaluations, finite, headline, headline_score, reading_key,
                                             records_of, retrained_teacher_score, score_key, teacher_file,
                                             teacher_job_of)
from mmtrack_kd.experiments.planning import job_id

#: What a paper's claim says of arm A against arm B: "beats" (A > B) or "matches" (A is about B).
VerdictKind = Literal["beats", "matches"]
#: Two-sided normal quantile of the claims' intervals (about 95%).
Z_95 = 1.96
#: Bootstrap resamples of the test sequences per seed, and the generator's seed (fixed, so the
#: report regenerates to the same bytes).
BOOTSTRAP_SAMPLES = 2000
BOOTSTRAP_SEED = 0


@dataclass(frozen=True)
class Claim:
    """One claim read from the records: ``arm`` against ``other`` on ``modality``.

    ``metric``: a headline key (``PR``, ``SR``, ``F``...); None reads each record on the score
    its protocol is read on (:func:`~mmtrack_kd.experiments.analysis.reading_key`). ``kind``: see
    :data:`VerdictKind`."""

    text: str
    arm: str
    other: str
    kind: VerdictKind = "beats"
    modality: str = "rgbt"
    metric: str | None = None


#: The claims the report reads, in its order.
CLAIMS: tuple[Claim, ...] = (
    Claim("(1) teacher beats the RGB-only baseline", "teacher", "baseline"),
    Claim("(1) spatial attention helps the teacher", "teacher", "teacher-no-spatial"),
    Claim("(1) token attention helps the teacher", "teacher", "teacher-no-token"),
    Claim("(1) history helps the teacher", "teacher", "teacher-no-history"),
    Claim("(2) student nearly matches the teacher", "student", "teacher", "matches"),
    Claim("(2) distilled student beats FOST", "student", "fost"),
    Claim("(2) feature KD gives more than response KD", "student-feature", "student-response"),
    # Our student starts from the teacher's weights and FOST from scratch, so "student beats
    # FOST" mixes distillation with initialisation; FOST from the teacher's weights splits them.
    Claim("(control) the teacher's weights alone help FOST (FOST from the teacher's weights vs "
          "from scratch)", "fost-teacher-init", "fost"),
    Claim("(control) distillation adds to the teacher's weights (student vs FOST from the "
          "teacher's weights)", "student", "fost-teacher-init"),
    # The student continues from a teacher that has not levelled off, so it trains twice as
    # long; a teacher trained for both stages' samples is the same-budget comparison.
    Claim("(control) student nearly matches a teacher trained as long as both stages together",
          "student", "teacher-long", "matches"),
    Claim("(3) even layers beat first-half", "student", "student-first-half"),
    Claim("(3) even layers beat second-half", "student", "student-second-half"),
    Claim("(3) even layers beat all-layers", "student", "student-all-layers"),
    Claim("(beyond the paper) candidate elimination keeps the student's accuracy",
          "student-ce", "student", "matches"),
    Claim("(beyond the paper) candidate elimination at the last block keeps the student's accuracy",
          "student-ce-late", "student", "matches"),
    Claim("(shapes) distillation helps the half-depth student (against its FOST control)",
          "student-half", "fost-half"),
    Claim("(shapes) distillation helps the half-depth fused student (against its FOST control)",
          "student-half-fused", "fost-half-fused"),
    Claim("(shapes) the half-depth student nearly matches the full-depth student", "student-half",
          "student", "matches"),
    Claim("(shapes) the half-depth fused student nearly matches the full-depth student",
          "student-half-fused", "student", "matches"),
    Claim("(4) rgbd: distilled student beats FOST", "student", "fost", modality="rgbd"),
    Claim("(4) rgbd: student nearly matches the teacher", "student", "teacher", "matches", "rgbd"),
    Claim("(4) rgbe: distilled student beats FOST", "student", "fost", modality="rgbe"),
    Claim("(4) rgbe: student nearly matches the teacher", "student", "teacher", "matches", "rgbe"),
)


#: Verdict key -> the words the report prints. "holds"/"reversed"/"below"/"above" need at
#: least two seeds and an interval that excludes zero; with one seed the same finding is only
#: "suggestive"; an interval across zero resolves nothing ("beats") or no gap ("matches").
VERDICTS: dict[str, str] = {
    "not run": "**not run**",
    "holds": "**holds**",
    "reversed": "**does not hold (reversed)**",
    "suggestive": "suggestive (one seed; the interval excludes zero)",
    "suggestive reversed": "suggestive, reversed (one seed; the interval excludes zero)",
    "not resolved": "not resolved (the interval includes zero)",
    "match": "**holds** (no gap resolved)",
    "match suggestive": "suggestive (one seed; no gap resolved)",
    "below": "**does not hold** (below it)",
    "below suggestive": "suggestive, below it (one seed)",
    "above": "above it, not a match (the gap is resolved)",
    "above suggestive": "suggestive, above it (one seed)",
    "unmeasured": "suggestive at most (no noise measured for these arms)",
}


@dataclass(frozen=True)
class Reading:
    """A claim read from the records: ``diff`` (mean paired difference, points) on ``seeds``,
    its interval ``low``-``high`` and where the noise came from (``noise``), and ``verdict``
    (a key of :data:`VERDICTS`)."""

    claim: Claim
    seeds: tuple[int, ...] = ()
    diff: float | None = None
    low: float | None = None
    high: float | None = None
    noise: str = ""
    verdict: str = "not run"
    notes: tuple[str, ...] = ()

    @property
    def line(self) -> str:
        """The report's line for this claim."""
        if self.diff is None:
            return f"- {self.claim.text}: **not run**"
        seeds = f"{len(self.seeds)} seed{'s' if len(self.seeds) > 1 else ''} ({', '.join(map(str, self.seeds))})"
        interval = "no interval" if self.low is None else f"interval {self.low:+.1f} to {self.high:+.1f}"
        text = (f"- {self.claim.text}: {self.diff:+.1f} points, {interval}, {seeds} -> "
                f"{VERDICTS[self.verdict]} ({self.noise})")
        return text + "".join(f" - *{note}*" for note in self.notes)


def verdict_of(kind: VerdictKind, low: float | None, high: float | None, seeds: int) -> str:
    """The verdict key of an interval ``low``-``high`` of a difference over ``seeds`` seeds."""
    if low is None or high is None:
        return "unmeasured"
    one = seeds < 2
    if kind == "beats":
        if low > 0:
            return "suggestive" if one else "holds"
        if high < 0:
            return "suggestive reversed" if one else "reversed"
        return "not resolved"
    if high < 0:
        return "below suggestive" if one else "below"
    if low > 0:
        return "above suggestive" if one else "above"
    return "match suggestive" if one else "match"


# --------------------------------------------------------------------------- scores of a claim


def metric_score(record: dict[str, Any], metric: str | None) -> float | None:
    """The record's ``metric`` in percent; ``None`` reads its headline score (:func:`headline_score`)."""
    return headline_score(record) if metric is None else headline(record).get(metric)


def _metric_key(record: dict[str, Any], metric: str | None) -> str:
    """The protocol key behind ``metric`` in the record's scores (``PR`` may be ``MPR``, as in
    :func:`headline`); ``None``: the key the record is read on."""
    evaluation = next(iter(record["evaluation"].values()))
    scores = evaluation["scores"]
    if metric is None:
        return reading_key(scores, evaluation.get("protocol"))
    return score_key(scores, metric)


def _sequence_scores(record: dict[str, Any], metric: str | None) -> dict[str, float]:
    """Per-sequence scores in percent (empty for a record without ``sequence_scores``)."""
    evaluation = next(iter(record["evaluation"].values()))
    key = _metric_key(record, metric)
    out = {}
    for name, scores in (evaluation.get("sequence_scores") or {}).items():
        value = finite(scores.get(key))
        if value is not None:
            out[name] = 100.0 * value
    return out


def seed_runs(records: list[dict[str, Any]], modality: str, arm: str, seed: int,
              metric: str | None) -> list[float]:
    """Every score of ``arm`` at ``seed`` from a separate training run: its record, plus, for a
    teacher arm, each retrained teacher file of that seed that students scored (a later training
    of the same recipe and seed, usually on another machine), each file counted once."""
    own = [r for r in records_of(records, modality, arm) if r["seed"] == seed]
    values = [v for v in (metric_score(r, metric) for r in own) if v is not None]
    if any(r["stage"] == "teacher" for r in own):
        files = {}
        for r in records:
            if (r["modality"] == modality and r["seed"] == seed and r.get("teacher_retrained")
                    and r.get("teacher_sha256") and teacher_job_of(r) == job_id(modality, arm, seed)):
                files[r["teacher_sha256"]] = retrained_teacher_score(r)
        values += [v for v in files.values() if v is not None]
    return values


def training_runs(records: list[dict[str, Any]], modality: str, arm: str, metric: str | None) -> list[float]:
    """Every score of ``arm`` from a separate training run, over all its seeds (:func:`seed_runs`)."""
    seeds = dict.fromkeys(r["seed"] for r in records_of(records, modality, arm))
    return [v for seed in seeds for v in seed_runs(records, modality, arm, seed, metric)]


# --------------------------------------------------------------------------- noise


def paired_bootstrap_var(mine: dict[str, float], theirs: dict[str, float],
                         samples: int = BOOTSTRAP_SAMPLES, seed: int = BOOTSTRAP_SEED) -> float | None:
    """Variance of the mean per-sequence difference ``mine - theirs`` over resamples (with
    replacement) of the sequences both arms were scored on; None for fewer than two. Paired: a
    resample draws a sequence for both arms at once, so what the two share cancels."""
    names = sorted(set(mine) & set(theirs))
    if len(names) < 2:
        return None
    diffs = np.array([mine[n] - theirs[n] for n in names])
    rng = np.random.default_rng(seed)
    means = diffs[rng.integers(0, len(diffs), size=(samples, len(diffs)))].mean(axis=1)
    return float(means.var(ddof=1))


def seed_variance(records: list[dict[str, Any]], claim: Claim,
                  diffs: Sequence[float]) -> tuple[float | None, list[str]]:
    """Training-noise variance of one seed's difference ``arm - other``, and how it was got.

    Each arm's variance over its separate runs (:func:`training_runs`); an arm with one run
    takes the larger of the other arm's and the variance pooled over every arm (any modality)
    with two or more runs. Where the paired differences ``diffs`` of two or more seeds vary more
    than that, their own variance is used: the noise of the difference is measured directly
    there. None when no arm anywhere has two runs."""
    groups = dict.fromkeys((r["modality"], r["arm"]) for r in records)
    pooled_runs = [runs for m, a in groups if len(runs := training_runs(records, m, a, None)) > 1]
    pooled = None
    if pooled_runs:
        dof = sum(len(runs) - 1 for runs in pooled_runs)
        pooled = sum(statistics.variance(runs) * (len(runs) - 1) for runs in pooled_runs) / dof
    variances, parts = [], []
    for arm in (claim.arm, claim.other):
        runs = training_runs(records, claim.modality, arm, claim.metric)
        if len(runs) > 1:
            variances.append(statistics.variance(runs))
            parts.append(f"{arm} sd {math.sqrt(variances[-1]):.1f} over {len(runs)} runs")
    if len(variances) == 1:
        variances.append(max(variances[0], pooled or 0.0))
        parts.append(f"the one-run arm sd {math.sqrt(variances[-1]):.1f} (the other's, or pooled if larger)")
    elif not variances:
        if pooled is None:
            return None, ["no arm has two runs: training noise not measured"]
        variances = [pooled, pooled]
        parts.append(f"both arms one run: sd {math.sqrt(pooled):.1f} pooled over {len(pooled_runs)} arms")
    var = sum(variances)
    if len(diffs) > 1 and statistics.variance(diffs) > var:
        var = statistics.variance(diffs)
        parts.append(f"the seeds' differences vary more: sd {math.sqrt(var):.1f}")
    return var, ["training noise: " + ", ".join(parts)]


# --------------------------------------------------------------------------- the reading


def read_claim(records: list[dict[str, Any]], claim: Claim) -> Reading:
    """Read ``claim`` from the records, from measured noise.

    The difference is the mean over the seeds both arms ran of ``arm - other``. Its variance
    has two parts: training noise (:func:`seed_variance`: the arms' spread over their separate
    training runs, or the seeds' own differences where those vary more) and test-set noise (a
    paired bootstrap over the test sequences of each seed, :func:`paired_bootstrap_var`; records
    without per-sequence scores have none, and the line says so). The interval is the
    difference +- :data:`Z_95` standard errors, and :func:`verdict_of` reads it. A student read
    against ``teacher`` is read against the teacher file it distilled from (see
    :func:`mmtrack_kd.experiments.running.teacher_provenance`)."""
    modality, metric = claim.modality, claim.metric
    mine = {r["seed"]: r for r in records_of(records, modality, claim.arm)}
    theirs = {r["seed"]: r for r in records_of(records, modality, claim.other)}
    values_a = {s: metric_score(r, metric) for s, r in mine.items()}
    values_b = {s: metric_score(r, metric) for s, r in theirs.items()}
    retrained = []
    if claim.other == "teacher" and metric is None:
        for seed, r in mine.items():
            score = retrained_teacher_score(r)
            if score is not None:
                values_b[seed] = score
                retrained.append(seed)
    # Two arms trained independently of any teacher file (the teacher against its ablations or
    # the baseline): a teacher seed trained more than once is read at the mean of its runs, not
    # at whichever record came first. A student is read against the one file it came from.
    averaged: dict[tuple[str, int], list[float]] = {}
    if metric is None:
        for side, values, records_by_seed in ((claim.arm, values_a, mine), (claim.other, values_b, theirs)):
            for seed, r in records_by_seed.items():
                runs = seed_runs(records, modality, side, seed, metric)
                independent = all(seed in by and not by[seed].get("teacher") for by in (mine, theirs))
                if independent and len(runs) > 1:
                    values[seed] = statistics.fmean(runs)
                    averaged[side, seed] = runs
    seeds = tuple(sorted(s for s in set(values_a) & set(values_b)
                         if values_a[s] is not None and values_b[s] is not None))
    if not seeds:
        return Reading(claim)
    diff = statistics.fmean(values_a[s] - values_b[s] for s in seeds)

    seed_var, parts = seed_variance(records, claim, [values_a[s] - values_b[s] for s in seeds])
    boot = []
    for seed in seeds:
        if seed in retrained or any(key[1] == seed for key in averaged):
            continue  # a retrained teacher file was scored overall only
        var = paired_bootstrap_var(_sequence_scores(mine[seed], metric), _sequence_scores(theirs[seed], metric))
        if var is not None:
            boot.append(var)
    if boot:
        parts.append(f"sequence bootstrap on {len(boot)} of {len(seeds)} seeds")
    else:
        parts.append("no sequence bootstrap (per-sequence scores not recorded)")
    low = high = None
    if seed_var is not None:
        n = len(seeds)
        half = Z_95 * math.sqrt(seed_var / n + (statistics.fmean(boot) / n if boot else 0.0))
        low, high = diff - half, diff + half
    notes = []
    if retrained := [s for s in seeds if s in retrained]:
        notes.append(f"seed{'s' if len(retrained) > 1 else ''} {', '.join(map(str, retrained))} read "
                     "against the retrained teacher file the student distilled from")
    files = {s: teacher_file(r) for s, r in mine.items()}
    other_files = {s: teacher_file(r) for s, r in theirs.items()}
    if any(files.get(s) and other_files.get(s) and files[s] != other_files[s] for s in seeds):
        notes.append("the two arms distilled from different teacher checkpoints (see the arms table)")
    fast = set(fast_evaluations(records))
    if suspect := [r["id"] for s in seeds for r in (mine[s], theirs[s]) if r["id"] in fast]:
        notes.append(f"{', '.join(suspect)}: evaluation far faster than its stage's, boxes possibly reused")
    for (side, seed), runs in averaged.items():
        if seed in seeds:
            notes.append(f"{side} seed {seed} read at the mean of its {len(runs)} training runs "
                         f"({', '.join(f'{v:.1f}' for v in runs)}: its record first, then retrained files)")
    return Reading(claim, seeds, diff, low, high, "; ".join(parts),
                   verdict_of(claim.kind, low, high, len(seeds)), tuple(notes))
