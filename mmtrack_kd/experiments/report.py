"""The markdown report of the experiment records: the claims read from measured noise, tables
shaped like the paper's Tables 3, 4, 5 and Table 1's teacher / student rows (our figures beside
the paper's), per-attribute results for the modality-switch attributes, the per-frame stream
check, sizes, samples and wall time per arm, and the provenance of each record.

The report is a pure function of the arms table and the records (:func:`write_report`): run on
the committed ``results.json`` it writes the committed ``results.md`` byte for byte.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from mmtrack_kd.evaluation.published import published_scores
from mmtrack_kd.experiments.analysis import (PR_PIXELS, RELIANCE_MARGIN, fast_evaluations, finite, finite_mean,
                                             format_stats, headline, records_of, reliance_flag,
                                             retrained_teacher_reading, summary_keys, teacher_file)
from mmtrack_kd.experiments.arms import ArmsTable
from mmtrack_kd.experiments.claims import CLAIMS, Z_95, read_claim, training_runs

#: The hand-written reading of a report, beside it; the report links it when it is there.
READING_NAME = "results-reading.md"

#: The paper's ablation tables (percent), not in published.json. Table 3 and Table 5 are on
#: LasHeR (PR / SR), Table 4 on RGBT234 (MPR / MSR, printed as PR / SR). Each row: the key an
#: arm names in its ``paper`` entry, the row's label, the paper's numbers.
PAPER_TABLES: dict[str, dict[str, Any]] = {
    "table3": {
        "title": "Table 3 - teacher components (paper: LasHeR)",
        "benchmark": "LasHeR",
        "rows": [
            ("baseline", "RGB-only baseline", {"PR": 61.0, "SR": 48.3}),
            ("no-spatial", "teacher without spatial attention", {"PR": 67.3, "SR": 53.5}),
            ("no-token", "teacher without token attention", {"PR": 67.4, "SR": 53.6}),
            ("no-history", "teacher without history", {"PR": 71.0, "SR": 56.4}),
            ("full", "full teacher", {"PR": 71.2, "SR": 56.5}),
        ],
    },
    "table4": {
        "title": "Table 4 - distillation strategies (paper: RGBT234, MPR / MSR)",
        "benchmark": "RGBT234",
        "rows": [
            ("none", "no KD (FOST)", {"PR": 75.6, "SR": 55.7}),
            ("response", "response KD only", {"PR": 82.9, "SR": 62.0}),
            ("feature", "feature KD only", {"PR": 86.9, "SR": 64.7}),
            ("both", "response + feature KD", {"PR": 87.3, "SR": 65.1}),
        ],
    },
    "table5": {
        "title": "Table 5 - distilled layers (paper: LasHeR; 'first/last 6 of 12' = our halves)",
        "benchmark": "LasHeR",
        "rows": [
            ("first-half", "first half of the layers", {"PR": 70.6, "SR": 56.1}),
            ("second-half", "second half of the layers", {"PR": 70.8, "SR": 56.2}),
            ("all", "all layers", {"PR": 69.7, "SR": 55.4}),
            ("even", "even layers", {"PR": 71.4, "SR": 56.7}),
        ],
    },
}


def write_report(table: ArmsTable, records: list[dict[str, Any]], path: Path, command: str,
                 seeds: Sequence[int], reduced: bool, missing: list[str],
                 superseded: Sequence[dict[str, Any]] = ()) -> Path:
    """Write the markdown report of ``records`` to ``path``; ``missing``: planned job ids without
    a record; ``superseded``: the entries of
    :func:`mmtrack_kd.experiments.running.load_superseded`, listed with their scores and why they
    were run again."""
    lines = _preamble(records, path, command, seeds, reduced, missing, superseded)
    lines += _claims_section(records)
    lines += ["## Tables shaped like the paper's", ""]
    for key in ("table3", "table4", "table5"):
        lines += paper_table(key, table, records)
    lines += _table1_section(table, records)
    lines += _switch_attributes_section(table, records)
    lines += _stream_reliance_section(table, records)
    lines += _arms_section(table, records)
    lines += _provenance_section(records)
    lines += ["", f"Raw per-arm results: `{path.with_name('results.json').name}` beside this file.", ""]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines), encoding="utf-8")
    return path


# --------------------------------------------------------------------------- sections


def _preamble(records: list[dict[str, Any]], path: Path, command: str, seeds: Sequence[int], reduced: bool,
              missing: list[str], superseded: Sequence[dict[str, Any]]) -> list[str]:
    """Title, command, how to read the numbers, and what is missing, retrained or set aside."""
    lines = ["# Small-scale check of the paper's claims (synthetic benchmark)", ""]
    if reduced:
        lines += ["> **REDUCED setting** (CI smoke run: a handful of steps on tiny data). "
                  "These numbers mean nothing.", ""]
    lines += [
        "Produced by:", "", "```", command, "```", "",
        "Each arm's record in `results.json` was written by the run that trained and scored it "
        "(possibly in an earlier invocation or session); the command, run again, trains only the "
        "arms that have not finished.", "",
        f"Seeds: {', '.join(str(s) for s in seeds)} (main RGB-T arms run every seed; the other "
        "modalities and the ablations the first, unless an arm is marked to run every seed). "
        "Spread: mean (min-max, n) over seeds. "
        "Claims are read against measured noise (see the reading of the claims). "
        "Our numbers come from synthetic data in the real benchmarks' layouts and protocols: "
        "they are NOT comparable in level with the paper's, only the direction and size of the "
        "differences between arms are. Table 4's paper numbers are on RGBT234 (MPR / MSR); ours "
        "on the synthetic RGB-T (LasHeR protocol) test set. Every arm is scored with its "
        "`best.pt`, picked among its epochs by the validation loss on pairs drawn from the "
        "test sequences (the synthetic benchmark has no separate validation split): a mild "
        "selection on test data, the same for every arm.", "",
    ]
    reading = path.with_name(READING_NAME)
    if reading.is_file():
        lines += [f"What these numbers say, and what limits them: `{reading.name}` beside this file "
                  "(written by hand, against the records it names; this file is regenerated).", ""]
    extras = sorted({o for r in records for o in r.get("extra_overrides", [])})
    if extras:
        lines += [f"Overrides applied to every arm: {', '.join(f'`{o}`' for o in extras)}.", ""]
    if missing:
        lines += [f"Not run yet: {', '.join(missing)}.", ""]

    retrained = sorted({r["id"] for r in records if r.get("teacher_retrained")})
    if retrained:
        lines += [f"Retrained teachers: {', '.join(retrained)} started from or distilled from a teacher trained again "
                  "(same recipe and seed) because the first teacher's checkpoint was lost with an "
                  "earlier machine. Training is not bit-reproducible across machines, so that is a "
                  "different teacher: the arms table gives its file and its own score, and a claim "
                  "whose two arms used different teacher files says so.", ""]
    if superseded:
        lines += ["Run again (`--rerun`); the earlier records are kept in `results.json` under "
                  "`superseded` and not used in any table:", ""]
        for entry in superseded:
            old = entry["record"]
            head = headline(old)
            scores = " / ".join(f"{k} {v:.1f}" for k, v in head.items()) or "no score"
            lines.append(f"- {old['id']} (set aside {entry['at']}): {scores}; teacher file "
                         f"{teacher_file(old) or '-'}. Why: {entry['reason']}")
        lines.append("")
    return lines


def _claims_section(records: list[dict[str, Any]]) -> list[str]:
    """How claims are read, one line per claim of :data:`CLAIMS`, and the main arms' spread."""
    lines = ["## Reading of the claims", "",
             "Each claim compares two arms on the seeds both have run (paired), so a one-seed "
             "ablation is read against the same seed of the full arm. Its interval (about 95%, "
             f"the difference +- {Z_95} standard errors) comes from measured noise: the spread of "
             "each arm over its separate training runs (seeds, and a teacher's retrained files), "
             "and a paired bootstrap over the test sequences where the records keep per-sequence "
             "scores. A claim holds (or is reversed) only when the interval excludes zero on two "
             "or more seeds; on one seed the same finding is suggestive at most. A 'nearly "
             "matches' claim holds when no gap is resolved; a gap above it is not a match either.", ""]
    lines += [read_claim(records, claim).line for claim in CLAIMS]
    spreads = []
    for arm in ("baseline", "teacher", "fost", "student"):
        values = training_runs(records, "rgbt", arm, None)
        if len(values) > 1:
            spreads.append(f"{arm} {max(values) - min(values):.1f} (sd {statistics.stdev(values):.1f}, "
                           f"{len(values)} runs)")
    if spreads:
        lines += ["", "Spread of the main RGB-T arms over their training runs (max - min PR, same data "
                  f"and recipe; a teacher's retrained files count as runs): {', '.join(spreads)} points."]
    lines += ["", "(DepthTrack-protocol arms are read on F; the others on PR.)", ""]
    return lines


