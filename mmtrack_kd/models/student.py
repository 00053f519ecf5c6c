"""The one-stream student: one ViT over the tokens of every modality (paper section 3.3).

Tokens are ``[z_rgb, x_rgb, z_aux, x_aux]`` -- the teacher's concatenation order, so the
teacher's block-l features line up with the student's without a projection. Both modalities use
the same position embeddings, plus an optional learned modality embedding (zero at the start, so
a student initialised from a single-modality model starts as that model on each modality).
After the final norm the modalities' search tokens are fused exactly as in the teacher.

``num_modalities=1`` is exactly OSTrack: tokens ``[z, x]``, no fusion, the head on ``x``.

Candidate elimination (OSTrack's, beyond the paper): at the chosen blocks, search tokens that
receive little attention from the template centre are dropped after the attention and before the
MLP, and later blocks run on the kept tokens only; after the last block dropped positions are
zero-filled so the head sees the full map. With two modalities the choice is made *within each
modality's search tokens* (each keeps ``ceil(ratio * K)`` of its ``K``), so the token layout stays
``[z_rgb, x_rgb', z_aux, x_aux']`` with equal parts; the score of a search token is its attention
from the centre token(s) of *every* modality's template, averaged over those queries and the heads
(softmax over all tokens, as in OSTrack). Taking both templates lets a modality in which the
target is visible vouch for the other's tokens. With one modality this is OSTrack's rule exactly. ``ce_pairing="paired"`` keeps or drops
co-located tokens together: a grid position is scored by the mean of its two modalities' scores and
both modalities keep the same ``ceil(ratio * K)`` positions.

Cheaper shapes (beyond the paper; the distillation stage trains them all alike):

* **depth**: fewer blocks than the teacher. The student does not know where its blocks came from;
  the trainer starts block ``j`` from a chosen teacher block and pairs them for feature KD.
* **token fusion** (``fuse_after=k``): after block ``k`` every RGB token and the auxiliary token at
  the same position (template and search alike) are fused into one by ``token_fusion``, a
  ``Linear(2D -> D)`` that starts as their mean; blocks ``k+1 ...`` run on ``Nz + Nx`` tokens
  instead of ``2 (Nz + Nx)``, and the head reads the fused search tokens directly (no final
  fusion). Feature KD after block ``k`` matches the student's fused token to the mean of the
  teacher's two tokens at that position (:meth:`OneStreamStudent.teacher_target`): the target the
  mean-initialised fusion starts from.
* **coarser auxiliary grid** (``aux_pool=p``): the auxiliary patch tokens (and their position
  embeddings) are average-pooled ``p x p`` before the first block, so the auxiliary stream has
  ``Nz / p^2 + Nx / p^2`` tokens (64 search tokens instead of 256 at ``p=2``). Before the final
  fusion (or the token fusion) the auxiliary tokens are brought back to the full grid by
  nearest-neighbour repetition. Feature KD pools the teacher's auxiliary tokens the same way.

Candidate elimination needs the plain layout (no token fusion, no pooling).
"""

from __future__ import annotations

import math
from dataclasses import asdict
from typing import Any, Literal, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from mmtrack_kd.models.base import TrackerOutput, TrackingModel
from mmtrack_kd.models.fusion import FusionKind, SearchFusion, map_to_tokens, tokens_to_map
from mmtrack_kd.models.head import CenterHead, HeadOutput
from mmtrack_kd.models.vit import BackboneSettings, ViTBackbone, attention_with_probe

TemplateRange = Literal["centre", "all"]
Pairing = Literal["independent", "paired"]


