"""The paper's published numbers (``published.json``, package data) beside ours.

``published.json`` holds the paper's tables as printed: per benchmark the scores and FPS of
the trackers it compares (the paper's teacher and student included) and per-attribute scores.
A benchmark printed only as a plot has no numbers. Each benchmark names the protocol it was
scored with, the printed unit, and how the printed column names map to our protocol's score
keys (``PR`` -> ``MPR`` ...). Which dataset plugins read a benchmark's own data is a fact of the
protocol (``Protocol.published_benchmarks``).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from functools import lru_cache
from importlib import resources
from typing import Any

from rich.table import Table

from mmtrack_kd.console import name_column
from mmtrack_kd.evaluation.protocols import get_protocol
from mmtrack_kd.evaluation.report import format_score
from mmtrack_kd.evaluation.result import ProtocolResult

#: The paper's rows of its own trackers.
PAPER_TEACHER, PAPER_STUDENT = "Ours-Teacher", "Ours-Student"


@lru_cache(maxsize=1)
def load_published() -> dict[str, Any]:
    """The parsed ``published.json``."""
    text = resources.files("mmtrack_kd.evaluation").joinpath("published.json").read_text("utf-8")
    return json.loads(text)


def published_scores(benchmark: str) -> dict[str, dict[str, float]]:
    """Tracker -> our protocol's score keys -> value in ``[0, 1]`` for one benchmark (a key of
    ``published.json``'s ``benchmarks``); a column the paper prints as ``-`` is left out."""
    entry = load_published()["benchmarks"][benchmark]
    scale = 100.0 if entry["unit"] == "percent" else 1.0
    keys = entry["keys"]
    return {
        tracker: {keys[k]: v / scale for k, v in scores.items() if v is not None}
        for tracker, scores in entry["trackers"].items()
    }


def _real_benchmark(dataset: str, protocol: str | None) -> str | None:
    """The benchmark whose own data ``dataset`` reads, as ``protocol`` lists it, if any."""
    return get_protocol(protocol).published_benchmarks.get(dataset) if protocol else None


def benchmark_for(dataset: str, protocol: str | None) -> str | None:
    """The paper's benchmark for ``dataset``: the real benchmark its plugin reads
    (``Protocol.published_benchmarks``), else the first one scored with ``protocol`` (synthetic
    data in a benchmark's layout -> that benchmark); None when the paper has no numbers for it."""
    benchmarks = load_published()["benchmarks"]
    real = _real_benchmark(dataset, protocol)
    if real is not None and benchmarks[real]["protocol"] == protocol:
        return real if benchmarks[real]["trackers"] else None
    for name, entry in benchmarks.items():
        if entry["protocol"] == protocol and entry["trackers"]:
            return name
    return None


def comparable(dataset: str, protocol: str | None) -> bool:
    """Whether a dataset's numbers can be compared with the paper: the real benchmark read by
    its own plugin (not synthetic data in its layout, not another split of it)."""
    real = _real_benchmark(dataset, protocol)
    return real is not None and load_published()["benchmarks"][real]["protocol"] == protocol


def comparison_table(
    dataset: str,
    protocol: str | None,
    ours: Mapping[str, ProtocolResult],
    peers: bool = True,
) -> Table | None:
    """Our trackers beside the paper's rows for the benchmark of the same protocol.

    Args:
        dataset: the dataset plugin name our numbers come from (``"synthetic"`` is labelled
            not comparable).
        protocol: its protocol; ``None`` or a protocol the paper has no numbers for -> ``None``.
        ours: our tracker name -> result.
        peers: also list the paper's other trackers (else only its teacher and student).
    """
    benchmark = benchmark_for(dataset, protocol)
    if benchmark is None or protocol is None:
        return None
    published = published_scores(benchmark)
    keys = list(dict.fromkeys(k for scores in published.values() for k in scores))
    source = load_published()["benchmarks"][benchmark]["source"]
    note = "" if comparable(dataset, protocol) else (
        f" - ours on {dataset!r} data: NOT comparable with the paper")
    table = Table(title=f"{dataset} beside the paper's {benchmark} ({source}, %){note}")
    name_column(table, "tracker")
    name_column(table, "source")
    for key in keys:
        table.add_column(key, justify="right")
    for name, result in ours.items():
        table.add_row(f"[bold]{name}[/bold]", f"ours ({dataset})",
                      *[format_score(result.scores.get(k, float("nan"))) for k in keys])
    rows = [(n, s) for n, s in published.items()
            if peers or n in (PAPER_TEACHER, PAPER_STUDENT)]
    for name, scores in rows:
        label = "paper" + (" (teacher)" if name == PAPER_TEACHER else
                           " (student)" if name == PAPER_STUDENT else "")
        table.add_row(name, label, *[format_score(scores.get(k, float("nan"))) for k in keys])
    return table
