"""Checkpoints: our own format, and converters from OSTrack, MPLT, MAE and timm weights.

Read top to bottom: position-embedding helpers, one converter per foreign format (each a pure
function ``state_dict -> state_dict`` that takes the model for shapes, timm style, and may append
human-readable notes to ``log``), format detection, and the entry points:

* :func:`load_pretrained` -- detect the format of a file, convert, load into an existing model
  and return a :class:`LoadReport` (missing and unexpected keys are always reported; shape
  mismatches raise :class:`~mmtrack_kd.errors.CheckpointError` naming the key and both shapes);
  :func:`check_declared` then refuses whatever is missing or left over beyond the parts a run
  declared may start fresh.
* :func:`checkpoint_payload` / :func:`save_model_checkpoint` -- our format::

      {"format": "mmtrack-kd", "kind": "teacher" | "student", "model_config": {...},
       "model": state_dict, ...anything else the caller adds...}

* :func:`load_model_from_checkpoint` -- rebuild a model from our format and load it strictly.

Files are always read with ``torch.load(path, map_location="cpu", weights_only=True)``.
"""

from __future__ import annotations

import logging
import math
import os
import pickle
import re
import tempfile
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import torch
import torch.nn.functional as F
from timm.models import adapt_input_conv
from torch import Tensor, nn

from mmtrack_kd.errors import CheckpointError
from mmtrack_kd.models.build import MODEL_KINDS, build_model

logger = logging.getLogger(__name__)

FORMAT_NAME = "mmtrack-kd"
StateDict = dict[str, Tensor]
Log = list[str] | None

# -- position embeddings ----------------------------------------------------------------------


def resize_pos_embed(
    pos_embed: Tensor, new_grid: tuple[int, int], old_grid: tuple[int, int] | None = None
) -> Tensor:
    """Resample grid position embeddings ``(1, h*w, D)`` to ``(1, h'*w', D)`` (bicubic).

    ``old_grid`` defaults to the square grid of the token count. Bicubic with
    ``align_corners=False`` is what OSTrack uses to cut its template and search embeddings from
    the 14 x 14 grid of a 224-pixel ViT.
    """
    tokens, dim = pos_embed.shape[1], pos_embed.shape[2]
    if old_grid is None:
        side = math.isqrt(tokens)
        if side * side != tokens:
            raise ValueError(f"position embedding of {tokens} tokens is not a square grid")
        old_grid = (side, side)
    if tuple(old_grid) == tuple(new_grid):
        return pos_embed
    grid = pos_embed.reshape(1, old_grid[0], old_grid[1], dim).permute(0, 3, 1, 2).float()
    grid = F.interpolate(grid, size=tuple(new_grid), mode="bicubic", align_corners=False)
    return grid.permute(0, 2, 3, 1).reshape(1, new_grid[0] * new_grid[1], dim).to(pos_embed.dtype)


def _grid_tokens(pos_embed: Tensor, prefix_candidates: list[int]) -> Tensor:
    """Drop the prefix (class/register) tokens of a ViT ``pos_embed`` ``(1, P + h*w, D)``."""
    for prefix in prefix_candidates:
        rest = pos_embed.shape[1] - prefix
        if rest > 0 and math.isqrt(rest) ** 2 == rest:
            return pos_embed[:, prefix:]
    raise ValueError(f"cannot find a square grid in a pos_embed of {pos_embed.shape[1]} tokens")


def split_pos_embed(
    pos_embed: Tensor, model: nn.Module, num_prefix_tokens: int = 1, log: Log = None
) -> tuple[Tensor, Tensor]:
    """A ViT's ``pos_embed`` (with ``num_prefix_tokens`` class/register tokens) -> the model's
    ``(pos_embed_z, pos_embed_x)`` by :func:`resize_pos_embed` to its template and search grids."""
    grid = _grid_tokens(pos_embed, [num_prefix_tokens, 0, 1])
    backbone = model.backbone
    pos_z = resize_pos_embed(grid, backbone.template_grid)
    pos_x = resize_pos_embed(grid, backbone.search_grid)
    if log is not None:
        side = math.isqrt(grid.shape[1])
        log.append(
            f"pos_embed {side}x{side} resized (bicubic) to template {backbone.template_grid} "
            f"and search {backbone.search_grid} grids"
        )
    return pos_z, pos_x


# -- converters -------------------------------------------------------------------------------

