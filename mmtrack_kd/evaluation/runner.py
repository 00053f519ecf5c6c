"""Run checkpoints over dataset plugins and score the result folders: ``mmtrack-kd evaluate``.

* :func:`evaluate_checkpoint` - track every sequence of each dataset in worker processes
  (spawn; each worker builds its own :class:`~mmtrack_kd.tracking.Tracker` from the checkpoint
  file), write ``<out>/<tracker>/<dataset>/...`` in the layout the dataset protocol's toolkit
  reads (resumable: finished sequences are skipped), then score with the protocol.
* :func:`score_folders` - score existing result folders of any tracker from annotations alone.
* :func:`run_evaluate` - the command: resolve the target (a run folder gives its student and
  teacher), the datasets (options from the run's recipe, else defaults and ``--root``), evaluate
  or score, then write tables, the JSON report and the plots.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from multiprocessing import get_context
from pathlib import Path
from typing import TYPE_CHECKING, Any

import cv2
import numpy as np
from pydantic import ValidationError
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from mmtrack_kd.console import ProgressLog, console
from mmtrack_kd.data.io import read_image
from mmtrack_kd.data.results_io import BoxFormat, ResultLayout
from mmtrack_kd.errors import DataError, MmtrackError, RecipeError
from mmtrack_kd.evaluation.groundtruth import GroundTruth
from mmtrack_kd.evaluation.plots import write_plots
from mmtrack_kd.evaluation.protocols import protocol_of
from mmtrack_kd.evaluation.provenance import file_sha256, prepare_results_folder, result_provenance
from mmtrack_kd.evaluation.published import comparison_table
from mmtrack_kd.evaluation.report import print_report, write_json
from mmtrack_kd.evaluation.result import ProtocolResult
from mmtrack_kd.evaluation.scoring import score_results_folder
from mmtrack_kd.plugins import Registry, default_registry
from mmtrack_kd.recipe import load_recipe, validation_problems

if TYPE_CHECKING:  # torch-free at import: scoring --results folders needs no model
    from mmtrack_kd.tracking import TrackerSettings

log = logging.getLogger(__name__)

#: Checkpoint file a run folder's stage is evaluated from.
RUN_CHECKPOINT = "best.pt"
#: Stages of a run folder, in the order they are reported.
RUN_STAGES = ("student", "teacher")

DatasetEntry = tuple[str, Any]  # (name, dataset plugin instance)


@dataclass(frozen=True)
class TrackerTarget:
    """One checkpoint to evaluate, under the tracker name its results are filed as."""

    name: str
    checkpoint: Path


# --------------------------------------------------------------------------- resolving targets


def resolve_targets(target: str | os.PathLike[str]) -> list[TrackerTarget]:
    """A checkpoint file -> itself (named after its stem); a run folder -> its ``student`` and
    ``teacher`` ``best.pt`` (``last.pt`` when there is no best), named ``<run>-<stage>``.

    Raises:
        DataError: the path does not exist, or a run folder holds no checkpoint.
    """
    path = Path(target)
    if path.is_file():
        return [TrackerTarget(path.stem if path.stem not in ("best", "last")
                              else f"{path.parent.parent.name}-{path.parent.name}", path)]
    if not path.is_dir():
        raise DataError(f"{path}: no such run folder or checkpoint file")
    targets = []
    for stage in RUN_STAGES:
        for filename in (RUN_CHECKPOINT, "last.pt"):
            checkpoint = path / stage / filename
            if checkpoint.is_file():
                targets.append(TrackerTarget(f"{path.name}-{stage}", checkpoint))
                break
    if not targets:
        raise DataError(
            f"{path}: no checkpoint found (expected {', '.join(f'{s}/{RUN_CHECKPOINT}' for s in RUN_STAGES)})"
        )
    return targets


def _recipe_of(target: Path) -> Any | None:
    """The run's recipe (``recipe.yaml`` in the run folder, or next to a stage folder)."""
    folder = target if target.is_dir() else target.parent
    for candidate in (folder / "recipe.yaml", folder.parent / "recipe.yaml"):
        if candidate.is_file():
            return load_recipe(candidate)
    return None


