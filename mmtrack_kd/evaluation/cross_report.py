"""One report over many runs, datasets and modalities: ``mmtrack-kd report``.

Each ``evaluate`` writes its own ``report.json``; this module reads several of them (run
folders, their ``eval`` folders or the files themselves) and writes one comparison in one
naming scheme:

* ``report.md``: a Markdown table of every tracker on every dataset with its protocol's
  headline score by name (``Protocol.headline_score``: SR, MSR or F, as the protocol says),
  then each dataset's full scores. Every number is in percent; Markdown stays
  readable at 80 columns in a terminal and renders as a table on GitHub.
* ``report.json``: the same rows with every score, attribute scores and sequence counts, in
  percent, with the unit stated once.
* ``figures/<dataset>.png``: one figure sheet per dataset (:func:`~.plots.figure_sheet`).

A dataset is told apart by its name and its protocol, so one dataset plugin's data scored with
three protocols (the demos' ``synthetic`` data in three benchmarks' layouts) is three datasets. The modality of a run comes
from the ``recipe.yaml`` beside its evaluation.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from mmtrack_kd.console import console, error_console
from mmtrack_kd.data.results_io import atomic_write_text
from mmtrack_kd.errors import DataError
from mmtrack_kd.evaluation.plots import figure_sheet
from mmtrack_kd.evaluation.protocols import get_protocol
from mmtrack_kd.evaluation.report import UNIT, format_score
from mmtrack_kd.evaluation.result import ProtocolResult

REPORT_FILE = "report.json"


@dataclass(frozen=True)
class Entry:
    """One tracker's result on one dataset, with where it came from."""

    dataset: str
    modality: str
    tracker: str
    result: ProtocolResult
    source: Path

    @property
    def protocol(self) -> str:
        return self.result.protocol

    @property
    def label(self) -> str:
        """The dataset as the report names it: its name where its protocol has the same name,
        else ``<dataset> (<protocol>)``."""
        return self.dataset if self.dataset == self.protocol else f"{self.dataset} ({self.protocol})"


def report_file(path: str | os.PathLike[str]) -> Path:
    """The ``report.json`` of a run folder (``<run>/eval/report.json``), an evaluation folder
    or the file itself.

    Raises:
        DataError: none of them exists (the message says where it looked).
    """
    path = Path(path)
    candidates = [path] if path.suffix == ".json" else [path / REPORT_FILE, path / "eval" / REPORT_FILE]
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    looked = " or ".join(str(c) for c in candidates)
    raise DataError(f"{path}: no evaluation report (looked for {looked}; run `mmtrack-kd evaluate` "
                    "on the run first)")


def run_modality(report: Path) -> str:
    """The auxiliary modality of the run a report belongs to (``recipe.yaml`` beside the report
    or one folder up); ``-`` when no recipe says."""
    for folder in (report.parent, report.parent.parent):
        recipe = folder / "recipe.yaml"
        if recipe.is_file():
            try:
                modality = (yaml.safe_load(recipe.read_text(encoding="utf-8")) or {}).get("modality")
            except (OSError, yaml.YAMLError):
                return "-"
            name = modality.get("name") if isinstance(modality, dict) else modality
            return str(name) if name else "-"
    return "-"


def load_entries(path: str | os.PathLike[str]) -> list[Entry]:
    """Every tracker on every dataset of one ``report.json``.

    Raises:
        DataError: no report, or one that is not an evaluation report (the file named).
    """
    file = report_file(path)
    try:
        data = json.loads(file.read_text(encoding="utf-8"))
        datasets = data["datasets"]
        modality = run_modality(file)
        return [Entry(dataset, modality, tracker, ProtocolResult.from_dict(result), file)
                for dataset, trackers in datasets.items() for tracker, result in trackers.items()]
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise DataError(f"{file}: not an mmtrack-kd evaluation report ({type(error).__name__}: "
                        f"{error})") from None


def collect(paths: Sequence[str | os.PathLike[str]]) -> tuple[list[Entry], list[str]]:
    """The entries of every path, and one problem message per path that could not be read (a
    bad path does not hide the others). A tracker name that two reports share on the same
    dataset is prefixed with its report's folder."""
    entries: list[Entry] = []
    problems: list[str] = []
    for path in paths:
        try:
            entries += load_entries(path)
        except DataError as error:
            problems.append(str(error))
    seen: dict[tuple[str, str], int] = {}
    for entry in entries:
        key = (entry.label, entry.tracker)
        seen[key] = seen.get(key, 0) + 1
    return [
        entry if seen[(entry.label, entry.tracker)] == 1 else
        Entry(entry.dataset, entry.modality, f"{_owner(entry.source)}/{entry.tracker}", entry.result,
              entry.source)
        for entry in entries
    ], problems


def _owner(report: Path) -> str:
    """The run a report belongs to: ``runs/demo/eval/report.json`` -> ``demo``."""
    folder = report.parent
    return folder.parent.name if folder.name == "eval" else folder.name


def by_dataset(entries: Sequence[Entry]) -> dict[str, dict[str, ProtocolResult]]:
    """Dataset label -> tracker -> result, in the order the entries came."""
    out: dict[str, dict[str, ProtocolResult]] = {}
    for entry in entries:
        out.setdefault(entry.label, {})[entry.tracker] = entry.result
    return out


