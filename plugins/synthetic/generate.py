"""Generating a synthetic root: sequences in parallel, atomically, with a manifest.

:func:`ensure_generated` is what the plugin calls: under a lock it checks the root's manifest
(``synthetic.json``) against the options, generates into a temporary sibling folder when the
root is missing or empty (or stale, with ``on_mismatch: regenerate``), then renames it into
place, so a reader never sees a half-written root. Sequence ``i`` of a split depends only on
``(seed, split, i)`` and the options, so the bytes are the same for any number of workers.

Besides the real layout, the root holds ``synthetic_truth/<split>/<name>.json`` per sequence:
the spells, per-frame visibility of the target in each stream, the dominant stream, occlusion
and every object's box. The layout's own files are all the engine reads; the truth files are
for tests and for analyses such as "which stream did the teacher use when".
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import math
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from mmtrack_kd.data import DataError
from plugins.synthetic.layouts import WRITERS
from plugins.synthetic.options import (
    AUX_OF_LAYOUT,
    ContentOptions,
    SyntheticOptions,
    fingerprint,
    generation_options,
)
from plugins.synthetic.render import Renderer
from plugins.synthetic.scene import ScenePlan, plan_sequence

log = logging.getLogger(__name__)

MANIFEST = "synthetic.json"
MANIFEST_FORMAT = "mmtrack-kd-synthetic"
TRUTH_FOLDER = "synthetic_truth"
SPLITS = ("train", "test")
#: A target hidden by more than this share of its area is marked absent.
ABSENT_OCCLUSION = 0.9


def sequence_name(split: str, index: int) -> str:
    """``train_0000``, ``test_0003``, ..."""
    return f"{split}_{index:04d}"


# --------------------------------------------------------------------------- one sequence


def _facts(plan: ScenePlan, occlusion: np.ndarray) -> dict[str, Any]:
    """Layout-independent facts about a rendered sequence, from which each layout derives its
    own attributes: sequence-level flags, and per-frame ``(N,)`` bool arrays under
    ``"frames"`` (for layouts with per-frame tags)."""
    n = plan.n_frames
    boxes = plan.target.boxes
    size = np.sqrt(boxes[:, 2] * boxes[:, 3])
    area = boxes[:, 2] * boxes[:, 3]
    aspect = boxes[:, 2] / boxes[:, 3]
    centre = boxes[:, :2] + boxes[:, 2:] / 2
    step = np.concatenate([[0.0], np.linalg.norm(np.diff(centre, axis=0), axis=1)])
    near = np.zeros(n, dtype=bool)
    for track in plan.tracks:
        if track.role == "distractor" and track.variant in ("colours", "pattern"):
            other = track.boxes[:, :2] + track.boxes[:, 2:] / 2
            near |= np.linalg.norm(other - centre, axis=1) < 2.0 * size
    spell_frames = {kind: np.zeros(n, dtype=bool) for kind in ("dark", "glare", "blur")}
    aux_spell = np.zeros(n, dtype=bool)
    for spell in plan.spells:
        if spell.stream == "rgb":
            spell_frames[spell.kind][spell.start : spell.end] = True
        else:
            aux_spell[spell.start : spell.end] = True
    pan_moves = np.concatenate([[False], np.any(np.diff(plan.pan, axis=0) != 0, axis=1)])
    frames = {
        "partial_occlusion": (occlusion > 0.05) & (occlusion <= ABSENT_OCCLUSION),
        "total_occlusion": occlusion > ABSENT_OCCLUSION,
        "dark": spell_frames["dark"],
        "glare": spell_frames["glare"],
        "blur": spell_frames["blur"],
        "aux_spell": aux_spell,
        "fast_motion": step > 0.3 * size,
        "scale_variation": (area / area[0] > 2.0) | (area / area[0] < 0.5),
        "aspect_ratio_change": (aspect / aspect[0] > 2.0) | (aspect / aspect[0] < 0.5),
        "camera_motion": pan_moves,
        "similar_appearance": near,
    }
    facts: dict[str, Any] = {key: bool(value.any()) for key, value in frames.items()}
    depth = plan.target.depth
    facts.update(
        abrupt_illumination=any(s.kind in ("dark", "glare") and s.ramp == 0 for s in plan.spells),
        low_resolution=bool(math.sqrt(float(area.mean())) < 0.1 * plan.min_side),
        deformation=bool(aspect.max() / aspect.min() > 1.4),
        clutter=bool(plan.clutter >= 1.0),
        depth_change=bool(depth.max() / depth.min() > 1.3),
        frames=frames,
    )
    return facts


def _dominant(rgb: np.ndarray, aux: np.ndarray, visible: np.ndarray) -> list[str]:
    """Per frame, which stream shows the target: ``both``, ``rgb``, ``aux`` or ``none``."""
    out = []
    for r, a, v in zip(rgb >= 0.5, aux >= 0.5, visible):
        out.append("none" if not v or not (r or a) else "both" if r and a else "rgb" if r else "aux")
    return out


def make_renderer(plan: ScenePlan, content: ContentOptions) -> Renderer:
    """The renderer of ``plan``. Noise and events draw from a generator of their own, so the
    plan does not depend on them (and a test can render a modified plan with the same noise)."""
    noise_rng = np.random.default_rng(np.random.SeedSequence([*plan.seed_words, 7]))
    return Renderer(plan, noise_rng, content.event_threshold)


def generate_sequence(
    root: Path, layout: str, split: str, index: int, generation: dict[str, Any]
) -> dict[str, Any]:
    """Plan, render and write sequence ``index`` of ``split`` under ``root``; returns its summary
    (name, attributes, spells) for the manifest."""
    content = ContentOptions.model_validate(generation["content"])
    name = sequence_name(split, index)
    plan = plan_sequence(
        name,
        generation["seed"],
        split,
        index,
        layout,
        generation["frames"],
        generation["width"],
        generation["height"],
        content,
    )
    renderer = make_renderer(plan, content)
    writer_cls = WRITERS[layout]
    writer = writer_cls(root, split, plan, content.jpeg_quality)
    occlusion = np.zeros(plan.n_frames)
    for k in range(plan.n_frames):
        frame = renderer.frame(k)
        occlusion[k] = frame.occlusion
        writer.write_frame(k, frame)
    visible = occlusion <= ABSENT_OCCLUSION
    facts = _facts(plan, occlusion)
    attributes = writer.finish(plan.target.boxes, visible, facts)
    truth = {
        "name": name,
        "split": split,
        "layout": layout,
        "aux": plan.aux,
        "frames": plan.n_frames,
        "width": plan.width,
        "height": plan.height,
        "spells": [
            {"kind": s.kind, "stream": s.stream, "start": s.start, "end": s.end, "ramp": s.ramp}
            for s in plan.spells
        ],
        "rgb_visibility": [round(float(v), 4) for v in plan.rgb_visibility],
        "aux_visibility": [round(float(v), 4) for v in plan.aux_visibility],
        "dominant": _dominant(plan.rgb_visibility, plan.aux_visibility, visible),
        "occlusion": [round(float(v), 4) for v in occlusion],
        "visible": [bool(v) for v in visible],
        "facts": {key: value for key, value in facts.items() if key != "frames"},
        "attributes": attributes,
        "objects": [
            {
                "role": track.role,
                "variant": track.variant,
                **track.description,
                "boxes": [[round(float(v), 3) for v in box] for box in track.boxes],
            }
            for track in plan.tracks
        ],
    }
    folder = root / TRUTH_FOLDER / split
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{name}.json").write_text(json.dumps(truth, indent=1) + "\n", encoding="utf-8")
    return {"name": name, "spells": truth["spells"], "attributes": attributes}


def _run_in_processes(root: Path, layout: str, tasks: list[tuple[str, int]], generation: dict[str, Any], workers: int) -> list[dict[str, Any]]:
    """Generate ``tasks`` (``(split, index)`` pairs) in ``workers`` child interpreters
    (``python -m plugins.synthetic.worker``), round robin; summaries come back in task order.

    Child interpreters rather than ``multiprocessing``: spawning re-imports the caller's main
    module (a script without an ``if __name__ == "__main__"`` guard would generate again) and
    forking a process that holds threads (torch, OpenCV) can hang.
    """
    package_parent = str(Path(__file__).resolve().parents[2])
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (package_parent, env.get("PYTHONPATH", "")) if p)
    env["OMP_NUM_THREADS"] = "1"
    chunks = [list(range(i, len(tasks), workers)) for i in range(workers)]
    # Output goes to temporary files, not pipes: a worker never blocks on a full pipe while
    # this process waits for another one.
    outputs = [(tempfile.TemporaryFile(), tempfile.TemporaryFile()) for _ in chunks]
    processes: list[subprocess.Popen[bytes]] = []
    summaries: list[dict[str, Any] | None] = [None] * len(tasks)
    failures = []
    try:
        for chunk, (out, err) in zip(chunks, outputs):
            request = {"root": str(root), "layout": layout, "generation": generation, "tasks": [tasks[i] for i in chunk]}
            process = subprocess.Popen(
                [sys.executable, "-m", "plugins.synthetic.worker"],
                stdin=subprocess.PIPE,
                stdout=out,
                stderr=err,
                env=env,
            )
            processes.append(process)
            assert process.stdin is not None
            process.stdin.write(json.dumps(request).encode())
            process.stdin.close()
        for chunk, process, (out, err) in zip(chunks, processes, outputs):
            process.wait()
            if process.returncode != 0:
                err.seek(0)
                failures.append(err.read().decode(errors="replace").strip().splitlines()[-20:])
                continue
            out.seek(0)
            for i, summary in zip(chunk, json.loads(out.read())):
                summaries[i] = summary
    finally:  # interrupted (Ctrl-C) or failed: no worker outlives the call
        for process in processes:
            if process.poll() is None:
                process.kill()
                process.wait()
        for out, err in outputs:
            out.close()
            err.close()
    if failures:
        raise DataError(f"synthetic {layout} data in {root}: a generation worker failed "
                        f"({len(failures)} of {len(processes)}); its last output:\n"
                        + "\n".join(failures[0]))
    return [s for s in summaries if s is not None]


# --------------------------------------------------------------------------- a whole root


@dataclass
class GenerationReport:
    """What :func:`ensure_generated` did."""

    root: Path
    generated: bool
    seconds: float
    sequences: dict[str, int]
    message: str


def read_manifest(root: Path) -> dict[str, Any] | None:
    """The root's manifest, or None when there is none; an unreadable one is a DataError."""
    path = root / MANIFEST
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise DataError(f"synthetic: manifest {path} cannot be read: {error}") from None
    if not isinstance(data, dict) or data.get("format") != MANIFEST_FORMAT:
        raise DataError(f"synthetic: {path} is not a synthetic-data manifest")
    return data