def paper_table(key: str, table: ArmsTable, records: list[dict[str, Any]]) -> list[str]:
    """One of :data:`PAPER_TABLES` with our RGB-T arms beside the paper's rows: the arm whose
    ``paper`` entry names the row, its PR and SR over the seeds run, and those seeds."""
    spec = PAPER_TABLES[key]
    lines = [f"### {spec['title']}", "",
             "| row | our arm | ours PR | ours SR | paper PR | paper SR | seeds |",
             "|---|---|---:|---:|---:|---:|---|"]
    for row, label, paper in spec["rows"]:
        arms = [a for a in table.arms.values() if a.paper.get(key) == row]
        arm = arms[0].name if arms else None
        rs = records_of(records, "rgbt", arm) if arm else []
        pr = [headline(r).get("PR") for r in rs]
        sr = [headline(r).get("SR") for r in rs]
        lines.append(f"| {label} | {arm or '(none)'} | {format_stats(pr)} | {format_stats(sr)} | "
                     f"{paper['PR']:.1f} | {paper['SR']:.1f} | "
                     f"{', '.join(str(r['seed']) for r in rs) or 'not run'} |")
    lines.append("")
    return lines


def _table1_section(table: ArmsTable, records: list[dict[str, Any]]) -> list[str]:
    """Table 1's teacher and student rows (plus FOST) per modality, beside the published ones."""
    lines = ["### Table 1 - teacher and student rows (plus FOST), per modality", "",
             "| modality | arm | ours | paper (teacher / student) | seeds |", "|---|---|---|---|---|"]
    for key, modality in table.modalities.items():
        try:
            paper = published_scores(modality.benchmark)
        except KeyError:
            paper = {}
        for arm, row in (("teacher", "Ours-Teacher"), ("student", "Ours-Student"), ("fost", None)):
            rs = records_of(records, key, arm)
            heads = [headline(r) for r in rs]
            names = [k for k in ("PR", "SR", "Pr", "Re", "F") if heads and k in heads[0]]
            ours = ", ".join(f"{k} {format_stats([h.get(k) for h in heads])}" for k in names) or "not run"
            pub = paper.get(row, {}) if row else {}
            pub_text = ", ".join(f"{k} {100 * v:.1f}" for k, v in pub.items()) if pub else (
                "-" if row is None else "no numbers printed")
            lines.append(f"| {key} ({modality.benchmark}) | {arm} | {ours} | {pub_text} | "
                         f"{', '.join(str(r['seed']) for r in rs) or '-'} |")
    lines.append("")
    return lines


