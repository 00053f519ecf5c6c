"""The ``mmtrack-kd`` command line: argparse sub-commands with rich output.

Each built-in sub-command parses its arguments here and hands typed values to the module that
does the work, imported only when that command runs (so ``mmtrack-kd plugins`` does not import
torch). Plugins add their own sub-commands through the ``mmtrack_kd_register_commands`` hook
(``mmtrack-kd synth`` is the ``synthetic`` plugin's). User errors
(:class:`~mmtrack_kd.errors.MmtrackError`) end with one message and exit status 2, from a
plugin's command as from a built-in one.
"""

from __future__ import annotations

import argparse
import errno
import json
import logging
import sys
from pathlib import Path
from typing import Callable, Sequence

from rich.markup import escape
from rich.table import Table

from mmtrack_kd import __version__
from mmtrack_kd.console import console, error_console, setup_logging
from mmtrack_kd.errors import MmtrackError, NotAvailableError, PluginError
from mmtrack_kd.plugins import PLUGINS_VARIABLE, Command, Registry, default_registry
from mmtrack_kd.recipe import dump_recipe, load_recipe
from mmtrack_kd.recipe_yaml import parse_override

Handler = Callable[[argparse.Namespace], int | None]

log = logging.getLogger(__name__)


def _add_set(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a recipe value before validation, e.g. --set train.device=cpu "
        "--set distill.feature.layers=[2,4]; VALUE is parsed as YAML",
    )


# --------------------------------------------------------------------------- plugins


def cmd_plugins(args: argparse.Namespace) -> int:
    """Print the loaded plugins and what each registers (``command synth`` for a plugin's
    sub-command)."""
    registry = default_registry()
    table = Table(title="mmtrack-kd plugins")
    table.add_column("plugin")
    table.add_column("distribution")
    table.add_column("registers")
    table.add_column("status")
    for info in registry.plugins:
        status = f"[red]{escape(info.error)}[/red]" if info.error else "ok"
        table.add_row(
            info.name,
            f"{info.distribution} {info.version}".strip(),
            "\n".join(info.registers) or "-",
            status,
        )
    console.print(table)
    if not registry.plugins:
        console.print(f"no plugins loaded (is {PLUGINS_VARIABLE} set to an empty list?)")
    return 1 if registry.failures else 0


# --------------------------------------------------------------------------- recipe


def cmd_recipe_check(args: argparse.Namespace) -> int:
    """Validate a recipe and run every check ``train`` runs before it starts, and say so."""
    from mmtrack_kd.engine.build import check_recipe

    recipe = load_recipe(args.file, args.overrides)
    check_recipe(recipe)
    console.print(
        f"[green]ok[/green] {args.file}: modality {recipe.modality.name}, "
        f"{len(recipe.data.train)} training dataset(s), stages {', '.join(recipe.train.stages)}"
    )
    return 0


def cmd_recipe_show(args: argparse.Namespace) -> int:
    """Print the resolved recipe (defaults filled in, overrides applied)."""

    recipe = load_recipe(args.file, args.overrides)
    # Plain print: the YAML must stay copy-pasteable, without rich markup or wrapping.
    sys.stdout.write(dump_recipe(recipe))
    return 0


# --------------------------------------------------------------------------- train


def cmd_train(args: argparse.Namespace) -> int:
    """Train the recipe's stages."""
    from mmtrack_kd.engine.launch import launch_training, processes_to_start
    from mmtrack_kd.engine.run import train
    from mmtrack_kd.runtime.distributed import is_main_process, launched_by_torchrun

    recipe = load_recipe(args.recipe, args.overrides)
    processes = processes_to_start(recipe.train.processes, recipe.train.device)
    if processes > 1 and not launched_by_torchrun():
        return launch_training(processes, args.cli_arguments)
    folder = train(recipe, stage=args.stage, teacher=args.teacher, resume=args.resume,
                   run_dir=args.run_dir)
    if is_main_process():  # said once
        console.print(f"trained {recipe.run_name}: checkpoints and metrics in {folder}")
    return 0


# --------------------------------------------------------------------------- evaluate, track

#: ``--compile``: the torch.compile backend it asks for.
COMPILE_BACKEND = "inductor"
COMPILE_HELP = ("compile the per-frame forward with torch.compile (inductor; the first frame pays "
                "the compilation, tens of seconds for ViT-B on a CPU)")