def resolve_datasets(
    names: Sequence[str],
    target: str | os.PathLike[str] | None = None,
    root: str | os.PathLike[str] | None = None,
    registry: Registry | None = None,
    split: str | None = None,
    options: Mapping[str, Any] | None = None,
) -> list[DatasetEntry]:
    """Build the dataset plugins to evaluate on.

    Args:
        names: dataset names from the command line (official, mixed-case spellings too);
            empty means every ``evaluate.datasets`` entry of the run's recipe.
        target: the run folder or checkpoint (its ``recipe.yaml`` supplies options).
        root: ``--root``: replaces the root of every dataset built here.
        registry: plugin registry (default: the installed plugins).
        split: ``--split``: the split of every dataset built here (default: the recipe's, else
            ``test`` where the dataset has one, else its first).
        options: ``--dataset-option KEY=VALUE``: options set on every dataset built here,
            validated by each plugin's own schema.

    Raises:
        DataError: no dataset named and none in the recipe.
        RecipeError: an option the dataset's schema refuses (each named).
    """
    registry = registry if registry is not None else default_registry()
    recipe = _recipe_of(Path(target)) if target is not None else None
    from_recipe = {c.name: c.options for c in recipe.evaluate.datasets} if recipe else {}
    names = list(names) or list(from_recipe)
    if not names:
        raise DataError("no dataset to evaluate on: name one with --datasets, or list some in "
                        "the recipe's evaluate.datasets")
    entries = []
    for name in names:
        cls = registry.dataset(name)
        name = cls.name  # an official spelling is reported, and filed, as the registry name
        recipe_options = from_recipe.get(name)
        # only what the recipe set: an evaluation entry without `split` means the test split
        values = recipe_options.model_dump(exclude_unset=True) if recipe_options is not None else {}
        values.update(options or {})
        if split is not None:
            values["split"] = split
        values.setdefault("split", "test" if "test" in cls.splits else cls.splits[0])
        if root is not None:
            values["root"] = Path(root)
        try:
            validated = cls.Options(**values)
        except ValidationError as error:
            raise RecipeError(f"dataset {name} (--dataset-option, --split)",
                              validation_problems(error), what="options of") from None
        entries.append((name, cls(validated)))
    return entries


def sequence_names(name: str, dataset: Any) -> list[str]:
    """The sequences of a dataset's split; none is a DataError naming dataset, split and root
    (a wrong split or root is the usual cause)."""
    names = dataset.list_sequences()
    if not names:
        split = getattr(dataset.options, "split", None)
        raise DataError(f"dataset {name}: no sequences to score in split {split!r} of "
                        f"{getattr(dataset, 'root', '(no root)')} (choose another with --split, "
                        "or check --root)")
    return names


# --------------------------------------------------------------------------- ground truth


def load_ground_truths(dataset: Any, names: Iterable[str] | None = None) -> list[GroundTruth]:
    """Ground truth of ``names`` (default: every listed sequence), read without frames
    (``load_groundtruth``; ``load_sequence`` for plugins without it). For a protocol that clips
    boxes to the image (``Protocol.needs_image_size``, e.g. the VOT toolkit's overlap) the frame
    size is read from each sequence's first frame; where the frames are not on disk the
    sequence is scored unclipped, with a warning (the scores then differ from the toolkit's
    only for boxes crossing the border)."""
    names = list(names) if names is not None else sequence_names(getattr(dataset, "name", "dataset"), dataset)
    loader = getattr(dataset, "load_groundtruth", None) or dataset.load_sequence
    if not protocol_of(dataset).needs_image_size:
        return [GroundTruth.from_sequence(loader(name)) for name in names]
    ground_truths, unclipped = [], []
    for name in names:
        try:
            sequence = dataset.load_sequence(name)
            ground_truths.append(GroundTruth.from_sequence(sequence, _frame_size(sequence)))
        except DataError:
            unclipped.append(name)
            ground_truths.append(GroundTruth.from_sequence(loader(name)))
    if unclipped:
        log.warning("%s: no readable frames for %d sequences (%s%s): their boxes are not clipped "
                    "to the image as the VOT toolkit clips them", getattr(dataset, "name", "dataset"),
                    len(unclipped), ", ".join(unclipped[:3]), ", ..." if len(unclipped) > 3 else "")
    return ground_truths


def _frame_size(sequence: Any) -> tuple[int, int]:
    """``(width, height)`` of a sequence's first frame of its first stream (RGB)."""
    paths = next(iter(sequence.frames.values()), ())
    if not paths:
        raise DataError(f"{sequence.name}: no frames listed")
    height, width = read_image(paths[0], cv2.IMREAD_UNCHANGED, where=sequence.name).shape[:2]
    return int(width), int(height)


# --------------------------------------------------------------------------- workers

