"""Foreign checkpoint formats: one converter per source (OSTrack, MPLT, MAE, timm) and detection.

Read top to bottom, timm style: position-embedding helpers, the converters (each a pure function
``state_dict -> state_dict`` that takes the model for shapes and may append human-readable notes
to ``log``), the table of converters, and :func:`detect_format`, which tells a loaded file's
format from its keys. :func:`mmtrack_kd.checkpoints.loading.load_pretrained` is the entry point
that uses them.
"""

from __future__ import annotations

import math
from collections import defaultdict
from typing import Any, Callable, Mapping

import torch.nn.functional as F
from torch import Tensor, nn

from mmtrack_kd.checkpoints.file import FORMAT
from mmtrack_kd.errors import CheckpointError

StateDict = dict[str, Tensor]
Log = list[str] | None


def summarise_keys(keys: list[str], limit: int = 4) -> str:
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
        log.append(f"dropped {summarise_keys(dropped)} (not part of a tracking backbone)")
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
            f"dropped {len(unused)} never-used keys ({summarise_keys(unused)})"
        )
        log.extend(log_extra)
    return convert_ostrack(out, model, log)


def convert_own(state_dict: Mapping[str, Tensor], model: nn.Module, log: Log = None) -> StateDict:
    """Our own format needs no renaming (a teacher's weights load into a student by name)."""
    return dict(state_dict)


CONVERTERS: dict[str, Callable[[Mapping[str, Tensor], nn.Module, Log], StateDict]] = {
    FORMAT: convert_own,
    "ostrack": convert_ostrack,
    "mplt": convert_mplt,
    "mae": convert_mae,
    "timm": convert_timm,
}

# -- detecting ----------------------------------------------------------------------------------


def _is_state_dict(value: Any) -> bool:
    return isinstance(value, dict) and bool(value) and all(isinstance(v, Tensor) for v in value.values())


def detect_format(checkpoint: Mapping[str, Any], source: str = "checkpoint") -> tuple[str, Mapping[str, Tensor]]:
    """``(format, state_dict)`` of a loaded checkpoint: ``"mmtrack-kd"``, ``"ostrack"``,
    ``"mplt"``, ``"mae"`` or ``"timm"``; anything else raises :class:`CheckpointError`."""
    if checkpoint.get("format") == FORMAT:
        state = checkpoint.get("model")
        if not _is_state_dict(state):
            raise CheckpointError(f"{source}: mmtrack-kd checkpoint without a 'model' state dict")
        return FORMAT, state
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