_VIT_UNUSED = ("cls_token", "dist_token", "reg_token", "mask_token")
_VIT_UNUSED_PREFIXES = ("head.", "head_dist.", "fc_norm.", "pre_logits.", "attn_pool.", "decoder")


def convert_timm(state_dict: Mapping[str, Tensor], model: nn.Module, log: Log = None) -> StateDict:
    """A bare timm ViT state dict -> our ``backbone.*`` names.

    ``patch_embed.proj``, ``blocks.*`` and ``norm`` keep their names under ``backbone.``;
    ``pos_embed`` (with its class token) becomes ``pos_embed_z`` and ``pos_embed_x`` by
    :func:`split_pos_embed`; the class token, classifier and similar are dropped (noted).
    """
    out: StateDict = {}
    dropped = []
    prefix_tokens = sum(
        state_dict[name].shape[1] for name in ("cls_token", "dist_token", "reg_token") if name in state_dict
    )
    for key, value in state_dict.items():
        if key.startswith(("patch_embed.", "blocks.", "norm.")):
            out[f"backbone.{key}"] = value
        elif key == "pos_embed":
            out["backbone.pos_embed_z"], out["backbone.pos_embed_x"] = split_pos_embed(
                value, model, prefix_tokens, log
            )
        elif key in _VIT_UNUSED or key.startswith(_VIT_UNUSED_PREFIXES):
            dropped.append(key)
        else:
            out[key] = value  # reported as unexpected by the loader
    if dropped and log is not None:
        log.append(f"dropped {_summarise(dropped)} (not part of a tracking backbone)")
    return out


def convert_mae(state_dict: Mapping[str, Tensor], model: nn.Module, log: Log = None) -> StateDict:
    """An MAE checkpoint's ``model`` dict -> our names: the encoder as :func:`convert_timm`; the
    decoder (``decoder_*``) and ``mask_token`` of a pre-training checkpoint are dropped."""
    return convert_timm(state_dict, model, log)


def convert_ostrack(state_dict: Mapping[str, Tensor], model: nn.Module, log: Log = None) -> StateDict:
    """An OSTrack ``net`` dict -> our names (they already match: ``backbone.*``, ``box_head.*``).

    OSTrack keeps the pre-training ``backbone.cls_token`` and ``backbone.pos_embed`` beside the
    ``pos_embed_z`` / ``pos_embed_x`` it cut from them; they are dropped (or used to make the
    grids when a checkpoint lacks them). Grids of another size are resized by the loader.
    """
    out = dict(state_dict)
    dropped = [key for key in ("backbone.cls_token", "backbone.cls_pos_embed", "backbone.dist_token") if key in out]
    for key in dropped:
        del out[key]
    if "backbone.pos_embed" in out:
        pos_embed = out.pop("backbone.pos_embed")
        dropped.append("backbone.pos_embed")
        if "backbone.pos_embed_z" not in out or "backbone.pos_embed_x" not in out:
            out["backbone.pos_embed_z"], out["backbone.pos_embed_x"] = split_pos_embed(pos_embed, model, 1, log)
    if dropped and log is not None:
        log.append(f"dropped {', '.join(dropped)} (pre-training leftovers OSTrack does not use)")
    return out


def _mplt_depth(state_dict: Mapping[str, Tensor]) -> int:
    blocks = {int(key.split(".")[2]) for key in state_dict if key.startswith("backbone.blocks.")}
    return max(blocks) + 1 if blocks else 0