def _switch_attributes_section(table: ArmsTable, records: list[dict[str, Any]]) -> list[str]:
    """Per modality, each arm's mean scores on the sequences with each modality-switch attribute."""
    lines = ["## Modality-switch attributes (PR / SR, or F, on the sequences with the attribute)", ""]
    for key, modality in table.modalities.items():
        rs_mod = [r for r in records if r["modality"] == key]
        if not rs_mod:
            continue
        attrs = list(modality.switch_attributes)
        lines += [f"### {key}", "", "| arm | " + " | ".join(attrs) + " |", "|---|" + "---:|" * len(attrs)]
        for arm in dict.fromkeys(r["arm"] for r in rs_mod):
            rs = records_of(records, key, arm)
            protocol = next(iter(rs[0]["evaluation"].values())).get("protocol")
            cells = []
            for attr in attrs:
                vals: dict[str, list[float]] = {}
                for r in rs:
                    per = next(iter(r["evaluation"].values()))["per_attribute"].get(attr)
                    if per:
                        for k, v in per["scores"].items():
                            if finite(v) is not None:
                                vals.setdefault(k, []).append(100 * float(v))
                main = [k for k in summary_keys(vals, protocol) if k in vals]
                cells.append(" / ".join(f"{statistics.fmean(vals[k]):.1f}" for k in main) if main else "-")
            lines.append(f"| {arm} | " + " | ".join(cells) + " |")
        lines.append("")
    return lines


