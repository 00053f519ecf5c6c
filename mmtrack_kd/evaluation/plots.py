"""Precision / success plots (PNG) as the OTB-style toolkits draw them, and per-attribute bars.

Every curve a protocol returns is plotted with all compared trackers; the legend gives each
tracker's score as the toolkits do (``[71.2] student``), trackers sorted best first. The
score in the legend is the protocol's headline number belonging to that curve.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from mmtrack_kd.evaluation.result import ProtocolResult

#: Curve key -> headline score keys that summarise it (the first one present is used).
CURVE_SCORE = {
    "precision": ("PR", "MPR"),
    "normalized_precision": ("NPR",),
    "success": ("SR", "MSR"),
    "recall": ("Re",),
    "f_score": ("F",),
}
TITLES = {
    "precision": "Precision plot",
    "normalized_precision": "Normalised precision plot",
    "success": "Success plot",
    "recall": "Recall",
    "f_score": "F-score",
}


def _pyplot():  # noqa: ANN202
    import matplotlib

    matplotlib.use("Agg")  # files only, never a window
    import matplotlib.pyplot as plt

    return plt


def _safe(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name)


def _legend_score(result: ProtocolResult, curve: str) -> float:
    for key in CURVE_SCORE.get(curve, ()):
        if key in result.scores:
            return float(result.scores[key])
    return float(np.nanmean(result.curves[curve].mean))


def curve_plot(
    dataset: str, curve: str, results: Mapping[str, ProtocolResult], path: str | os.PathLike[str]
) -> Path:
    """One curve (``"precision"``, ``"success"``, ...) of every tracker in one PNG."""
    plt = _pyplot()
    ranked = sorted(
        ((name, r) for name, r in results.items() if curve in r.curves),
        key=lambda item: -_legend_score(item[1], curve),
    )
    fig, ax = plt.subplots(figsize=(5.5, 4.5), dpi=120)
    for name, result in ranked:
        c = result.curves[curve]
        x = np.asarray(c.thresholds, dtype=np.float64)
        finite = np.isfinite(x)
        score = _legend_score(result, curve)
        label = f"[{score:.3f}] {name}" if result.protocol == "depthtrack" else f"[{100 * score:.1f}] {name}"
        ax.plot(x[finite], np.asarray(c.mean)[finite], linewidth=2, label=label)
        c_label, y_label = c.x_label, c.y_label
    if ranked:
        ax.set_xlabel(c_label)
        ax.set_ylabel(y_label)
        ax.legend(loc="lower right" if curve != "recall" else "best", fontsize=8)
    protocol = ranked[0][1].protocol if ranked else ""
    ax.set_title(f"{TITLES.get(curve, curve)} - {dataset} ({protocol})")
    ax.set_ylim(0, 1.02)
    ax.grid(True, alpha=0.3)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def attribute_plot(
    dataset: str, results: Mapping[str, ProtocolResult], path: str | os.PathLike[str],
    score: str | None = None,
) -> Path | None:
    """Grouped bars: one group per attribute, one bar per tracker, of one headline score (the
    protocol's last, i.e. SR / MSR / F, by default). ``None`` when no attribute was scored."""
    attributes = list(dict.fromkeys(a for r in results.values() for a in r.per_attribute))
    if not attributes:
        return None
    first = next(iter(results.values()))
    score = score or list(first.scores)[-1]
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(max(5.0, 0.6 * len(attributes) * max(1, len(results))), 4), dpi=120)
    width = 0.8 / max(1, len(results))
    x = np.arange(len(attributes))
    for index, (name, result) in enumerate(results.items()):
        values = [result.per_attribute[a].scores.get(score, np.nan) if a in result.per_attribute
                  else np.nan for a in attributes]
        ax.bar(x + index * width - 0.4 + width / 2, values, width, label=name)
    ax.set_xticks(x, attributes, rotation=45, ha="right")
    ax.set_ylabel(score)
    ax.set_ylim(0, 1)
    ax.set_title(f"{dataset}: {score} per attribute")
    ax.legend(fontsize=8)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def write_plots(
    scored: Mapping[str, Mapping[str, ProtocolResult]], folder: str | os.PathLike[str]
) -> list[Path]:
    """Every curve plot and the attribute plot of each dataset: ``<folder>/<dataset>_<curve>.png``
    and ``<dataset>_attributes.png``; returns the paths written."""
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
    return written
