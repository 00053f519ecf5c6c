"""Precision / success plots (PNG) as the OTB-style toolkits draw them, per-attribute bars, and
one figure sheet per dataset for reports.

Every curve a protocol returns is plotted with all compared trackers; the legend gives each
tracker's score as the toolkits do (``[71.2] student``), trackers sorted best first. The
score in the legend is the protocol's headline number belonging to that curve
(``Protocol.curve_scores``); legends and score axes are in percent.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from mmtrack_kd.evaluation.protocols import Panel, get_protocol
from mmtrack_kd.evaluation.result import ProtocolResult

TITLES = {
    "precision": "Precision plot",
    "normalized_precision": "Normalised precision plot",
    "success": "Success plot",
    "recall": "Recall",
    "f_score": "F-score",
}


def _pyplot():  # noqa: ANN202
    # matplotlib loads in about a second: only when a figure is drawn, not with the reports
    import matplotlib

    matplotlib.use("Agg")  # files only, never a window
    import matplotlib.pyplot as plt

    return plt


def _safe(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name)


def legend_score(result: ProtocolResult, curve: str) -> float:
    """The headline score that summarises ``curve`` as the result's protocol says
    (``Protocol.curve_scores``: one protocol's precision is ``Pr``, another's ``PR``); the
    curve's mean for a curve without one."""
    key = get_protocol(result.protocol).curve_scores.get(curve)
    if key is not None and key in result.scores:
        return float(result.scores[key])
    return float(np.nanmean(result.curves[curve].mean))


def percent_label(label: str) -> str:
    """An axis label of a fraction, as the percent the plot shows (``Success rate (%)``)."""
    return f"{label} (%)"


def curve_plot(
    dataset: str, curve: str, results: Mapping[str, ProtocolResult], path: str | os.PathLike[str]
) -> Path:
    """One curve (``"precision"``, ``"success"``, ...) of every tracker in one PNG."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(5.5, 4.5), dpi=120)
    protocol = next((r.protocol for r in results.values() if curve in r.curves), "")
    _panel_axes(ax, Panel(curve, f"{TITLES.get(curve, curve)} - {dataset} ({protocol})"), results)
    return _save(fig, path)


def _save(fig, path: str | os.PathLike[str]) -> Path:  # noqa: ANN001 - a matplotlib Figure
    """Write ``fig`` as a PNG at ``path`` (folders created) and close it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path)
    _pyplot().close(fig)
    return path


def attribute_plot(
    dataset: str, results: Mapping[str, ProtocolResult], path: str | os.PathLike[str],
    score: str | None = None,
) -> Path | None:
    """Grouped bars: one group per attribute (with its sequence count), one bar per tracker, of
    one headline score in percent (the protocol's ``headline_score`` by default). ``None`` when
    no attribute was scored."""
    if not any(r.per_attribute for r in results.values()):
        return None
    first = next(iter(results.values()))
    score = score or get_protocol(first.protocol).headline_score
    attributes = {a for r in results.values() for a in r.per_attribute}
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(max(5.0, 0.6 * len(attributes) * max(1, len(results))), 4), dpi=120)
    _attribute_axes(ax, results, score)
    ax.set_title(f"{dataset}: {score} per attribute (sequences in brackets)")
    return _save(fig, path)


def write_plots(
    scored: Mapping[str, Mapping[str, ProtocolResult]], folder: str | os.PathLike[str]
) -> list[Path]:
    """Every curve plot, the attribute plot and the figure sheet (:func:`figure_sheet`: the
    protocol's panels) of each dataset: ``<folder>/<dataset>_<curve>.png``,
    ``<dataset>_attributes.png`` and ``<dataset>_sheet.png``; returns the paths written."""
    folder = Path(folder)
    written: list[Path] = []
    for dataset, results in scored.items():
        if not results:
            continue
        curves = list(dict.fromkeys(k for r in results.values() for k in r.curves))
        for curve in curves:
            written.append(curve_plot(dataset, curve, results, folder / f"{_safe(dataset)}_{curve}.png"))
        bars = attribute_plot(dataset, results, folder / f"{_safe(dataset)}_attributes.png")
        if bars is not None:
            written.append(bars)
        if len({r.protocol for r in results.values()}) == 1:
            protocol = next(iter(results.values())).protocol
            written.append(figure_sheet(f"{dataset} ({protocol} protocol, scores in %)", results,
                                        folder / f"{_safe(dataset)}_sheet.png"))
    return written