def _stream_reliance_section(table: ArmsTable, records: list[dict[str, Any]]) -> list[str]:
    """Each arm's precision on RGB-only, auxiliary-only and shared frames, with its flag."""
    lines = ["## Which stream does each arm rely on? (per-frame, synthetic truth)", "",
             f"Precision (centre error <= {PR_PIXELS:.0f} px) over the frames where only RGB shows the "
             "target (the auxiliary stream's spell), only the auxiliary stream shows it (an RGB "
             "spell), or both. A two-stream model that learnt the easier stream first and "
             "under-uses RGB is low on *RGB-only* frames; the RGB-only baseline shows what RGB "
             "alone achieves there. Flags (descriptions, not verdicts): *under-uses RGB* more than "
             f"{RELIANCE_MARGIN:.0f} points below the baseline on RGB-only frames, *leans on the auxiliary "
             f"stream* more than {2 * RELIANCE_MARGIN:.0f} points below its own aux-only precision.", "",
             "| modality | arm | RGB-only frames | aux-only frames | both | flag |", "|---|---|---:|---:|---:|---|"]
    baseline_rgb: dict[str, list[float]] = {}
    for r in records:
        if r["arm"] == "baseline":
            sr = next(iter(r["evaluation"].values())).get("stream_reliance") or {}
            baseline_rgb.setdefault(r["modality"], []).append(100 * sr.get("rgb", {}).get("PR", float("nan")))
    for key in table.modalities:
        for arm in dict.fromkeys(r["arm"] for r in records if r["modality"] == key):
            rs = records_of(records, key, arm)
            cols = {}
            frames = {}
            for kind in ("rgb", "aux", "both"):
                vals = []
                for r in rs:
                    sr = next(iter(r["evaluation"].values())).get("stream_reliance") or {}
                    if kind in sr and finite(sr[kind]["PR"]) is not None:
                        vals.append(100 * sr[kind]["PR"])
                        frames[kind] = sr[kind]["frames"]
                cols[kind] = vals
            flag = "" if arm == "baseline" else reliance_flag(
                finite_mean(cols["rgb"]), finite_mean(cols["aux"]), finite_mean(baseline_rgb.get(key, [])))
            lines.append(f"| {key} | {arm} | {format_stats(cols['rgb'])} [{frames.get('rgb', 0)} fr] | "
                         f"{format_stats(cols['aux'])} [{frames.get('aux', 0)} fr] | "
                         f"{format_stats(cols['both'])} | {flag} |")
    lines.append("")
    return lines


def _teacher_cell(record: dict[str, Any]) -> str:
    """The arms table's teacher-file cell: the file's hash, and whether it was retrained (with
    that file's own score)."""
    file = teacher_file(record)
    if file is None:
        return "-"
    if file == "unrecorded":
        return "first teacher run (file not hashed)"
    cell = f"`{file[:8]}`"
    if record.get("teacher_retrained"):
        reading = retrained_teacher_reading(record)
        cell += " retrained" + (f" (its {reading[0]} {reading[1]:.1f})" if reading is not None else "")
    return cell