def _markdown_table(header: list[str], rows: list[list[str]], right: set[int]) -> list[str]:
    widths = [max(len(str(cell)) for cell in column) for column in zip(header, *rows)]

    def line(cells: list[str]) -> str:
        return "| " + " | ".join(
            c.rjust(w) if i in right else c.ljust(w) for i, (c, w) in enumerate(zip(cells, widths))
        ) + " |"

    rule = "|" + "|".join(("-" * (w + 1) + ":") if i in right else ("-" * (w + 2))
                          for i, w in enumerate(widths)) + "|"
    return [line(header), rule] + [line(row) for row in rows]


def markdown(entries: Sequence[Entry]) -> str:
    """The report as Markdown: the headline table, then each dataset's scores (percent)."""
    lines = ["# Cross-modality report (every score in percent)", "",
             "Headline score of each dataset's protocol:", ""]
    rows = []
    for entry in entries:
        key = get_protocol(entry.protocol).headline_score
        rows.append([entry.tracker, entry.label, entry.modality, key,
                     format_score(entry.result.scores.get(key, float("nan")))])
    lines += _markdown_table(["tracker", "dataset", "aux", "score", UNIT], rows, {4})
    for label, results in by_dataset(entries).items():
        protocol = next(iter(results.values())).protocol
        keys = list(dict.fromkeys(k for r in results.values() for k in r.scores))
        lines += ["", f"## {label}: {protocol} protocol ({UNIT})", ""]
        table = [[tracker, *[format_score(r.scores.get(k, float("nan"))) for k in keys],
                  str(len(r.sequences))] for tracker, r in results.items()]
        lines += _markdown_table(["tracker", *keys, "seqs"], table, set(range(1, len(keys) + 2)))
    return "\n".join(lines) + "\n"


def _percent(scores: dict[str, float]) -> dict[str, float | None]:
    return {k: None if v != v else round(100 * v, 4) for k, v in scores.items()}


def report_dict(entries: Sequence[Entry]) -> dict[str, Any]:
    """Plain data of the report: one row per tracker and dataset, scores in percent."""
    rows = []
    for entry in entries:
        protocol = get_protocol(entry.protocol)
        key = protocol.headline_score
        value = entry.result.scores.get(key, float("nan"))
        rows.append({
            "tracker": entry.tracker,
            "dataset": entry.dataset,
            "protocol": entry.protocol,
            "modality": entry.modality,
            "headline": {"name": key, "value": None if value != value else round(100 * value, 4)},
            "scores": _percent(entry.result.scores),
            "sequences": len(entry.result.sequences),
            "attributes": {
                name: {"sequences": len(sub.sequences), "scores": _percent(sub.scores)}
                for name, sub in entry.result.per_attribute.items()
            },
            "source": str(entry.source),
        })
    return {"unit": "percent", "rows": rows}


def _file_name(label: str) -> str:
    """``synthetic (depthtrack)`` -> ``synthetic-depthtrack``."""
    return re.sub(r"[^A-Za-z0-9_.]+", "-", label).strip("-") or "dataset"


def write_report(
    entries: Sequence[Entry], out: str | os.PathLike[str], figures: bool = True
) -> dict[str, Path]:
    """Write ``report.md``, ``report.json`` and (``figures``) one sheet per dataset under
    ``out``; returns what was written (``"markdown"``, ``"json"``, ``"figure:<dataset>"``)."""
    out = Path(out)
    written = {
        "markdown": atomic_write_text(out / "report.md", markdown(entries)),
        "json": atomic_write_text(out / REPORT_FILE,
                                  json.dumps(report_dict(entries), indent=1, allow_nan=False) + "\n"),
    }
    if figures:
        modalities: dict[str, set[str]] = {}
        for entry in entries:
            modalities.setdefault(entry.label, set()).add(entry.modality)
        for label, results in by_dataset(entries).items():
            aux = ", ".join(sorted(modalities[label] - {"-"})) or "modality unknown"
            written[f"figure:{label}"] = figure_sheet(
                f"{label}: RGB + {aux} (scores in %)", results, out / "figures" / f"{_file_name(label)}.png")
    return written


def run_report(
    paths: Sequence[str | os.PathLike[str]], out: str | os.PathLike[str] | None = None,
    figures: bool = True,
) -> int:
    """``mmtrack-kd report``: read every path's evaluation report, print the Markdown, write
    the files. Paths that cannot be read are listed after the report (exit status 2); with none
    readable nothing is written.

    Raises:
        DataError: no path holds a report (every problem listed).
    """
    entries, problems = collect(paths)
    if not entries:
        raise DataError("no evaluation report to compare:\n" + "\n".join(f"  {p}" for p in problems))
    out = Path(out) if out is not None else Path("report")
    text = markdown(entries)
    # Plain text, not rich markup: the Markdown is copy-pasteable and wraps nowhere.
    console.print(text, markup=False, highlight=False, soft_wrap=True)
    for what, path in write_report(entries, out, figures).items():
        console.print(f"wrote {what.split(':')[0]}: {path}", markup=False, highlight=False)
    for problem in problems:
        error_console.print(f"error: {problem}", markup=False, highlight=False, soft_wrap=True)
    return 2 if problems else 0