def convert_mplt(state_dict: Mapping[str, Tensor], model: nn.Module, log: Log = None) -> StateDict:
    """An MPLT teacher ``net`` dict -> a :class:`TwoStreamTeacher` built with ``fusion="conv"``
    and ``mplt_compat=True`` (1x1 weights also fit ``layer_type="linear"``, reshaped on load).

    MPLT's prompt block ``b`` has branches 0 (own stream), 1 (previous prompt), 2 (other
    stream); ``spatialattentionK.fc1/fc2`` is our ``channel_attention.fc1/fc2`` and
    ``tokenattentionK.conv1`` our ``spatial_attention.conv`` (MPLT names them the other way
    round). Its LayerNorms are shared between layers; ours are per prompter input, so they are
    copied to every place MPLT uses them:

    * initial prompters: own and other inputs both through ``prompt_norms.0``;
    * layer l, RGB direction (``prompt_blocks.l``): own ``prompt_norms.(l-1)``, previous prompt
      ``prompt_norms.l``, other ``prompt_norms_rev.(l-1)``; auxiliary direction
      (``prompt_blocks_rev.l``) the same with the two lists swapped.

    ``prompt_blocks.0`` / ``prompt_blocks_rev.0`` (never run by MPLT), each block's third
    channel attention (MPLT applies the second one to the third branch) and
    ``backbone.pos_embed_x_last`` (a position embedding MPLT creates and never uses) are
    dropped; the fuse layer ``mplt_fuse_search`` becomes ``fusion.reduce``.
    """
    depth = _mplt_depth(state_dict)
    source = dict(state_dict)
    out: StateDict = {}

    consumed: set[str] = set()

    def copy(src: str, dst: str) -> None:
        if src in source:  # an absent key shows up as missing in the load report
            out[dst] = source[src]
            consumed.add(src)

    def take(src: str, dst: str) -> None:
        for suffix in ("weight", "bias"):
            copy(f"{src}.{suffix}", f"{dst}.{suffix}")

    def branch(block: str, index: int, dst: str, channel: bool = True) -> None:
        if channel:
            take(f"{block}.spatialattention{index}.fc1", f"{dst}.channel_attention.fc1")
            take(f"{block}.spatialattention{index}.fc2", f"{dst}.channel_attention.fc2")
        take(f"{block}.tokenattention{index}.conv1", f"{dst}.spatial_attention.conv")

    norms = {"rgb": "backbone.prompt_norms", "aux": "backbone.prompt_norms_rev"}
    for stream, other, init, layers in (
        ("rgb", "aux", "backbone.prompt_blocks_init", "backbone.prompt_blocks"),
        ("aux", "rgb", "backbone.prompt_blocks_init_rev", "backbone.prompt_blocks_rev"),
    ):
        dst = f"{stream}_prompters.0"
        branch(init, 0, f"{dst}.own")
        branch(init, 1, f"{dst}.other")
        copy(f"{init}.fovea.smooth", f"{dst}.fovea.smooth")
        take("backbone.prompt_norms.0", f"{dst}.norm_own")
        take("backbone.prompt_norms.0", f"{dst}.norm_other")
        for layer in range(1, depth):
            block, dst = f"{layers}.{layer}", f"{stream}_prompters.{layer}"
            branch(block, 0, f"{dst}.own")
            branch(block, 1, f"{dst}.prev")
            branch(block, 2, f"{dst}.other", channel=False)
            copy(f"{block}.fovea.smooth", f"{dst}.fovea.smooth")
            take(f"{norms[stream]}.{layer - 1}", f"{dst}.norm_own")
            take(f"{norms[stream]}.{layer}", f"{dst}.norm_prev")
            take(f"{norms[other]}.{layer - 1}", f"{dst}.norm_other")

    unused = []
    log_extra: list[str] = []
    for key, value in source.items():
        if key in consumed:
            continue
        if key.startswith(("backbone.prompt_blocks.0.", "backbone.prompt_blocks_rev.0.")) or (
            key.startswith("backbone.prompt_blocks") and ".spatialattention2." in key
        ):
            unused.append(key)  # blocks MPLT never runs
        elif key == "backbone.pos_embed_x_last":
            log_extra.append(f"dropped {key} (MPLT creates it and never uses it)")
        elif key.startswith("mplt_fuse_search."):
            out["fusion.reduce." + key[len("mplt_fuse_search."):]] = value
        else:
            out[key] = value
    if log is not None:
        log.append(
            "MPLT prompters mapped (layer norms copied to every input that shares them); "
            f"dropped {len(unused)} never-used keys ({_summarise(unused)})"
        )
        log.extend(log_extra)
    return convert_ostrack(out, model, log)


def convert_own(state_dict: Mapping[str, Tensor], model: nn.Module, log: Log = None) -> StateDict:
    """Our own format needs no renaming (a teacher's weights load into a student by name)."""
    return dict(state_dict)


CONVERTERS: dict[str, Callable[[Mapping[str, Tensor], nn.Module, Log], StateDict]] = {
    FORMAT_NAME: convert_own,
    "ostrack": convert_ostrack,
    "mplt": convert_mplt,
    "mae": convert_mae,
    "timm": convert_timm,
}