def _arms_section(table: ArmsTable, records: list[dict[str, Any]]) -> list[str]:
    """Size, training samples, wall time and teacher file per record; suspect evaluations; each
    arm's overrides."""
    lines = ["## Arms: size, training samples, wall time", "",
             "| id | description | stage | parameters | training samples | train min | eval min | test seqs / frames | teacher file |",
             "|---|---|---|---:|---:|---:|---:|---:|---|"]
    for r in records:
        ev = next(iter(r["evaluation"].values()))
        params = f"{r['parameters'] / 1e6:.2f} M" if r.get("parameters") else "-"
        lines.append(f"| {r['id']} | {r['description']} | {r['stage']} | {params} | "
                     f"{r.get('samples') or '-'} | {r['train_s'] / 60:.1f} | {r['eval_s'] / 60:.1f} | "
                     f"{ev['sequences']} / {ev['frames']} | {_teacher_cell(r)} |")
    if fast := fast_evaluations(records):
        lines += ["", f"Evaluations far faster than the other arms of their stage (under a fifth of the "
                  f"median), whose boxes may have been reused from another model's result folder: "
                  f"{', '.join(fast)}. Their scores are not to be trusted until they are run again."]
    lines += ["", "Arm overrides (on `recipes/experiments/base-<modality>.yaml`):", ""]
    for arm in table.arms.values():
        lines.append(f"- `{arm.name}` ({arm.stage}; {', '.join(arm.modalities)}; {arm.group}"
                     f"{'; teacher: ' + arm.teacher if arm.teacher else ''}): "
                     f"{', '.join(f'`{o}`' for o in arm.overrides) or 'base recipe'}")
    return lines


def provenance_row(record: dict[str, Any]) -> str:
    """One row of the report's provenance table: the machine, commit and torch version a record
    names, and its per-epoch losses (see :func:`mmtrack_kd.experiments.running.provenance` and
    :func:`mmtrack_kd.experiments.running.epoch_losses`); ``not recorded`` where a record has
    no such field."""
    missing = "not recorded"
    machine = record.get("machine")
    machine_text = (f"{machine.get('cpu')}, {machine.get('threads')} threads of {machine.get('cpus')} CPUs"
                    if machine else missing)
    commit = record.get("commit")
    commit_text = f"`{commit[:12]}{'+dirty' if commit.endswith('+dirty') else ''}`" if commit else (
        "no git checkout" if "commit" in record else missing)
    epochs = record.get("epochs") or []

    def span(key: str) -> str:
        values = [(e["epoch"], e[key]) for e in epochs if e.get(key) is not None]
        if not values:
            return missing
        text = f"{values[0][1]:.3f} -> {values[-1][1]:.3f}"
        if key == "val_loss":
            best = min(values, key=lambda item: item[1])
            text += f" (epoch {best[0]}: {best[1]:.3f})"
        return text

    train = f"{len(epochs)}: {span('train_loss')}" if epochs else missing
    return (f"| {record['id']} | {machine_text} | {commit_text} | {record.get('torch') or missing} | "
            f"{train} | {span('val_loss') if epochs else missing} |")


def _provenance_section(records: list[dict[str, Any]]) -> list[str]:
    """The provenance table: one :func:`provenance_row` per record."""
    lines = ["", "## Provenance of each record", "",
             "The machine that trained and scored each arm, the commit it ran and the losses per "
             "epoch, as its record holds them (records written before these were kept: *not "
             "recorded*). This file can be regenerated anywhere; the machine that regenerates it "
             "is not named.", "",
             "| id | machine (CPU, threads) | commit | torch | epochs: train loss first -> last | val loss first -> last (best) |",
             "|---|---|---|---|---|---|"]
    return lines + [provenance_row(r) for r in records]