def _model_names(text: str | None, known: Sequence[str]) -> tuple[str, ...]:
    """``--models teacher,student``: names from ``known`` in the order given (None: all)."""
    if text is None:
        return tuple(known)
    names = tuple(dict.fromkeys(name.strip() for name in text.split(",") if name.strip()))
    unknown = [name for name in names if name not in known]
    if unknown or not names:
        raise MmtrackError(f"--models {text!r}: {', '.join(unknown) or 'no model'} is not one of "
                           f"{', '.join(known)}")
    return names


def _compile_backend(args: argparse.Namespace) -> str | None:
    return COMPILE_BACKEND if args.compile else None


def _precision(args: argparse.Namespace) -> str:
    if args.bf16 and args.int8:
        raise MmtrackError("--bf16 and --int8 exclude each other")
    return "bf16" if args.bf16 else "int8" if args.int8 else "fp32"


def cmd_evaluate(args: argparse.Namespace) -> int:
    """Track and score a run or checkpoint, or score existing result folders."""
    from mmtrack_kd.evaluation.runner import run_evaluate

    return run_evaluate(args.target, args.datasets, args.results, args.dataset, args.root,
                        args.workers, args.out, device=args.device, plots=not args.no_plots,
                        keep_ratio=args.keep_ratio, prefix=args.prefix, box_format=args.box_format,
                        precision=_precision(args), compile=_compile_backend(args),
                        split=args.split, dataset_options=_dataset_options(args.dataset_options))


def _dataset_options(items: Sequence[str]) -> dict[str, object]:
    """``--dataset-option n_test=5 --dataset-option sequences=[a,b]``: values parsed as YAML."""

    options: dict[str, object] = {}
    for item in items:
        path, value = parse_override(item)
        options[".".join(path)] = value
    return options



def cmd_report(args: argparse.Namespace) -> int:
    """Compare several runs over several datasets and modalities in one table and figure set."""
    from mmtrack_kd.evaluation.cross_report import run_report

    return run_report(args.paths, args.out, figures=not args.no_plots)


def cmd_track(args: argparse.Namespace) -> int:
    """Track one object through a pair of videos or frame folders."""
    from mmtrack_kd.tracking import TrackerSettings, track

    settings = TrackerSettings(precision=_precision(args), compile=_compile_backend(args))
    run = track(args.checkpoint, args.rgb, args.aux, args.init, args.out, device=args.device,
                settings=settings)
    console.print(run.summary())
    return 0


# --------------------------------------------------------------------------- benchmark


def _print_rows(title: str, rows: list[dict], columns: list[str]) -> None:
    table = Table(title=title)
    for column in columns:
        table.add_column(column, justify="right" if column != columns[0] else "left")
    for row in rows:
        table.add_row(*[_format(row.get(column)) for column in columns])
    console.print(table)


def _format(value: object) -> str:
    if isinstance(value, float):
        return f"{value:.3g}" if abs(value) < 100 else f"{value:.0f}"
    return "-" if value is None else str(value)