# -- reading and detecting --------------------------------------------------------------------


class ForeignObject:
    """Inert stand-in for an object another code base pickled beside its weights.

    OSTrack's (pytracking's) trainer saves its ``settings``, ``stats`` meters and ``constructor``
    next to ``net``; ``weights_only=True`` refuses their classes, and importing that code base to
    unpickle them is what ``weights_only`` exists to prevent. Each such global is read as this
    class instead: it is called or built with the pickled arguments and state, keeps them as
    data, and runs nothing.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.args, self.kwargs = args, kwargs

    def __setstate__(self, state: Any) -> None:
        self.state = state


def _foreign_globals(path: Path) -> list[str]:
    """The globals of a checkpoint that ``weights_only`` loading does not allow."""
    try:
        return list(torch.serialization.get_unsafe_globals_in_checkpoint(path))
    except Exception:  # not a zip checkpoint, or unreadable: the first error says enough
        return []


#: How torch names a global that weights-only loading refuses (``GLOBAL posix.system``).
_REFUSED_GLOBAL = re.compile(r"GLOBAL ([\w.]+)")


def _unreadable(error: BaseException) -> str:
    """Why a file is no checkpoint, in a line. torch's weights-only text opens by suggesting
    ``weights_only=False`` (running the file's code): never advice to pass on."""
    text = str(error).strip()
    refused = _REFUSED_GLOBAL.findall(text)
    if refused:
        return (f"refused: it needs Python objects that are never loaded "
                f"({', '.join(dict.fromkeys(refused))}); not a checkpoint of weights")
    if "Weights only load failed" in text:
        detail = text.partition("WeightsUnpickler error:")[2].strip().splitlines()
        return f"not a readable PyTorch checkpoint (pickled data weights-only loading refuses: {detail[0] if detail else 'unknown'})"
    first = text.splitlines()[0] if text else type(error).__name__
    return f"not a readable PyTorch checkpoint ({first})"


def read_checkpoint(path: str | os.PathLike) -> dict[str, Any]:
    """``torch.load(path, map_location="cpu", weights_only=True)`` with errors that name the file.

    Objects of classes the file's own code base pickled (OSTrack's training settings and
    statistics) are read as inert :class:`ForeignObject` placeholders, never by importing or
    running that code; only the tensors are used.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path}: no such file")
    # Random or truncated bytes fail deep inside the unpickler with almost any exception type
    # (IndexError, KeyError, struct and zip errors): all of them mean "not a readable file".
    readable = (Exception,)
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except readable as error:
        foreign = _foreign_globals(path) if isinstance(error, pickle.UnpicklingError) else []
        try:
            if not foreign:
                raise
            with torch.serialization.safe_globals([(ForeignObject, name) for name in foreign]):
                checkpoint = torch.load(path, map_location="cpu", weights_only=True)
        except readable as error:  # e.g. TypeError: a placeholder where a tensor type was
            raise CheckpointError(f"checkpoint {path}: {_unreadable(error)}") from None
        logger.info("checkpoint %s: %d pickled objects of other code read as inert placeholders (%s)",
                 path, len(foreign), ", ".join(foreign))
    if not isinstance(checkpoint, dict):
        raise CheckpointError(f"checkpoint {path}: holds a {type(checkpoint).__name__}, not a dict of weights")
    return checkpoint


def _is_state_dict(value: Any) -> bool:
    return isinstance(value, dict) and bool(value) and all(isinstance(v, Tensor) for v in value.values())


def detect_format(checkpoint: Mapping[str, Any], source: str = "checkpoint") -> tuple[str, Mapping[str, Tensor]]:
    """``(format, state_dict)`` of a loaded checkpoint: ``"mmtrack-kd"``, ``"ostrack"``,
    ``"mplt"``, ``"mae"`` or ``"timm"``; anything else raises :class:`CheckpointError`."""
    if checkpoint.get("format") == FORMAT_NAME:
        state = checkpoint.get("model")
        if not _is_state_dict(state):
            raise CheckpointError(f"{source}: mmtrack-kd checkpoint without a 'model' state dict")
        return FORMAT_NAME, state
    if _is_state_dict(checkpoint.get("net")):
        state = checkpoint["net"]
        mplt = any(k.startswith(("backbone.prompt_blocks", "mplt_fuse_search.")) for k in state)
        return ("mplt" if mplt else "ostrack"), state
    if _is_state_dict(checkpoint.get("model")) and any(k.startswith("blocks.") for k in checkpoint["model"]):
        return "mae", checkpoint["model"]
    nested = checkpoint.get("state_dict")
    state = nested if _is_state_dict(nested) else checkpoint
    if _is_state_dict(state):
        if any(k.startswith("backbone.") for k in state):
            mplt = any(k.startswith(("backbone.prompt_blocks", "mplt_fuse_search.")) for k in state)
            return ("mplt" if mplt else "ostrack"), state
        if any(k.startswith("blocks.") for k in state):
            return "timm", state
    keys = ", ".join(sorted(map(str, checkpoint))[:8])
    raise CheckpointError(
        f"{source}: not a checkpoint format we know (mmtrack-kd, OSTrack 'net', MPLT 'net', "
        f"MAE 'model', timm state dict); top-level keys: {keys}"
    )


# -- loading ----------------------------------------------------------------------------------


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


def _summarise(keys: list[str], limit: int = 4) -> str:
    """``prefix.* (n)`` per top-level module, so a report stays a few lines long."""
    if not keys:
        return "none"
    groups: dict[str, list[str]] = defaultdict(list)
    for key in keys:
        groups[key.split(".")[0]].append(key)
    parts = []
    for prefix, members in groups.items():
        if len(members) <= limit:
            parts.extend(members)
        else:
            parts.append(f"{prefix}.* ({len(members)} keys)")
    return ", ".join(parts)


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
            lines.append(f"  initialised fresh (not in checkpoint): {_summarise(self.missing)}")
        if self.unexpected:
            lines.append(f"  not loaded (no place in the model): {_summarise(self.unexpected)}")
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
    format: str = FORMAT_NAME,
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
    checkpoint = read_checkpoint(path)
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


# -- our own format ---------------------------------------------------------------------------


def checkpoint_payload(model: nn.Module, **extra: Any) -> dict[str, Any]:
    """The dict our checkpoints hold: format, kind, model_config, model state dict, plus ``extra``
    (plain data only, so that ``weights_only=True`` can read it back)."""
    kind = getattr(model, "kind", "")
    if kind not in MODEL_KINDS:
        raise ValueError(f"{type(model).__name__} is not a tracking model of a known kind")
    payload = {"format": FORMAT_NAME, "kind": kind, "model_config": dict(model.config), "model": model.state_dict()}
    clash = set(extra) & set(payload)
    if clash:
        raise ValueError(f"extra keys {sorted(clash)} would overwrite the checkpoint's own")
    payload.update(extra)
    return payload


def save_model_checkpoint(model: nn.Module, path: str | os.PathLike, **extra: Any) -> Path:
    """Write :func:`checkpoint_payload` atomically (temporary file in the same folder, then rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    os.close(handle)
    try:
        torch.save(checkpoint_payload(model, **extra), temporary)
        os.replace(temporary, path)
    finally:
        if os.path.exists(temporary):
            os.unlink(temporary)
    return path


def load_model_from_checkpoint(path: str | os.PathLike) -> tuple[nn.Module, dict[str, Any]]:
    """Rebuild the model an mmtrack-kd checkpoint describes and load its weights strictly.

    Returns the model (in eval mode, on the CPU) and ``info``: every other entry of the
    checkpoint (``kind``, ``model_config``, whatever the trainer stored) plus ``report``.
    """
    checkpoint = read_checkpoint(path)
    source = str(path)
    format, state = detect_format(checkpoint, f"checkpoint {source}")
    if format != FORMAT_NAME:
        raise CheckpointError(
            f"checkpoint {source} is an {format} checkpoint without a model description; build the "
            "model from a recipe and load it with load_pretrained()"
        )
    check_finite(state, source)
    kind, config = checkpoint.get("kind"), checkpoint.get("model_config")
    if kind not in MODEL_KINDS or not isinstance(config, dict):
        raise CheckpointError(f"checkpoint {source}: kind {kind!r} / model_config do not describe a known model")
    try:
        model = build_model(kind, config)
    except (TypeError, ValueError) as error:
        raise CheckpointError(f"checkpoint {source}: model_config cannot build a {kind}: {error}") from error
    report = load_state(model, state, source, format, strict=True)
    info = {key: value for key, value in checkpoint.items() if key != "model"}
    info["report"] = report
    return model.eval(), info