# The tracker, the model and torch are imported inside the functions that track: scoring
# --results folders needs none of them, and importing torch takes seconds.

_WORKER: dict[str, Any] = {}


def _init_worker(checkpoint: str, device: str, threads: int, settings: TrackerSettings) -> None:
    """Per-process set-up: thread budget and one tracker built from the checkpoint file."""
    import torch

    from mmtrack_kd.tracking import Tracker

    torch.set_num_threads(max(1, threads))
    _WORKER["tracker"] = Tracker.from_checkpoint(checkpoint, device, settings=settings)


def _check_checkpoint(checkpoint: Path) -> None:
    """Read the checkpoint here before workers start: a worker whose initialiser fails breaks
    the whole pool, and the user would see its traceback instead of the one clear error."""
    from mmtrack_kd.checkpoints import load_model
    from mmtrack_kd.tracking.tracker import adapters_from_checkpoint

    model, saved = load_model(checkpoint)
    adapters_from_checkpoint(saved, model.num_modalities, default_registry(), str(checkpoint))


def _track_one(dataset: Any, name: str, tracker_dir: str,
               layout: ResultLayout) -> tuple[str, int, float]:
    """Track one sequence and write its result files; returns ``(name, frames, seconds)``."""
    from mmtrack_kd.tracking import run_sequence

    result = run_sequence(_WORKER["tracker"], dataset.load_sequence(name))
    layout.write(tracker_dir, name, result.boxes, result.confidences, result.times)
    return name, len(result.boxes), float(np.sum(result.times[1:]))


def _progress(enabled: bool) -> Progress:
    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                    TimeRemainingColumn(), console=console, disable=not enabled, transient=False)


# --------------------------------------------------------------------------- evaluation


def evaluate_checkpoint(
    checkpoint: str | os.PathLike[str],
    datasets: Sequence[DatasetEntry],
    out_dir: str | os.PathLike[str],
    workers: int = 1,
    device: str = "cpu",
    tracker_name: str | None = None,
    progress: bool = True,
    settings: TrackerSettings | None = None,
) -> dict[str, ProtocolResult]:
    """Track every sequence of each dataset with one checkpoint, then score.

    Results go to ``<out_dir>/<tracker_name>/<dataset>/`` in the layout of the dataset
    protocol's toolkit (``Protocol.result_layout``: ``<seq>.txt`` OTB style, or
    ``longterm/<seq>/...`` VOT long-term), beside
    ``provenance.json`` (:mod:`~mmtrack_kd.evaluation.provenance`: checkpoint hash, tracker
    settings, dataset name, root and split). Sequences whose box file already exists are not run
    again when the folder's provenance matches; a folder written by anything else is moved
    aside (``<dataset>.stale-<time>``, with a warning naming what differs) and tracked again.

    Args:
        checkpoint: an mmtrack-kd checkpoint file.
        datasets: ``(name, plugin instance)`` pairs.
        out_dir: results root.
        workers: tracker processes (spawned; ``1`` runs in this process); each uses
            ``cores // workers`` torch threads (the cores this process may use).
        device: ``"cpu"`` or ``"cuda"`` (every worker uses it).
        tracker_name: folder name of this tracker (default: the checkpoint's stem).
        progress: show a rich progress bar.
        settings: how each tracker runs (keep ratio, Hann window, precision, compilation;
            default :class:`~mmtrack_kd.tracking.TrackerSettings`). Each worker compiles its
            own tracker when ``settings.compile`` asks for it. The results folder is
            ``tracker_name`` as given: :meth:`TrackerSettings.variant_name` makes one per
            setting.

    Returns:
        Dataset name -> :class:`ProtocolResult` of the dataset's protocol.
    """
    checkpoint = Path(checkpoint)
    if not checkpoint.is_file():
        raise DataError(f"{checkpoint}: checkpoint file not found")
    sha256 = file_sha256(checkpoint)
    tracker_name = tracker_name or checkpoint.stem
    from mmtrack_kd.runtime.device import threads_per_process  # torch: see the workers' note
    from mmtrack_kd.tracking import TrackerSettings

    settings = settings if settings is not None else TrackerSettings()
    # what changes the boxes (compilation does not): recorded with each result folder
    tracker = {"keep_ratio": settings.keep_ratio, "hann_window": settings.hann_window,
               "precision": settings.precision}
    workers = max(1, int(workers))
    threads = threads_per_process(workers)
    jobs: list[tuple[Any, str, str, ResultLayout, str]] = []  # dataset, sequence, folder, layout, label
    folders: dict[str, Path] = {}
    for name, dataset in datasets:
        folder = Path(out_dir) / tracker_name / name
        folders[name] = folder
        layout = protocol_of(dataset).result_layout
        sequences = sequence_names(name, dataset)
        provenance = result_provenance(checkpoint, sha256, tracker, name, dataset)
        reusable = prepare_results_folder(folder, provenance)
        done = set(layout.finished(folder, sequences)) if reusable else set()
        if done:
            log.info("%s/%s: %d of %d sequences already finished", tracker_name, name, len(done),
                     len(sequences))
        jobs += [(dataset, s, str(folder), layout, name) for s in sequences if s not in done]

    if jobs:
        # Off a terminal the bar draws nothing until the end: progress goes into the log.
        lines = ProgressLog(log, f"{tracker_name}: tracked sequence", len(jobs),
                            enabled=progress and not console.is_terminal)
        with _progress(progress) as bar:
            task = bar.add_task(f"{tracker_name}", total=len(jobs))
            if workers == 1:
                _init_worker(str(checkpoint), device, threads, settings)
                try:
                    for dataset, seq, folder, layout, label in jobs:
                        _track_one(dataset, seq, folder, layout)
                        bar.update(task, advance=1, description=f"{tracker_name} {label}/{seq}")
                        lines.step(f"{label}/{seq}")
                finally:
                    _WORKER.clear()
            else:
                _check_checkpoint(checkpoint)
                with ProcessPoolExecutor(
                    max_workers=min(workers, len(jobs)),
                    mp_context=get_context("spawn"),
                    initializer=_init_worker,
                    initargs=(str(checkpoint), device, threads, settings),
                ) as pool:
                    futures = {pool.submit(_track_one, d, s, f, lay): (label, s)
                               for d, s, f, lay, label in jobs}
                    for future in as_completed(futures):
                        label, seq = futures[future]
                        future.result()  # re-raise a worker's error here
                        bar.update(task, advance=1, description=f"{tracker_name} {label}/{seq}")
                        lines.step(f"{label}/{seq}")

    return {name: score_results_folder(protocol_of(dataset), folders[name],
                                       load_ground_truths(dataset))
            for name, dataset in datasets}