def _differences(old: dict[str, Any], new: dict[str, Any], prefix: str = "") -> list[str]:
    out = []
    for key in sorted(set(old) | set(new)):
        a, b = old.get(key), new.get(key)
        if isinstance(a, dict) and isinstance(b, dict):
            out += _differences(a, b, f"{prefix}{key}.")
        elif a != b:
            out.append(f"{prefix}{key}: {json.dumps(a)} -> {json.dumps(b)}")
    return out


@contextlib.contextmanager
def _locked(root: Path) -> Iterator[None]:
    """An exclusive lock beside ``root``, so concurrent processes generate it once."""
    root.parent.mkdir(parents=True, exist_ok=True)
    lock = root.parent / f".{root.name}.lock"
    with open(lock, "a+") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _is_empty_dir(path: Path) -> bool:
    return path.is_dir() and not any(path.iterdir())


def write_root(root: Path, options: SyntheticOptions) -> dict[str, Any]:
    """Generate every split into ``root`` (which must not exist yet); returns the manifest."""
    generation = generation_options(options)
    layout = options.layout
    counts = {"train": options.n_train, "test": options.n_test}
    root.mkdir(parents=True)
    tasks = [(split, index) for split in SPLITS for index in range(counts[split])]
    workers = min(options.workers, len(tasks), os.cpu_count() or 1)
    if workers > 1:
        summaries = _run_in_processes(root, layout, tasks, generation, workers)
    else:
        summaries = [generate_sequence(root, layout, split, index, generation) for split, index in tasks]
    writer = WRITERS[layout]
    splits: dict[str, list[dict[str, Any]]] = {split: [] for split in SPLITS}
    for (split, _), summary in zip(tasks, summaries):
        splits[split].append(summary)
    for split in SPLITS:
        writer.split_dir(root, split).mkdir(parents=True, exist_ok=True)
        writer.finish_split(root, split, [s["name"] for s in splits[split]])
    manifest = {
        "format": MANIFEST_FORMAT,
        "version": 1,
        "layout": layout,
        "dataset": writer.dataset,
        "aux": AUX_OF_LAYOUT[layout],
        "fingerprint": fingerprint(generation),
        "generation": generation,
        "splits": {split: [s["name"] for s in splits[split]] for split in SPLITS},
    }
    (root / MANIFEST).write_text(json.dumps(manifest, indent=1, sort_keys=True) + "\n", encoding="utf-8")
    return manifest