class OneStreamStudent(TrackingModel):
    """One-stream student (or, with ``num_modalities=1``, OSTrack).

    Args:
        head_channels: first width of the centre head (256).
        fusion: ``"linear"`` or ``"conv"`` (as the teacher; unused with one modality).
        num_modalities: 2 (RGB + auxiliary) or 1 (RGB only, OSTrack).
        modality_embedding: add a learned, zero-initialised embedding per modality to its tokens
            (ignored with one modality, which must stay exactly OSTrack).
        ce_layers: 0-indexed blocks that eliminate candidates (OSTrack: 3, 6, 9); empty: none.
        ce_keep_ratio: share of the current search tokens kept at each of those blocks when
            ``forward`` gets no ``keep_ratio`` (OSTrack: 0.7). 1.0 is no elimination.
        ce_template_range: ``"centre"`` (OSTrack's CTR_POINT: the template's centre token) or
            ``"all"`` template tokens as the queries whose attention scores the search tokens.
        ce_pairing: ``"independent"`` (each modality keeps its own best tokens) or ``"paired"``
            (co-located RGB and auxiliary tokens are kept or dropped together).
        fuse_after: fuse co-located RGB and auxiliary tokens into one after this many blocks
            (1 .. depth - 1); 0: never (the paper's student).
        aux_pool: average-pool the auxiliary tokens ``aux_pool x aux_pool`` (1: full grid).
        backbone_args: the backbone's settings by name (:class:`BackboneSettings`:
            ``template_size``, ``search_size``, ``patch_size``, ``embed_dim``, ``depth``, ...).
    """

    kind = "student"

    def __init__(
        self,
        *,
        head_channels: int = 256,
        fusion: FusionKind = "linear",
        num_modalities: int = 2,
        modality_embedding: bool = False,
        ce_layers: Sequence[int] = (),
        ce_keep_ratio: float = 1.0,
        ce_template_range: TemplateRange = "centre",
        ce_pairing: Pairing = "independent",
        fuse_after: int = 0,
        aux_pool: int = 1,
        **backbone_args: Any,
    ) -> None:
        super().__init__()
        settings = BackboneSettings(**backbone_args)
        embed_dim, depth = settings.embed_dim, settings.depth
        if num_modalities not in (1, 2):
            raise ValueError(f"num_modalities must be 1 or 2, got {num_modalities}")
        bad = [layer for layer in ce_layers if not 0 <= layer < depth]
        if bad:
            raise ValueError(f"ce_layers {bad} outside 0..{depth - 1} (0-indexed blocks)")
        _check_ratio(ce_keep_ratio)
        if ce_template_range not in ("centre", "all"):
            raise ValueError(f"ce_template_range must be 'centre' or 'all', got {ce_template_range!r}")
        if ce_pairing not in ("independent", "paired"):
            raise ValueError(f"ce_pairing must be 'independent' or 'paired', got {ce_pairing!r}")
        _check_shape(num_modalities, depth, fuse_after, aux_pool, ce_layers,
                     settings.template_size // settings.patch_size, settings.search_size // settings.patch_size)
        self.config = dict(
            **asdict(settings), head_channels=head_channels, fusion=fusion, num_modalities=num_modalities,
            modality_embedding=modality_embedding, ce_layers=sorted(set(ce_layers)),
            ce_keep_ratio=ce_keep_ratio, ce_template_range=ce_template_range, ce_pairing=ce_pairing,
            fuse_after=fuse_after, aux_pool=aux_pool,
        )  # fmt: skip
        self.fuse_after = fuse_after
        self.aux_pool = aux_pool
        self.ce_pairing = ce_pairing
        self.num_modalities = num_modalities
        self.ce_layers = frozenset(ce_layers)
        self.backbone = ViTBackbone(settings)
        self.modality_embed = (
            nn.Parameter(torch.zeros(num_modalities, 1, embed_dim))
            if modality_embedding and num_modalities > 1
            else None
        )
        self.fusion = (
            SearchFusion(embed_dim, num_modalities, fusion) if num_modalities > 1 and not fuse_after else None
        )
        self.token_fusion = TokenFusion(embed_dim) if fuse_after else None
        self.box_head = CenterHead(embed_dim, head_channels)
        hz, wz = self.backbone.template_grid
        centre = [((hz - 1) // 2) * wz + (wz - 1) // 2]  # OSTrack's centre token (3, 3) of 8 x 8
        self._ce_queries = centre if ce_template_range == "centre" else list(range(hz * wz))

    def forward_embedded(
        self,
        template_patches: Sequence[Tensor],
        searches: Sequence[Tensor],
        return_features: bool = False,
        keep_ratio: float | None = None,
    ) -> TrackerOutput:
        """See :meth:`TrackingModel.forward`. ``keep_ratio`` overrides ``ce_keep_ratio``."""
        self._check_searches(searches, template_patches)
        ratio = self.config["ce_keep_ratio"] if keep_ratio is None else float(keep_ratio)
        _check_ratio(ratio)
        backbone = self.backbone
        segments = []
        for modality in range(self.num_modalities):
            z = template_patches[modality] + backbone.pos_embed_z
            x = backbone.patchify(searches[modality], modality) + backbone.pos_embed_x
            if modality > 0 and self.aux_pool > 1:
                # pooling the position-embedded tokens pools patches and positions alike
                z, x = self._pool(z, backbone.template_grid), self._pool(x, backbone.search_grid)
            if self.modality_embed is not None:
                z, x = z + self.modality_embed[modality], x + self.modality_embed[modality]
            segments += [z, x]
        tokens = torch.cat(segments, dim=1)  # (B, sum of the modalities' Nz + Nx, D)

        # index: (B, M, K) grid positions of the K search tokens each modality still has;
        # None while nothing was dropped.
        index: Tensor | None = None
        states: list[tuple[Tensor, Tensor | None]] | None = [] if return_features else None
        for layer, block in enumerate(backbone.blocks):
            if ratio < 1.0 and layer in self.ce_layers:
                tokens, index = self._block_with_elimination(block, tokens, index, ratio)
            else:
                tokens = block(tokens)
            if states is not None:
                states.append((tokens, index))
            if layer + 1 == self.fuse_after:
                tokens = self._fuse(tokens)

        tokens = backbone.norm(tokens)
        if self.fuse_after:
            head = self.predict([tokens[:, backbone.num_template_tokens :]])
        elif self.aux_pool > 1:
            per_stream = backbone.num_template_tokens + backbone.num_search_tokens
            aux_template = backbone.num_template_tokens // self.aux_pool**2
            head = self.predict([tokens[:, backbone.num_template_tokens : per_stream],
                                 tokens[:, per_stream + aux_template :]])
        else:
            search = [self._search_tokens(tokens, index, modality) for modality in range(self.num_modalities)]
            head = self.predict(search)
        if states is None:
            return TrackerOutput.from_head(head)
        if index is None:  # nothing eliminated: features are the block outputs as they are
            return TrackerOutput.from_head(head, [state for state, _ in states])
        expanded = [self._expand(state, state_index) for state, state_index in states]
        return TrackerOutput.from_head(head, [f for f, _ in expanded], [m for _, m in expanded])

    # -- cheaper shapes ---------------------------------------------------------------------

    def _pool(self, tokens: Tensor, grid: tuple[int, int]) -> Tensor:
        """``(B, h*w, D)`` row-major -> ``(B, h*w / p^2, D)``, mean of each ``p x p`` cell."""
        return map_to_tokens(F.avg_pool2d(tokens_to_map(tokens, grid), self.aux_pool))

    def _unpool(self, tokens: Tensor, grid: tuple[int, int]) -> Tensor:
        """Pooled auxiliary tokens back on the full ``grid`` (each repeated ``p x p`` times)."""
        pooled = (grid[0] // self.aux_pool, grid[1] // self.aux_pool)
        return map_to_tokens(tokens_to_map(tokens, pooled).repeat_interleave(self.aux_pool, 2)
                             .repeat_interleave(self.aux_pool, 3))

    def _streams(self, tokens: Tensor) -> tuple[Tensor, Tensor]:
        """Joint tokens -> (RGB ``(B, Nz+Nx, D)``, auxiliary on the full grids ``(B, Nz+Nx, D)``)."""
        backbone = self.backbone
        per_stream = backbone.num_template_tokens + backbone.num_search_tokens
        rgb, aux = tokens[:, :per_stream], tokens[:, per_stream:]
        if self.aux_pool > 1:
            nz = backbone.num_template_tokens // self.aux_pool**2
            aux = torch.cat([self._unpool(aux[:, :nz], backbone.template_grid),
                             self._unpool(aux[:, nz:], backbone.search_grid)], dim=1)
        return rgb, aux

    def _fuse(self, tokens: Tensor) -> Tensor:
        """``[z_rgb, x_rgb, z_aux, x_aux]`` -> ``[z, x]``, one token per position."""
        rgb, aux = self._streams(tokens)
        return self.token_fusion(rgb, aux)

    def teacher_target(self, block: int, teacher_tokens: Tensor) -> Tensor:
        """The teacher's tokens after one of its blocks, arranged as this student's tokens after
        its block ``block`` (1-indexed), for feature distillation.

        ``teacher_tokens`` is ``(B, 2 (Nz + Nx), D)`` in the order ``[z_rgb, x_rgb, z_aux, x_aux]``
        (:class:`TrackerOutput`). The plain student takes it as it is; after token fusion the
        target of a fused token is the mean of the teacher's RGB and auxiliary tokens at its
        position; with a pooled auxiliary grid the teacher's auxiliary tokens are pooled alike.
        """
        if self.num_modalities != 2:
            raise ValueError("a single-modality student has no two-stream teacher to match")
        backbone = self.backbone
        per_stream = backbone.num_template_tokens + backbone.num_search_tokens
        rgb, aux = teacher_tokens[:, :per_stream], teacher_tokens[:, per_stream:]
        if self.fuse_after and block > self.fuse_after:
            return 0.5 * (rgb + aux)
        if self.aux_pool > 1:
            nz = backbone.num_template_tokens
            aux = torch.cat([self._pool(aux[:, :nz], backbone.template_grid),
                             self._pool(aux[:, nz:], backbone.search_grid)], dim=1)
        return torch.cat([rgb, aux], dim=1)

    def predict(self, search_tokens: Sequence[Tensor]) -> HeadOutput:
        """As :meth:`TrackingModel.predict`; pooled auxiliary search tokens go back to the full grid."""
        if self.aux_pool > 1 and len(search_tokens) == 2:
            search_tokens = [search_tokens[0], self._unpool(search_tokens[1], self.backbone.search_grid)]
        return super().predict(search_tokens)

    # -- candidate elimination --------------------------------------------------------------

    def _kept(self, tokens: Tensor) -> int:
        """Search tokens per modality in a (possibly reduced) sequence."""
        return tokens.shape[1] // self.num_modalities - self.backbone.num_template_tokens

    def _block_with_elimination(
        self, block: nn.Module, tokens: Tensor, index: Tensor | None, ratio: float
    ) -> tuple[Tensor, Tensor | None]:
        """A timm ``Block`` that drops search tokens between its attention and its MLP.

        ``tokens`` is ``(B, M * (Nz + K), D)``; returns ``(B, M * (Nz + K'), D)`` with
        ``K' = ceil(ratio * K)`` and the updated ``index`` ``(B, M, K')``.
        """
        batch, _, dim = tokens.shape
        num_template = self.backbone.num_template_tokens
        kept = self._kept(tokens)
        keep = math.ceil(ratio * kept)
        if keep >= kept:  # OSTrack: nothing to drop, the plain block
            return block(tokens), index
        stride = num_template + kept
        queries = torch.tensor(
            [modality * stride + q for modality in range(self.num_modalities) for q in self._ce_queries],
            device=tokens.device,
        )
        attended, probe = attention_with_probe(block.attn, block.norm1(tokens), queries)
        tokens = tokens + block.drop_path1(block.ls1(attended))
        score = probe.mean(dim=(1, 2))  # (B, N): mean over heads and template queries
        if index is None:
            full = torch.arange(self.backbone.num_search_tokens, device=tokens.device)
            index = full.expand(batch, self.num_modalities, -1)
        segments, new_index = [], []
        per_modality = [score[:, m * stride + num_template : m * stride + num_template + kept]
                        for m in range(self.num_modalities)]
        if self.ce_pairing == "paired":  # one choice of positions for both modalities
            # the modalities' current tokens sit at the same grid positions (paired all along)
            shared = torch.stack(per_modality).mean(0).topk(keep, dim=1).indices
        for modality in range(self.num_modalities):
            start = modality * stride + num_template
            top = shared if self.ce_pairing == "paired" else per_modality[modality].topk(keep, dim=1).indices
            segments.append(tokens[:, modality * stride : start])
            segments.append(tokens[:, start : start + kept].gather(1, top.unsqueeze(-1).expand(-1, -1, dim)))
            new_index.append(index[:, modality].gather(1, top))
        tokens = torch.cat(segments, dim=1)
        tokens = tokens + block.drop_path2(block.ls2(block.mlp(block.norm2(tokens))))
        return tokens, torch.stack(new_index, dim=1)

    def _search_tokens(self, tokens: Tensor, index: Tensor | None, modality: int) -> Tensor:
        """One modality's search tokens at full resolution ``(B, Nx, D)``, dropped ones zero."""
        num_template = self.backbone.num_template_tokens
        kept = self._kept(tokens)
        start = modality * (num_template + kept) + num_template
        search = tokens[:, start : start + kept]
        if index is None:
            return search
        full = search.new_zeros(search.shape[0], self.backbone.num_search_tokens, search.shape[2])
        return full.scatter(1, index[:, modality].unsqueeze(-1).expand(-1, -1, search.shape[2]), search)

    def _expand(self, tokens: Tensor, index: Tensor | None) -> tuple[Tensor, Tensor]:
        """Block output re-expanded to all ``M * (Nz + Nx)`` positions, and its ``(B, N)`` mask."""
        batch = tokens.shape[0]
        num_template, num_search = self.backbone.num_template_tokens, self.backbone.num_search_tokens
        kept = self._kept(tokens)
        parts, masks = [], []
        for modality in range(self.num_modalities):
            start = modality * (num_template + kept)
            parts += [tokens[:, start : start + num_template], self._search_tokens(tokens, index, modality)]
            search_mask = torch.ones(batch, num_search, dtype=torch.bool, device=tokens.device)
            if index is not None:
                search_mask = torch.zeros_like(search_mask).scatter(1, index[:, modality], True)
            masks += [torch.ones(batch, num_template, dtype=torch.bool, device=tokens.device), search_mask]
        return torch.cat(parts, dim=1), torch.cat(masks, dim=1)


class TokenFusion(nn.Module):
    """Co-located RGB and auxiliary tokens ``(B, N, D)`` each -> one token ``(B, N, D)``:
    ``Linear(2D -> D)`` on their concatenation, initialised to their mean (so a student started
    from a teacher or a full student begins with a neutral fusion rather than a random one)."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.reduce = nn.Linear(2 * dim, dim)
        with torch.no_grad():
            eye = torch.eye(dim) / 2
            self.reduce.weight.copy_(torch.cat([eye, eye], dim=1))
            self.reduce.bias.zero_()

    def forward(self, rgb: Tensor, aux: Tensor) -> Tensor:
        return self.reduce(torch.cat([rgb, aux], dim=-1))


def _check_shape(num_modalities: int, depth: int, fuse_after: int, aux_pool: int, ce_layers: Sequence[int],
                 template_grid: int, search_grid: int) -> None:
    """Refuse shapes the forward cannot run, with the argument named."""
    if fuse_after and num_modalities != 2:
        raise ValueError("fuse_after needs two modalities")
    if not 0 <= fuse_after < depth:
        raise ValueError(f"fuse_after {fuse_after} outside 0..{depth - 1} (0: no fusion; fusing after "
                         "the last block is the plain student's final fusion)")
    if aux_pool < 1:
        raise ValueError(f"aux_pool must be >= 1, got {aux_pool}")
    if aux_pool > 1:
        if num_modalities != 2:
            raise ValueError("aux_pool needs two modalities")
        if template_grid % aux_pool or search_grid % aux_pool:
            raise ValueError(f"aux_pool {aux_pool} does not divide the template ({template_grid}) and "
                             f"search ({search_grid}) token grids")
    if ce_layers and (fuse_after or aux_pool > 1):
        raise ValueError("candidate elimination needs the plain token layout (fuse_after 0, aux_pool 1)")


def _check_ratio(ratio: float) -> None:
    if not 0.0 < ratio <= 1.0:
        raise ValueError(f"candidate elimination keep ratio must be in (0, 1], got {ratio}")