def _panel_axes(ax, panel, results: Mapping[str, ProtocolResult]) -> None:  # noqa: ANN001
    """Draw one :class:`~mmtrack_kd.evaluation.protocols.Panel` of every tracker on ``ax``."""
    ranked = sorted(((name, r) for name, r in results.items() if panel.y in r.curves),
                    key=lambda item: -legend_score(item[1], panel.y))
    for name, result in ranked:
        curve = result.curves[panel.y]
        label = f"[{100 * legend_score(result, panel.y):.1f}] {name}"
        if panel.x is not None and panel.x in result.curves:
            ax.plot(100 * result.curves[panel.x].mean, 100 * curve.mean, linewidth=2, label=label)
            x_label = percent_label(result.curves[panel.x].y_label)
        else:
            x = np.asarray(curve.thresholds, dtype=np.float64)
            finite = np.isfinite(x)
            ax.plot(x[finite], 100 * curve.mean[finite], linewidth=2, label=label)
            x_label = curve.x_label
        ax.set_xlabel(x_label)
        ax.set_ylabel(percent_label(curve.y_label))
    if panel.x is not None:
        ax.set_xlim(0, 102)
    ax.set_ylim(0, 102)
    ax.set_title(panel.title, fontsize=10)
    ax.grid(True, alpha=0.3)
    if ranked:
        ax.legend(loc="best", fontsize=7)


def _attribute_axes(ax, results: Mapping[str, ProtocolResult], score: str) -> bool:  # noqa: ANN001
    """Grouped bars of ``score`` per attribute, each attribute labelled with its sequence
    count; False when no attribute was scored."""
    attributes = list(dict.fromkeys(a for r in results.values() for a in r.per_attribute))
    if not attributes:
        ax.set_axis_off()
        ax.text(0.5, 0.5, "no attributes", ha="center", va="center")
        return False
    counts = [max(len(r.per_attribute[a].sequences) for r in results.values() if a in r.per_attribute)
              for a in attributes]
    width = 0.8 / max(1, len(results))
    x = np.arange(len(attributes))
    for index, (name, result) in enumerate(results.items()):
        values = [100 * result.per_attribute[a].scores.get(score, np.nan) if a in result.per_attribute
                  else np.nan for a in attributes]
        ax.bar(x + index * width - 0.4 + width / 2, values, width, label=name)
    ax.set_xticks(x, [f"{a}\n({n})" for a, n in zip(attributes, counts)], fontsize=7)
    ax.set_ylabel(f"{score} (%)")
    ax.set_ylim(0, 100)
    ax.set_title(f"{score} per attribute (sequences in brackets)", fontsize=10)
    ax.legend(fontsize=7)
    return True


def figure_sheet(
    title: str, results: Mapping[str, ProtocolResult], path: str | os.PathLike[str]
) -> Path:
    """One PNG per dataset with the figures its protocol's community expects, every tracker in
    each: the protocol's :attr:`~mmtrack_kd.evaluation.protocols.Protocol.panels` (success and
    precision curves for short-term protocols; precision-recall and F-score over the threshold
    for a VOT long-term one), then the headline score per attribute with each
    attribute's sequence count. Every axis of a score is in percent.

    Args:
        title: the sheet's title (dataset, protocol, modality).
        results: tracker name -> result; all of one protocol.
        path: the PNG to write.
    """
    protocols = {r.protocol for r in results.values()}
    if len(protocols) != 1:
        raise ValueError(f"a figure sheet shows one protocol, got {sorted(protocols)}")
    protocol = get_protocol(protocols.pop())
    panels = protocol.panels
    plt = _pyplot()
    fig, axes = plt.subplots(1, len(panels) + 1, figsize=(5.0 * (len(panels) + 1), 4.4), dpi=110)
    for ax, panel in zip(axes, panels):
        _panel_axes(ax, panel, results)
    _attribute_axes(axes[-1], results, protocol.headline_score)
    fig.suptitle(title)
    return _save(fig, path)