def score_folders(
    results_dirs: Sequence[str | os.PathLike[str]], dataset: Any, prefix: str = "",
    box_format: BoxFormat = "xywh", problems: list[str] | None = None,
) -> dict[str, ProtocolResult]:
    """Score existing result folders (ours or published raw results) on ``dataset``'s
    sequences, from annotations alone (no frames are read).

    Args:
        results_dirs: tracker folders holding ``<seq>.txt`` or ``longterm/<seq>/``; each is
            reported under its folder name (``<parent>/<name>`` when names repeat).
        dataset: the dataset plugin instance.
        prefix: result files are ``<prefix><seq>.txt``; ``{tracker}`` in it stands for each
            folder's name (published raw results such as ``MANet/MANet_afterrain.txt``:
            ``--prefix '{tracker}_'``).
        box_format: ``xywh`` (left, top, width, height) or ``ltrb`` corners.
        problems: when a list is given, a folder that cannot be scored adds its message here
            and the others are still scored; otherwise its error is raised.

    Raises:
        DataError: a missing or malformed result file (the message names it), unless
            ``problems`` collects it.
    """
    gts = load_ground_truths(dataset)
    paths = [Path(p) for p in results_dirs]
    names = [p.name for p in paths]
    out: dict[str, ProtocolResult] = {}
    for path in paths:
        key = path.name if names.count(path.name) == 1 else f"{path.parent.name}/{path.name}"
        try:
            if not path.is_dir():
                raise DataError(f"{path}: result folder not found")
            out[key] = score_results_folder(protocol_of(dataset), path, gts,
                                            prefix=prefix.replace("{tracker}", path.name),
                                            box_format=box_format)
        except DataError as error:
            if problems is None:
                raise
            problems.append(str(error))
    return out


# --------------------------------------------------------------------------- the command