def ensure_generated(root: Path, options: SyntheticOptions) -> GenerationReport:
    """Make sure ``root`` holds the data ``options`` describe, generating it when needed.

    Raises:
        DataError: ``root`` holds something else (a non-empty folder without a manifest), or
            data generated with other options while ``on_mismatch`` is ``error``, or it is
            missing while ``generate`` is off.
    """
    root = Path(root).expanduser()
    generation = generation_options(options)
    wanted = fingerprint(generation)
    counts = {"train": options.n_train, "test": options.n_test}
    with _locked(root):
        manifest = read_manifest(root) if root.is_dir() else None
        if manifest is not None and manifest.get("fingerprint") == wanted:
            return GenerationReport(root, False, 0.0, counts, f"synthetic data in {root} is up to date")
        if manifest is not None:
            changes = _differences(manifest.get("generation", {}), generation)
            if options.on_mismatch == "error":
                raise DataError(
                    f"synthetic: {root} was generated with other options ("
                    + "; ".join(changes or ["generator version"])
                    + "). Delete the folder, point `root` elsewhere, or set "
                    "`on_mismatch: regenerate` to rewrite it."
                )
            log.warning("synthetic: options changed (%s); regenerating %s", "; ".join(changes), root)
        elif root.exists() and not _is_empty_dir(root):
            raise DataError(
                f"synthetic: {root} is not empty and holds no {MANIFEST}, so it is not a "
                "generated synthetic root; point `root` at a new or empty folder"
            )
        elif not options.generate:
            raise DataError(
                f"synthetic: {root} holds no generated data and `generate` is off; run "
                f"`mmtrack-kd synth --root {root}` or set `generate: true`"
            )

        for stale in root.parent.glob(f".{root.name}.partial-*"):
            shutil.rmtree(stale, ignore_errors=True)  # left by an interrupted run
        partial = root.parent / f".{root.name}.partial-{os.getpid()}"
        total = options.n_train + options.n_test
        # A normal event: INFO, which logs show off a terminal too (console.setup_logging).
        log.info(
            "synthetic: generating %d %s sequences (%d train, %d test; %d frames of %dx%d, seed %d) in %s",
            total,
            options.layout,
            options.n_train,
            options.n_test,
            options.frames,
            options.width,
            options.height,
            options.seed,
            root,
        )
        start = time.perf_counter()
        try:
            write_root(partial, options)
            if manifest is not None:  # replace our own stale data
                old = root.parent / f".{root.name}.old-{os.getpid()}"
                os.replace(root, old)
                os.replace(partial, root)
                shutil.rmtree(old, ignore_errors=True)
            else:
                if root.is_dir():
                    root.rmdir()  # empty, checked above
                os.replace(partial, root)
        finally:
            if partial.exists():
                shutil.rmtree(partial, ignore_errors=True)
        seconds = time.perf_counter() - start
        message = (
            f"synthetic: wrote {total} {options.layout} sequences ({options.n_train} train, "
            f"{options.n_test} test) to {root} in {seconds:.1f} s"
        )
        log.info(message)
        return GenerationReport(root, True, seconds, counts, message)


def load_truth(root: Path, split: str, name: str) -> dict[str, Any]:
    """The truth file of one generated sequence (see the module docstring)."""
    path = Path(root) / TRUTH_FOLDER / split / f"{name}.json"
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except OSError as error:
        raise DataError(f"synthetic: truth file {path} cannot be read: {error.strerror or error}") from None
