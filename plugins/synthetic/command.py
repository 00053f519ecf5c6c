"""``mmtrack-kd synth``: the synthetic plugin's own command (generate a root, or the preview).

Registered through the ``mmtrack_kd_register_commands`` hook in :mod:`plugins.synthetic`; the
CLI adds these flags under ``synth`` and calls :func:`run`.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from pydantic import ValidationError
from rich.console import Console

from mmtrack_kd.data import RecipeError, validation_problems
from plugins.synthetic.generate import ensure_generated
from plugins.synthetic.options import FINGERPRINT_FIELDS, SyntheticOptions
from plugins.synthetic.preview import write_preview

#: The command's name and its line in ``mmtrack-kd --help``.
NAME = "synth"
HELP = "generate the synthetic benchmark"

# Flags whose option field has another name (the rest are `--<field>`).
_FLAGS = {"n_train": "--sequences", "n_test": "--test-sequences", "on_mismatch": "--force"}

# Standard output, printed as every mmtrack-kd command prints (rich, wrapped to the terminal).
console = Console()


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The flags of ``mmtrack-kd synth``."""
    parser.add_argument("--layout", choices=["lasher", "depthtrack", "visevent"], default="lasher")
    parser.add_argument("--root", type=Path, help="default: data/synthetic-<layout>")
    parser.add_argument("--sequences", type=int, default=100, help="training sequences")
    parser.add_argument("--test-sequences", type=int, help="test sequences (default: --sequences)")
    parser.add_argument("--frames", type=int, default=100, help="frames per sequence")
    parser.add_argument("--width", type=int, default=320)
    parser.add_argument("--height", type=int, default=240)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workers", type=int, default=2, help="processes (same bytes for any)")
    parser.add_argument("--force", action="store_true", help="rewrite data made with other options")
    parser.add_argument("--preview", action="store_true",
                        help="only write a contact sheet of every layout (PNG)")
    parser.add_argument("--out", type=Path, help="contact-sheet path (default synthetic-preview.png)")


def run(args: argparse.Namespace) -> int:
    """Generate the data (or the preview) the flags ask for and print what was done."""
    for line in synth(
        args.root, layout=args.layout, sequences=args.sequences,
        test_sequences=args.test_sequences, frames=args.frames, width=args.width,
        height=args.height, seed=args.seed, workers=args.workers, force=args.force,
        preview=args.preview, out=args.out,
    ):
        console.print(line)
    return 0


def synth(
    root: Path | None = None,
    *,
    layout: str = "lasher",
    sequences: int = 20,
    test_sequences: int | None = None,
    frames: int = 100,
    width: int = 320,
    height: int = 240,
    seed: int = 0,
    workers: int = 2,
    force: bool = False,
    preview: bool = False,
    out: Path | None = None,
    registry: Any = None,
) -> list[str]:
    """What ``mmtrack-kd synth`` does; returns the lines to print.

    Without ``preview``: generate ``root`` (default ``data/synthetic-<layout>``; ``sequences``
    train and ``test_sequences``, default the same number, test sequences) unless it already
    holds exactly that data; ``force`` rewrites data generated with other options. With
    ``preview``: write a contact sheet PNG (a few frames of every stream of each of the three
    layouts, from small generated samples with the same seed and sizes) to ``out`` (default
    ``synthetic-preview.png``) and generate nothing else. ``registry``: where the preview finds
    the plugins (default: the installed ones).

    Raises:
        RecipeError: values the options refuse, each named by its flag.
        DataError: ``root`` holds other data, or other synthetic data without ``force``.
    """
    if preview:
        path = write_preview(
            Path(out) if out else Path("synthetic-preview.png"),
            seed=seed,
            frames=frames,
            width=width,
            height=height,
            registry=registry,
        )
        return [f"wrote the synthetic-data contact sheet {path}"]
    if root is None:
        root = Path("data") / f"synthetic-{layout}"
    try:
        options = SyntheticOptions(
            root=Path(root),
            layout=layout,  # type: ignore[arg-type]
            n_train=sequences,
            n_test=sequences if test_sequences is None else test_sequences,
            frames=frames,
            width=width,
            height=height,
            seed=seed,
            workers=workers,
            on_mismatch="regenerate" if force else "error",
        )
    except ValidationError as error:
        problems = [(_FLAGS.get(path, "--" + path.replace("_", "-")), message)
                    for path, message in validation_problems(error)]
        raise RecipeError(f"mmtrack-kd {NAME}", problems, what="options of") from None
    report = ensure_generated(Path(root), options)
    return [report.message, f"recipe dataset entry: {recipe_entry(options)}"]


def recipe_entry(options: SyntheticOptions) -> str:
    """A recipe dataset entry (YAML flow mapping) that reads the data ``options`` describe:
    the root, the split, and every generation option that differs from its default."""
    defaults = SyntheticOptions().model_dump(mode="json")
    current = options.model_dump(mode="json")
    parts = ["name: synthetic", f"layout: {options.layout}", f"root: {options.root}", f"split: {options.split}"]
    for key in FINGERPRINT_FIELDS:
        if key != "layout" and current[key] != defaults[key]:
            parts.append(f"{key}: {json.dumps(current[key])}")
    return "{" + ", ".join(parts) + "}"
