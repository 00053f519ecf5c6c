"""Loading weights into a built model, loudly: what was loaded, what started fresh, what was left over.

* :func:`load_pretrained` -- detect the format of any supported file (ours, OSTrack, MPLT, MAE,
  timm), convert it (:mod:`mmtrack_kd.checkpoints.foreign`), load it into an existing model and
  return a :class:`LoadReport` (missing and unexpected keys are always reported; shape
  mismatches raise :class:`~mmtrack_kd.errors.CheckpointError` naming the key and both shapes);
* :func:`check_declared` then refuses whatever is missing or left over beyond the parts a run
  declared may start fresh or go unused.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

import torch
from timm.models import adapt_input_conv
from torch import Tensor, nn

from mmtrack_kd.checkpoints.file import FORMAT, read_file
from mmtrack_kd.checkpoints.foreign import CONVERTERS, StateDict, detect_format, resize_pos_embed, summarise_keys
from mmtrack_kd.errors import CheckpointError


def non_finite_tensors(state: Mapping[str, Any]) -> list[str]:
    """Keys of the floating-point tensors of ``state`` that hold a NaN or an infinity."""
    return [key for key, value in state.items()
            if isinstance(value, Tensor) and value.is_floating_point()
            and not bool(torch.isfinite(value).all())]


def check_finite(state: Mapping[str, Any], source: str) -> None:
    """Refuse weights with NaN or inf: a tracker built from them still "tracks", with boxes made
    up by clipping NaN, and training from them diverges at once.

    Raises:
        CheckpointError: naming the file, the first keys and how many tensors are affected.
    """
    bad = non_finite_tensors(state)
    if bad:
        tensors = sum(isinstance(value, Tensor) and value.is_floating_point() for value in state.values())
        raise CheckpointError(
            f"checkpoint {source}: {len(bad)} of {tensors} tensors hold NaN or inf values "
            f"(first: {', '.join(bad[:3])}); it is not usable (a run that diverged?)"
        )


@dataclass
class LoadReport:
    """What a load did. ``missing`` keys of the model kept their fresh initialisation;
    ``unexpected`` keys of the checkpoint had no place in the model and were not loaded."""

    source: str
    format: str
    loaded: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def complete(self) -> bool:
        """Every model key was loaded and every checkpoint key was used."""
        return not self.missing and not self.unexpected

    def __str__(self) -> str:
        total = len(self.loaded) + len(self.missing)
        lines = [f"loaded {len(self.loaded)}/{total} tensors from {self.source} ({self.format})"]
        if self.missing:
            lines.append(f"  initialised fresh (not in checkpoint): {summarise_keys(self.missing)}")
        if self.unexpected:
            lines.append(f"  not loaded (no place in the model): {summarise_keys(self.unexpected)}")
        lines += [f"  {note}" for note in self.notes]
        return "\n".join(lines)


#: Named parts of a model, as parameter-name prefixes, for declaring which parts may start
#: fresh (or be left over) when a run starts from another file; any other name is taken as a
#: parameter-name prefix itself.
MODEL_PARTS: dict[str, tuple[str, ...]] = {
    "backbone": ("backbone.",),
    "prompters": ("rgb_prompters.", "aux_prompters."),
    "fusion": ("fusion.",),
    "token_fusion": ("token_fusion.",),
    "head": ("box_head.",),
    "modality_embed": ("modality_embed",),
    "aux_patch_embed": ("backbone.patch_embed_aux.",),
}


def part_prefixes(parts: Sequence[str]) -> tuple[str, ...]:
    """The parameter-name prefixes of named parts (:data:`MODEL_PARTS`) or raw prefixes."""
    return tuple(prefix for part in parts for prefix in MODEL_PARTS.get(part, (part,)))


def check_declared(report: LoadReport, fresh: Sequence[str] = (), unused: Sequence[str] = ()) -> None:
    """Refuse a partial load beyond what a run declared: every model key the file did not fill
    must belong to a ``fresh`` part, and every file key the model had no place for to an
    ``unused`` part (named parts or prefixes, see :func:`part_prefixes`).

    Raises:
        CheckpointError: naming the file, each undeclared missing or left-over key, and the
            declared parts.
    """
    fresh_prefixes, unused_prefixes = part_prefixes(fresh), part_prefixes(unused)
    missing = [key for key in report.missing if not key.startswith(fresh_prefixes)]
    left_over = [key for key in report.unexpected if not key.startswith(unused_prefixes)]
    if not missing and not left_over:
        return
    lines = [f"checkpoint {report.source} ({report.format}) does not fill the model as declared"]
    if missing:
        lines.append(f"  missing from the file ({len(missing)}): {', '.join(missing)}")
    if left_over:
        lines.append(f"  left over in the file ({len(left_over)}): {', '.join(left_over)}")
    lines.append(f"  parts declared fresh: {', '.join(fresh) or 'none'}; "
                 f"declared unused: {', '.join(unused) or 'none'}")
    raise CheckpointError("\n".join(lines))


def _fit_to_model(state: StateDict, model: nn.Module, source: str, log: list[str]) -> StateDict:
    """Resize position grids, reshape 1x1 conv <-> linear weights, derive ``patch_embed_aux``;
    raise :class:`CheckpointError` for any other shape mismatch."""
    target = model.state_dict()
    fitted: StateDict = {}
    reshaped = []
    for key, value in state.items():
        want = target.get(key)
        if want is None or value.shape == want.shape:
            fitted[key] = value
        elif key in ("backbone.pos_embed_z", "backbone.pos_embed_x") and value.shape[-1] == want.shape[-1]:
            grid = model.backbone.template_grid if key.endswith("_z") else model.backbone.search_grid
            try:
                fitted[key] = resize_pos_embed(value, grid)
            except ValueError as error:
                raise CheckpointError(f"checkpoint {source}: key {key}: {error}") from None
            log.append(f"{key} resized (bicubic) from {value.shape[1]} to {want.shape[1]} tokens")
        elif value.shape[2:] == (1, 1) and value.shape[:2] == want.shape:  # conv2d 1x1 -> linear
            fitted[key] = value.flatten(1)
            reshaped.append(key)
        elif want.shape[2:] == (1, 1) and want.shape[:2] == value.shape:  # linear -> conv2d 1x1
            fitted[key] = value[..., None, None]
            reshaped.append(key)
        else:
            raise CheckpointError(
                f"checkpoint {source}: key {key} has shape {tuple(value.shape)} in the checkpoint "
                f"but {tuple(want.shape)} in the model"
            )
    if reshaped:
        log.append(f"reshaped {len(reshaped)} 1x1 weights between Conv2d and Linear layouts")
    aux = "backbone.patch_embed_aux.proj"
    if f"{aux}.weight" in target and f"{aux}.weight" not in fitted and "backbone.patch_embed.proj.weight" in fitted:
        channels = target[f"{aux}.weight"].shape[1]
        fitted[f"{aux}.weight"] = adapt_input_conv(channels, fitted["backbone.patch_embed.proj.weight"].clone())
        if "backbone.patch_embed.proj.bias" in fitted:
            fitted[f"{aux}.bias"] = fitted["backbone.patch_embed.proj.bias"].clone()
        log.append(f"backbone.patch_embed_aux derived from the RGB patch embedding ({channels} channels)")
    return fitted


_BLOCK_KEY = re.compile(r"^backbone\.blocks\.(\d+)\.(.+)$")


def select_blocks(state: Mapping[str, Tensor], sources: Sequence[int], log: list[str]) -> StateDict:
    """Renumber a converted state dict's ViT blocks for a student of fewer blocks.

    ``sources[j]`` is the 0-indexed block of the checkpoint that becomes block ``j`` of the
    model; the checkpoint's other blocks are left out on purpose (noted in ``log``, not reported
    as unexpected). Everything outside ``backbone.blocks`` passes through unchanged.
    """
    wanted = {source: target for target, source in enumerate(sources)}
    selected: StateDict = {}
    present: set[int] = set()
    for key, value in state.items():
        match = _BLOCK_KEY.match(key)
        if match is None:
            selected[key] = value
            continue
        block = int(match.group(1))
        present.add(block)
        if block in wanted:
            selected[f"backbone.blocks.{wanted[block]}.{match.group(2)}"] = value
    missing = sorted(set(sources) - present)
    if missing:
        raise CheckpointError(f"the checkpoint has no block {', '.join(str(b + 1) for b in missing)} "
                              f"(1-indexed) to start a student block from; it has {len(present)} blocks")
    unused = sorted(present - set(sources))
    log.append(f"student blocks 1..{len(sources)} start from blocks {', '.join(str(b + 1) for b in sources)} "
               f"of the checkpoint" + (f"; its blocks {', '.join(str(b + 1) for b in unused)} are not used"
                                       if unused else ""))
    return selected


def load_state(
    model: nn.Module,
    state_dict: Mapping[str, Tensor],
    source: str = "state dict",
    format: str = FORMAT,
    notes: list[str] | None = None,
    strict: bool = False,
) -> LoadReport:
    """Load an already converted state dict; see :func:`load_pretrained`."""
    log = list(notes or [])
    fitted = _fit_to_model(dict(state_dict), model, source, log)
    expected = set(model.state_dict())
    report = LoadReport(
        source=source,
        format=format,
        loaded=[key for key in fitted if key in expected],
        missing=sorted(expected - set(fitted)),
        unexpected=[key for key in fitted if key not in expected],
        notes=log,
    )
    if strict and not report.complete:
        raise CheckpointError(f"checkpoint {source} does not match the model exactly:\n{report}")
    # Not silent: everything left out on either side is in the report the caller gets.
    model.load_state_dict({key: fitted[key] for key in report.loaded}, strict=False)
    return report


def load_pretrained(
    model: nn.Module, path: str | os.PathLike, strict: bool = False, block_sources: Sequence[int] | None = None
) -> LoadReport:
    """Load any supported checkpoint file into ``model`` and report what happened.

    OSTrack into a single-modality student loads completely (``strict=True`` passes); into a
    teacher or two-modality student the backbone and head load and the prompters, fusion and
    modality embedding are reported as initialised fresh. MAE and timm files give the backbone
    only. An MPLT file needs a teacher built with ``fusion="conv", mplt_compat=True``. Our own
    checkpoints load by name (a teacher's into a student gives backbone, fusion and head).

    ``block_sources``: for a student with fewer blocks, the 0-indexed checkpoint block that
    starts each of its blocks (:func:`select_blocks`); None: blocks load by their own numbers.

    Raises:
        CheckpointError: unreadable or unknown file; a shape mismatch (names key and shapes);
            with ``strict``, any missing or unexpected key.
    """
    checkpoint = read_file(path)
    source = str(path)
    format, state = detect_format(checkpoint, f"checkpoint {source}")
    check_finite(state, source)
    log: list[str] = []
    try:
        converted = CONVERTERS[format](state, model, log)
    except ValueError as error:  # e.g. a position embedding that is no grid of tokens
        raise CheckpointError(f"checkpoint {source} ({format} layout): {error}") from None
    if block_sources is not None:
        try:
            converted = select_blocks(converted, block_sources, log)
        except CheckpointError as error:
            raise CheckpointError(f"checkpoint {source}: {error}") from None
    return load_state(model, converted, source, format, log, strict)