def cmd_benchmark(args: argparse.Namespace) -> int:
    """Print benchmark figures as a rich table and, with --json, write them."""

    figures: dict[str, object] = {"what": args.what}
    if args.what == "scoring":
        from mmtrack_kd.evaluation.bench import benchmark

        rows = [vars(figure) | {"frames_per_second": figure.frames_per_second}
                for figure in benchmark()]
        _print_rows("scoring 1,000 sequences x 1,000 frames", rows,
                    ["protocol", "sequences", "frames", "seconds", "frames_per_second"])
        figures["scoring"] = rows
    else:
        if args.recipe is None:
            raise NotAvailableError(f"`benchmark --what {args.what}` needs --recipe")
        recipe = load_recipe(args.recipe, args.overrides + [f"train.device={args.device}"])
        if args.what == "agreement":
            from mmtrack_kd.benchmark.agreement import agreement_rows, precision_agreement

            if args.checkpoint is None:
                raise NotAvailableError("`benchmark --what agreement` needs --checkpoint (a trained model)")
            datasets = [(choice.name, choice.plugin(choice.options)) for choice in recipe.evaluate.datasets]
            if not datasets:
                raise MmtrackError(f"{args.recipe}: evaluate.datasets is empty; agreement tracks its sequences")
            result = precision_agreement(str(args.checkpoint), datasets, max_sequences=args.sequences,
                                         device=args.device)
            _print_rows(f"boxes at bf16 and int8 against fp32 ({args.checkpoint}, {result['sequences']} "
                        f"sequences, {result['frames']} frames)", agreement_rows(result),
                        ["precision", "scores", "mean IoU to fp32", "frames IoU>=0.9", "ms/frame", "error"])
            figures.update(result)
        elif args.what == "data":
            from mmtrack_kd.engine.bench import loader_figures, step_figures

            loader = loader_figures(recipe, sorted({0, recipe.data.workers}))
            _print_rows(f"loader alone ({args.recipe})", loader,
                        ["workers", "batch_size", "samples", "seconds", "samples_per_second"])
            steps = step_figures(recipe, list(recipe.train.stages))
            _print_rows("model training step (fixed batch, no loading)", steps,
                        ["stage", "micro_batch", "seconds_per_step", "samples_per_second"])
            figures.update(loader=loader, steps=steps)
        else:
            from mmtrack_kd.benchmark import params_benchmark, render, speed_benchmark
            from mmtrack_kd.benchmark.params import MODEL_NAMES

            if args.what == "params":
                result = params_benchmark(recipe)
            else:
                result = speed_benchmark(
                    recipe, args.device, warmup=args.warmup, repeats=args.repeats,
                    tracker_frames=args.frames, memory=not args.no_memory,
                    compile=_compile_backend(args), bf16=args.bf16, int8=args.int8,
                    names=_model_names(args.models, MODEL_NAMES),
                )
            render(result, console)
            figures.update(result)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(figures, indent=2, default=str))
        console.print(f"wrote {args.json}")
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    """Export a student checkpoint to ONNX (template graph and tracking graph)."""
    from mmtrack_kd.export import compare_fps, compare_with_pytorch, export_checkpoint, require_onnx

    if args.check:
        require_onnx("onnx", "onnxruntime")
    written = export_checkpoint(args.checkpoint, args.out, format=args.format)
    for role, path in written.items():
        console.print(f"{role}: {path}")
    if args.check:
        from mmtrack_kd.checkpoints import load_model

        model, _ = load_model(args.checkpoint)
        out_dir = written["track"].parent
        console.print(compare_with_pytorch(model, out_dir))
        console.print(compare_fps(model, out_dir))
    return 0


def cmd_experiments(args: argparse.Namespace) -> int:
    """The paper's claims at small scale: run the arms table (resumable), write the report."""
    from mmtrack_kd.experiments.command import main as experiments_main

    return experiments_main(args.arguments)


# --------------------------------------------------------------------------- parser


