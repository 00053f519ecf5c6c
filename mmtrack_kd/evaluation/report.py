"""Evaluation reports: rich tables (per dataset, across datasets, per attribute) and one JSON
file with every number.

Input everywhere is ``scored``: dataset name -> tracker name -> :class:`ProtocolResult`.
Scores are held in ``[0, 1]``; every table prints them in one unit, percent with one decimal,
whatever the protocol (long-term Pr / Re / F included), and says so in its title. Tables are
long rather than wide (one row per tracker and attribute, not one column per tracker), so they
read at 80 columns; names wrap instead of being cut to ``teac…``.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from rich.table import Table

from mmtrack_kd.console import console as default_console
from mmtrack_kd.console import name_column
from mmtrack_kd.data.results_io import atomic_write_text
from mmtrack_kd.evaluation.protocols import get_protocol
from mmtrack_kd.evaluation.result import ProtocolResult

Scored = Mapping[str, Mapping[str, ProtocolResult]]

#: The one unit every report prints scores in.
UNIT = "%"


def format_score(value: float) -> str:
    """A score in ``[0, 1]`` as percent with one decimal: ``0.7123`` -> ``"71.2"``; NaN ->
    ``"-"``."""
    if value != value:  # NaN
        return "-"
    return f"{100 * value:.1f}"


def _keys(results: Mapping[str, ProtocolResult]) -> list[str]:
    return list(dict.fromkeys(k for r in results.values() for k in r.scores))


def dataset_table(dataset: str, results: Mapping[str, ProtocolResult]) -> Table:
    """Trackers x headline scores of one dataset (best value of each column in bold)."""
    protocol = next(iter(results.values())).protocol if results else ""
    keys = _keys(results)
    table = Table(title=f"{dataset} ({protocol} protocol, {UNIT})")
    name_column(table, "tracker")
    for key in keys:
        table.add_column(key, justify="right")
    table.add_column("sequences", justify="right")
    best = {k: max((r.scores.get(k, float("nan")) for r in results.values()), default=None)
            for k in keys}
    for tracker, result in results.items():
        cells = []
        for key in keys:
            value = result.scores.get(key, float("nan"))
            text = format_score(value)
            cells.append(f"[bold]{text}[/bold]" if len(results) > 1 and value == best[key] else text)
        table.add_row(tracker, *cells, str(len(result.sequences)))
    return table


def overview_table(scored: Scored) -> Table:
    """One row per dataset and tracker: the dataset's protocol, its headline score by name and
    every other score, in percent (long, so any number of datasets reads at 80 columns)."""
    table = Table(title=f"all datasets ({UNIT})")
    name_column(table, "dataset")
    name_column(table, "tracker")
    table.add_column("headline", justify="right")
    name_column(table, "scores")
    for dataset, results in scored.items():
        for tracker, result in results.items():
            key = get_protocol(result.protocol).headline_score
            others = ", ".join(f"{k} {format_score(v)}" for k, v in result.scores.items() if k != key)
            table.add_row(dataset, tracker, f"{key} {format_score(result.scores.get(key, float('nan')))}",
                          others)
    return table


def attribute_table(dataset: str, results: Mapping[str, ProtocolResult]) -> Table | None:
    """One row per attribute and tracker (the attribute's sequence count beside it), the
    protocol's scores as columns; ``None`` when no sequence has an attribute."""
    attributes = list(dict.fromkeys(a for r in results.values() for a in r.per_attribute))
    if not attributes:
        return None
    keys = _keys(results)
    table = Table(title=f"{dataset}: per attribute ({UNIT})")
    name_column(table, "attribute")
    table.add_column("seqs", justify="right")
    name_column(table, "tracker")
    for key in keys:
        table.add_column(key, justify="right")
    for attribute in attributes:
        count = max((len(r.per_attribute[attribute].sequences) for r in results.values()
                     if attribute in r.per_attribute), default=0)
        for index, (tracker, result) in enumerate(results.items()):
            sub = result.per_attribute.get(attribute)
            cells = [format_score(sub.scores.get(k, float("nan"))) if sub else "-" for k in keys]
            table.add_row(attribute if index == 0 else "", str(count) if index == 0 else "",
                          tracker, *cells, end_section=index == len(results) - 1)
    return table


def print_report(scored: Scored, console: Any = None, attributes: bool = True) -> None:
    """Print the per-dataset tables, the attribute tables and (several datasets) the overview."""
    if console is None:
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
