"""Evaluation reports: rich tables (per dataset, across datasets, per attribute) and one JSON
file with every number.

Input everywhere is ``scored``: dataset name -> tracker name -> :class:`ProtocolResult`.
Scores are held in ``[0, 1]``; tables print them as the papers do: percent with one decimal
(OTB-style protocols), fractions with three decimals (DepthTrack's Pr / Re / F).
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from rich.table import Table

from mmtrack_kd.evaluation.result import ProtocolResult
from mmtrack_kd.evaluation.results_io import atomic_write_text

Scored = Mapping[str, Mapping[str, ProtocolResult]]

#: Protocols whose papers print fractions rather than percent.
FRACTION_PROTOCOLS = frozenset({"depthtrack"})


def format_score(value: float, protocol: str) -> str:
    """``0.7123`` -> ``"71.2"`` (percent), or ``"0.712"`` for DepthTrack; NaN -> ``"-"``."""
    if value != value:  # NaN
        return "-"
    return f"{value:.3f}" if protocol in FRACTION_PROTOCOLS else f"{100 * value:.1f}"


def _keys(results: Mapping[str, ProtocolResult]) -> list[str]:
    return list(dict.fromkeys(k for r in results.values() for k in r.scores))


def dataset_table(dataset: str, results: Mapping[str, ProtocolResult]) -> Table:
    """Trackers x headline scores of one dataset (best value of each column in bold)."""
    protocol = next(iter(results.values())).protocol if results else ""
    keys = _keys(results)
    table = Table(title=f"{dataset} ({protocol} protocol)")
    table.add_column("tracker")
    for key in keys:
        table.add_column(key, justify="right")
    table.add_column("sequences", justify="right")
    best = {k: max((r.scores.get(k, float("nan")) for r in results.values()), default=None)
            for k in keys}
    for tracker, result in results.items():
        cells = []
        for key in keys:
            value = result.scores.get(key, float("nan"))
            text = format_score(value, protocol)
            cells.append(f"[bold]{text}[/bold]" if len(results) > 1 and value == best[key] else text)
        table.add_row(tracker, *cells, str(len(result.sequences)))
    return table


def overview_table(scored: Scored) -> Table:
    """One row per tracker, one column group per dataset (its headline scores)."""
    table = Table(title="all datasets")
    table.add_column("tracker")
    columns: list[tuple[str, str, str]] = []  # dataset, key, protocol
    for dataset, results in scored.items():
        protocol = next(iter(results.values())).protocol if results else ""
        for key in _keys(results):
            columns.append((dataset, key, protocol))
            table.add_column(f"{dataset}\n{key}", justify="right")
    trackers = list(dict.fromkeys(t for results in scored.values() for t in results))
    for tracker in trackers:
        row = []
        for dataset, key, protocol in columns:
            result = scored[dataset].get(tracker)
            row.append(format_score(result.scores.get(key, float("nan")), protocol) if result else "-")
        table.add_row(tracker, *row)
    return table


def attribute_table(dataset: str, results: Mapping[str, ProtocolResult]) -> Table | None:
    """Attributes x (tracker, score) of one dataset; ``None`` when no sequence has one."""
    attributes = list(dict.fromkeys(a for r in results.values() for a in r.per_attribute))
    if not attributes:
        return None
    protocol = next(iter(results.values())).protocol
    keys = _keys(results)
    table = Table(title=f"{dataset}: per attribute")
    table.add_column("attribute")
    for tracker in results:
        for key in keys:
            table.add_column(f"{tracker}\n{key}", justify="right")
    table.add_column("sequences", justify="right")
    for attribute in attributes:
        row, count = [], 0
        for result in results.values():
            sub = result.per_attribute.get(attribute)
            count = max(count, len(sub.sequences) if sub else 0)
            row += [format_score(sub.scores.get(k, float("nan")), protocol) if sub else "-"
                    for k in keys]
        table.add_row(attribute, *row, str(count))
    return table


def print_report(scored: Scored, console: Any = None, attributes: bool = True) -> None:
    """Print the per-dataset tables, the attribute tables and (several datasets) the overview."""
    if console is None:
        from mmtrack_kd.console import console as default_console

        console = default_console
    for dataset, results in scored.items():
        if not results:
            continue
        console.print(dataset_table(dataset, results))
        table = attribute_table(dataset, results) if attributes else None
        if table is not None:
            console.print(table)
    if len(scored) > 1:
        console.print(overview_table(scored))


def report_dict(scored: Scored, per_sequence: bool = True) -> dict[str, Any]:
    """``{"datasets": {dataset: {tracker: ProtocolResult.to_dict()}}}``."""
    return {
        "datasets": {
            dataset: {tracker: result.to_dict(per_sequence) for tracker, result in results.items()}
            for dataset, results in scored.items()
        }
    }


def _no_nan(value: Any) -> Any:
    """NaN -> ``None`` (JSON ``null``), recursively, so the file is strict JSON."""
    if isinstance(value, dict):
        return {k: _no_nan(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_no_nan(v) for v in value]
    if isinstance(value, float) and value != value:
        return None
    return value


def write_json(scored: Scored, path: str | os.PathLike[str], per_sequence: bool = True) -> Path:
    """Write :func:`report_dict` as strict JSON (atomically); returns the path."""
    text = json.dumps(_no_nan(report_dict(scored, per_sequence)), indent=1, allow_nan=False)
    return atomic_write_text(Path(path), text + "\n")