def build_parser(registry: Registry | None = None) -> argparse.ArgumentParser:
    """The whole command-line grammar: the built-in commands, then those the plugins in
    ``registry`` (default: the installed ones) register."""
    parser = argparse.ArgumentParser(
        prog="mmtrack-kd",
        description="Multi-modal single-object tracking: mutual-prompt teacher, distilled "
        "one-stream student.",
    )
    parser.add_argument("--version", action="version", version=f"mmtrack-kd {__version__}")
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more log output")
    parser.add_argument("-q", "--quiet", action="store_true", help="warnings and errors only")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    train = commands.add_parser("train", help="train the teacher, then the distilled student")
    train.add_argument("recipe", type=Path, help="recipe YAML file")
    _add_set(train)
    train.add_argument("--stage", choices=["teacher", "student"], help="run one stage only")
    train.add_argument("--teacher", type=Path, help="teacher checkpoint for --stage student")
    train.add_argument("--resume", action="store_true", help="continue from the run's last.pt")
    train.add_argument("--run-dir", type=Path, help="run folder (default: output_dir/<name>)")
    train.set_defaults(handler=cmd_train)

    evaluate = commands.add_parser("evaluate", help="track and score on benchmarks")
    evaluate.add_argument("target", nargs="?", type=Path, help="run folder or checkpoint")
    evaluate.add_argument("--datasets", nargs="+", default=[], metavar="NAME")
    evaluate.add_argument("--results", nargs="+", type=Path, metavar="DIR",
                          help="score existing result folders instead of tracking")
    evaluate.add_argument("--dataset", help="dataset of the --results folders (a dataset plugin's "
                                            "name; official spellings too)")
    evaluate.add_argument("--prefix", default="",
                          help="--results files are <prefix><sequence>.txt; {tracker} stands for "
                               "the folder's name (e.g. --prefix '{tracker}_')")
    evaluate.add_argument("--box-format", choices=["xywh", "ltrb", "ltrb-inclusive"], default="xywh",
                          help="--results boxes: x,y,w,h (default), x1,y1,x2,y2 corners (w = x2 - x1) "
                               "or inclusive corners (w = x2 - x1 + 1, the rgbt package's default)")
    evaluate.add_argument("--root", type=Path, help="dataset root (else recipe or environment)")
    evaluate.add_argument("--split", help="dataset split (default: the recipe's, else test)")
    evaluate.add_argument("--dataset-option", dest="dataset_options", action="append", default=[],
                          metavar="KEY=VALUE",
                          help="a dataset option, e.g. --dataset-option sequences=[a,b]; VALUE "
                               "is parsed as YAML; repeatable")
    evaluate.add_argument("--workers", type=int, default=None,
                          help="tracker processes (default: the run's evaluate.workers, else 1)")
    evaluate.add_argument("--keep-ratio", type=float, default=None,
                          help="candidate-elimination keep ratio at inference (default: the "
                               "checkpoint's; only for students trained with elimination)")
    evaluate.add_argument("--out", type=Path, help="where results and reports go")
    evaluate.add_argument("--device", choices=["cpu", "cuda"], help="default: cuda when available")
    evaluate.add_argument("--no-plots", action="store_true", help="skip the PNG plots")
    evaluate.add_argument("--bf16", action="store_true",
                          help="run the model under bfloat16 autocast (results in <tracker>-bf16)")
    evaluate.add_argument("--int8", action="store_true",
                          help="run the model with int8 dynamically quantized Linear layers, CPU "
                               "only (results in <tracker>-int8)")
    evaluate.add_argument("--compile", action="store_true", help=COMPILE_HELP)
    evaluate.set_defaults(handler=cmd_evaluate)

    report = commands.add_parser(
        "report", help="compare evaluated runs across datasets and modalities (Markdown, JSON, PNG)")
    report.add_argument("paths", nargs="+", type=Path, metavar="RUN_OR_EVAL_DIR",
                        help="run folders (their eval/report.json), evaluation folders or "
                             "report.json files")
    report.add_argument("--out", type=Path, help="where report.md, report.json and figures/ go "
                                                 "(default: ./report)")
    report.add_argument("--no-plots", action="store_true", help="skip the figure sheets")
    report.set_defaults(handler=cmd_report)

    track = commands.add_parser("track", help="track one object in a pair of videos")
    track.add_argument("--checkpoint", type=Path, required=True)
    track.add_argument("--rgb", type=Path, required=True, help="RGB video or frame folder")
    track.add_argument("--aux", type=Path, help="auxiliary video or frame folder")
    track.add_argument("--init", required=True, metavar="X,Y,W,H", help="first-frame box")
    track.add_argument("--out", type=Path, default=Path("track-out"))
    track.add_argument("--device", choices=["cpu", "cuda"], help="default: cuda when available")
    track.add_argument("--bf16", action="store_true", help="run the model under bfloat16 autocast")
    track.add_argument("--int8", action="store_true", help="int8 dynamically quantized Linear layers (CPU)")
    track.add_argument("--compile", action="store_true", help=COMPILE_HELP)
    track.set_defaults(handler=cmd_track)

    benchmark = commands.add_parser("benchmark", help="measure parameters, FLOPs, speed, loader")
    benchmark.add_argument("--what", choices=["params", "speed", "data", "scoring", "agreement"], required=True)
    benchmark.add_argument("--recipe", type=Path)
    _add_set(benchmark)
    benchmark.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    benchmark.add_argument("--json", type=Path, help="also write the figures as JSON")
    benchmark.add_argument("--warmup", type=int, default=5, help="untimed runs first (speed)")
    benchmark.add_argument("--repeats", type=int, default=30, help="timed runs per model (speed)")
    benchmark.add_argument("--frames", type=int, default=30, help="tracker frames timed (speed)")
    benchmark.add_argument("--no-memory", action="store_true", help="skip training-step memory")
    benchmark.add_argument("--models", metavar="NAME,...",
                           help="which models to time (speed): teacher, student, student_ce, "
                                "baseline and the student shapes student_half, student_third, "
                                "student_half_fused, student_third_fused, student_pooled, "
                                "student_half_pooled (default: all)")
    benchmark.add_argument("--compile", action="store_true",
                           help="also time each model and tracker under torch.compile (inductor)")
    benchmark.add_argument("--bf16", action="store_true", help="also time bf16 autocast")
    benchmark.add_argument("--int8", action="store_true",
                           help="also time int8 dynamically quantized Linear layers (CPU)")
    benchmark.add_argument("--checkpoint", type=Path,
                           help="trained model whose bf16 and int8 boxes are compared with fp32 (agreement)")
    benchmark.add_argument("--sequences", type=int, default=None,
                           help="agreement: at most this many sequences per dataset")
    benchmark.set_defaults(handler=cmd_benchmark)

    export = commands.add_parser("export", help="export a student checkpoint (ONNX)")
    export.add_argument("checkpoint", type=Path)
    export.add_argument("--format", choices=["onnx"], default="onnx")
    export.add_argument("--out", type=Path)
    export.add_argument("--check", action="store_true",
                        help="compare boxes and FPS with PyTorch through onnxruntime")
    export.set_defaults(handler=cmd_export)

    experiments = commands.add_parser(
        "experiments", add_help=False,
        help="run the paper-claim experiment arms (`mmtrack-kd experiments --help`)",
    )
    experiments.add_argument("arguments", nargs=argparse.REMAINDER)
    experiments.set_defaults(handler=cmd_experiments)

    plugins = commands.add_parser("plugins", help="list loaded plugins and what they register")
    plugins.set_defaults(handler=cmd_plugins)

    recipe = commands.add_parser("recipe", help="check or show a recipe")
    recipe_commands = recipe.add_subparsers(dest="recipe_command", metavar="ACTION", required=True)
    check = recipe_commands.add_parser("check", help="validate a recipe")
    check.add_argument("file", type=Path)
    _add_set(check)
    check.set_defaults(handler=cmd_recipe_check)
    show = recipe_commands.add_parser("show", help="print the resolved recipe")
    show.add_argument("file", type=Path)
    _add_set(show)
    show.set_defaults(handler=cmd_recipe_show)

    registry = registry if registry is not None else default_registry()
    for name, command in sorted(registry.commands.items()):
        if name in commands.choices:
            log.warning("plugin %s: command %r left out, mmtrack-kd has a built-in command of that "
                        "name", registry.owner("command", name).label, name)
            continue
        _add_plugin_command(commands.add_parser(name, help=command.help), command, registry)
    return parser