def run_evaluate(
    target: str | os.PathLike[str] | None,
    datasets: Sequence[str] = (),
    results: Sequence[str | os.PathLike[str]] | None = None,
    dataset: str | None = None,
    root: str | os.PathLike[str] | None = None,
    workers: int | None = None,
    out: str | os.PathLike[str] | None = None,
    device: str | None = None,
    plots: bool = True,
    keep_ratio: float | None = None,
    prefix: str = "",
    box_format: BoxFormat = "xywh",
    precision: str = "fp32",
    compile: str | None = None,
    split: str | None = None,
    dataset_options: Mapping[str, Any] | None = None,
) -> int:
    """``mmtrack-kd evaluate``: track and score a run or checkpoint, or score ``--results``.

    ``split`` and ``dataset_options`` (``--split``, ``--dataset-option``) apply to every
    dataset (:func:`resolve_datasets`). Of several ``--results`` folders, those that can be
    scored are reported and every problem of the others is listed after (exit status 2).

    Writes under ``out`` (default ``<run>/eval`` for a run folder, ``eval/<name>-<sha256[:8]>``
    for a checkpoint file, ``eval`` for ``--results``):
    ``results/<tracker>/<dataset>/...``, ``report.json``, ``plots/*.png``; prints the tables.
    ``workers`` (None: the run's ``evaluate.workers``, else 1) and the Hann window
    (``evaluate.hann_window``) come from the run's recipe where there is one; ``keep_ratio``,
    ``precision`` and ``compile`` are those of :class:`~mmtrack_kd.tracking.TrackerSettings`.
    Returns the exit status (0).
    """
    if (prefix or box_format != "xywh") and not results:
        raise MmtrackError("--prefix and --box-format describe --results folders; add --results DIR")
    problems: list[str] = []
    if results:
        if not dataset:
            raise MmtrackError("--results needs --dataset NAME (the dataset the folders were run on)")
        (name, plugin), = resolve_datasets([dataset], target, root, split=split, options=dataset_options)
        # One bad folder must not hide the others' scores: score every folder, report every
        # problem after the tables.
        scored = {name: score_folders(results, plugin, prefix, box_format, problems=problems)}
        if not scored[name]:
            raise DataError("no result folder could be scored:\n" + "\n".join(problems))
        out_dir = Path(out) if out is not None else Path("eval")
    else:
        if target is None:
            raise MmtrackError("evaluate needs a run folder or checkpoint (or --results DIR...)")
        # torch only where tracking happens (scoring --results folders needs none), and the
        # device and settings checked here, before any worker starts: one message, not one a worker
        from mmtrack_kd.runtime.device import choose_device
        from mmtrack_kd.tracking import TrackerSettings

        recipe = _recipe_of(Path(target))
        settings = TrackerSettings(keep_ratio=keep_ratio, precision=precision, compile=compile,
                                   hann_window=recipe.evaluate.hann_window if recipe is not None else True)
        device = str(choose_device("auto" if device is None else device, "--device"))
        targets = resolve_targets(target)
        entries = resolve_datasets(datasets, target, root, split=split, options=dataset_options)
        if workers is None:
            workers = recipe.evaluate.workers if recipe is not None else 1
        if out is not None:
            out_dir = Path(out)
        elif Path(target).is_dir():
            out_dir = Path(target) / "eval"
        else:  # one folder per checkpoint file: `eval/` alone would be shared by every run
            (only,) = targets
            out_dir = Path("eval") / f"{only.name}-{file_sha256(only.checkpoint)[:8]}"
        scored = {name: {} for name, _ in entries}
        for tracker in targets:
            label = settings.variant_name(tracker.name)
            for name, result in evaluate_checkpoint(
                tracker.checkpoint, entries, out_dir / "results", workers, device,
                label, settings=settings,
            ).items():
                scored[name][label] = result
        for name, _ in entries:
            console.print(f"results of {name}: {out_dir / 'results'}/<tracker>/{name}")
    print_report(scored)
    for name, by_tracker in scored.items():
        table = comparison_table(name, _protocol_of(scored[name]), by_tracker)
        if table is not None:
            console.print(table)
        elif by_tracker:
            console.print(f"{name}: the paper publishes no numbers for the "
                          f"{_protocol_of(by_tracker)} protocol to set beside these")
    report = write_json(scored, out_dir / "report.json")
    console.print(f"wrote every number to {report}")
    if plots:
        written = write_plots(scored, out_dir / "plots")
        console.print(f"wrote {len(written)} plot(s) to {out_dir / 'plots'}")
    if problems:
        raise DataError(f"{len(problems)} of {len(results or ())} result folders could not be scored "
                        "(the others are in the report):\n" + "\n".join(problems))
    return 0


def _protocol_of(by_tracker: dict[str, ProtocolResult]) -> str | None:
    return next(iter(by_tracker.values())).protocol if by_tracker else None