def _add_plugin_command(parser: argparse.ArgumentParser, command: Command, registry: Registry) -> None:
    """Give a plugin's command its flags and its handler; a plugin whose ``add_arguments``
    fails leaves the command listed, and running it says why it cannot run."""
    try:
        command.add_arguments(parser)
    except Exception as error:  # a broken plugin must not take the other commands down
        message = (f"command {command.name!r} of plugin {registry.owner('command', command.name).label} "
                   f"could not be set up: {type(error).__name__}: {error}")
        log.warning("%s", message)

        def refuse(args: argparse.Namespace) -> int:
            raise PluginError(message)

        parser.set_defaults(handler=refuse)
        return
    parser.set_defaults(handler=command.run)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status."""
    # Loading the plugins (for their commands) may warn about a broken one: through rich, as
    # every other log line; -v and -q apply once the arguments are parsed.
    setup_logging()
    try:
        parser = build_parser()
        # `experiments` hands its whole argument list to its own parser (mmtrack_kd.experiments.command).
        args, unknown = parser.parse_known_args(argv)
        # as given, for `train` to start its own processes with the same command line
        args.cli_arguments = list(sys.argv[1:] if argv is None else argv)
        if args.command == "experiments":
            args.arguments = list(args.arguments) + unknown
        elif unknown:
            parser.error(f"unrecognized arguments: {' '.join(unknown)}")
        setup_logging(args.verbose, args.quiet)
        return int(args.handler(args) or 0)
    except MmtrackError as error:
        if not error.quiet:  # a quiet error was already told by another process
            error_console.print(
                f"[bold red]error:[/bold red] {escape(str(error))}", highlight=False, soft_wrap=True
            )
        return error.exit_code
    except OSError as error:
        # the machine refusing a named file (permissions, a full or read-only disk) is the
        # user's to fix, not a bug: one line, no traceback
        if getattr(error, "filename", None) is None or error.errno not in _USER_ERRNOS:
            raise
        error_console.print(f"[bold red]error:[/bold red] {escape(_os_message(error))}",
                            highlight=False, soft_wrap=True)
        return MmtrackError.exit_code
    except KeyboardInterrupt:
        error_console.print("interrupted")
        return 130


_USER_ERRNOS = {errno.EACCES, errno.EPERM, errno.ENOSPC, errno.EROFS, errno.EDQUOT, errno.ENOENT,
                errno.ENOTDIR, errno.EISDIR, errno.EEXIST, errno.ENAMETOOLONG}


def _os_message(error: OSError) -> str:
    target = f" -> {error.filename2}" if getattr(error, "filename2", None) else ""
    return f"{error.filename}{target}: {error.strerror or error}"
