"""Fixtures for the model tests: tiny sizes, inputs, and independent reference forwards.

The references are written from the anchor code's structure (OSTrack's backbone, candidate
elimination and centre head; MPLT's prompt blocks and their forward), not from our modules, so
that a test comparing the two checks our implementation against the anchors' maths.
"""

from __future__ import annotations

import math
from typing import Callable

import pytest
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from mmtrack_kd.engine.losses import TrackingLoss

TINY = dict(
    template_size=64,
    search_size=128,
    patch_size=16,
    embed_dim=64,
    depth=3,
    num_heads=4,
    head_channels=32,
)


@pytest.fixture
def tiny() -> dict:
    """A 3-block, width-64 model: 4x4 template and 8x8 search grids."""
    return dict(TINY)


def make_inputs(batch: int = 2, aux_chans: int | None = 3, config: dict = TINY, seed: int = 0):
    """``(templates, searches)`` lists for RGB (+ auxiliary unless ``aux_chans`` is None)."""
    generator = torch.Generator().manual_seed(seed)
    channels = [3] if aux_chans is None else [3, aux_chans]
    t, s = config["template_size"], config["search_size"]
    templates = [torch.randn(batch, c, t, t, generator=generator) for c in channels]
    searches = [torch.randn(batch, c, s, s, generator=generator) for c in channels]
    return templates, searches


@pytest.fixture
def inputs() -> Callable:
    return make_inputs


@torch.no_grad()
def randomize(module: nn.Module, seed: int = 0, scale: float = 0.2) -> nn.Module:
    """Give every float parameter and buffer random values (positive BatchNorm variances and
    fovea lambdas), so equality tests cannot pass by accident of zero or one initialisations."""
    generator = torch.Generator().manual_seed(seed)
    for name, tensor in list(module.named_parameters()) + list(module.named_buffers()):
        if not tensor.is_floating_point():
            continue
        values = torch.randn(tensor.shape, generator=generator) * scale
        if name.endswith(("running_var", "smooth")):
            values = values.abs() + 0.5
        tensor.copy_(values)
    return module


@pytest.fixture
def random_weights() -> Callable:
    return randomize


def tracking_loss(out) -> Tensor:
    """The training loss itself (focal + GIoU + L1, weights 1/2/5).

    The target is the predicted box shifted a little towards the crop centre: a target that
    contained the predicted box, or sat inside it, would give the centre offset no gradient (the
    L1 corner terms cancel and the IoU does not change), and a random head's boxes are large.
    """
    cx, cy, w, h = out.boxes.detach().unbind(-1)
    # Shifting towards the centre moves both corners of an axis the same way unless the box
    # spans the whole crop on that axis (the clamped target then sits inside it whatever the
    # shift, and the offsets get no gradient): the seeded draw (``_seeded_initialisation``)
    # must avoid that.
    spans = ((cx - w / 2 <= 0) & (cx + w / 2 >= 1)) | ((cy - h / 2 <= 0) & (cy + h / 2 >= 1))
    assert not bool(spans.any()), f"initial boxes span the crop: {out.boxes}"
    shift_x = 0.05 * torch.sign(0.5 - cx)
    shift_y = 0.05 * torch.sign(0.5 - cy)
    target = torch.stack([cx - w / 2 + shift_x, cy - h / 2 + shift_y, w, h], dim=-1)
    return TrackingLoss()(out, {"search_box": target})[0]


@pytest.fixture
def loss_fn() -> Callable:
    return tracking_loss


def _biases_cancelled_by_batch_norm(model: nn.Module) -> set[str]:
    """Biases of layers that feed a training-mode BatchNorm directly (``Sequential(conv, bn,
    ...)``, as the centre head's branches). The batch mean absorbs such a bias, so its gradient
    is zero in exact arithmetic and rounding noise (sometimes exactly zero) in float."""
    names = set()
    for prefix, module in model.named_modules():
        if not isinstance(module, nn.Sequential):
            continue
        layers = list(module.children())
        for index, (layer, following) in enumerate(zip(layers, layers[1:])):
            if (getattr(layer, "bias", None) is not None and following.training
                    and isinstance(following, nn.modules.batchnorm._BatchNorm)):
                names.add(f"{prefix}.{index}.bias" if prefix else f"{index}.bias")
    return names


def parameters_without_gradient(model: nn.Module) -> list[str]:
    """Trainable parameters that got no (or an all-zero) gradient from the last backward pass;
    biases that a BatchNorm cancels are not asked to learn."""
    exempt = _biases_cancelled_by_batch_norm(model)
    return [
        name for name, p in model.named_parameters()
        if p.requires_grad and name not in exempt and (p.grad is None or not torch.any(p.grad != 0))
    ]


# -- OSTrack reference (functional, from an OSTrack-named state dict) -------------------------


def _centre_head_reference(state: dict, feature: Tensor, prefix: str = "box_head") -> tuple[Tensor, ...]:
    """OSTrack's CenterPredictor in eval mode, then its cal_bbox."""

    def branch(name: str) -> Tensor:
        x = feature
        for stage in range(1, 5):
            p = f"{prefix}.conv{stage}_{name}"
            x = F.conv2d(x, state[f"{p}.0.weight"], state[f"{p}.0.bias"], padding=1)
            x = F.batch_norm(
                x, state[f"{p}.1.running_mean"], state[f"{p}.1.running_var"],
                state[f"{p}.1.weight"], state[f"{p}.1.bias"], training=False, eps=1e-5,
            )  # fmt: skip
            x = F.relu(x)
        return F.conv2d(x, state[f"{prefix}.conv5_{name}.weight"], state[f"{prefix}.conv5_{name}.bias"])

    score = torch.clamp(branch("ctr").sigmoid(), 1e-4, 1 - 1e-4)
    size = torch.clamp(branch("size").sigmoid(), 1e-4, 1 - 1e-4)
    offset = branch("offset")
    feat_sz = feature.shape[-1]
    _, idx = torch.max(score.flatten(1), dim=1, keepdim=True)
    idx_y, idx_x = idx // feat_sz, idx % feat_sz
    gather = idx.unsqueeze(1).expand(idx.shape[0], 2, 1)
    size_at = size.flatten(2).gather(dim=2, index=gather)
    offset_at = offset.flatten(2).gather(dim=2, index=gather).squeeze(-1)
    bbox = torch.cat(
        [(idx_x.to(torch.float) + offset_at[:, :1]) / feat_sz, (idx_y.to(torch.float) + offset_at[:, 1:]) / feat_sz,
         size_at.squeeze(-1)], dim=1,
    )  # fmt: skip
    return score, size, offset, bbox


def ostrack_reference(
    state: dict,
    template: Tensor,
    search: Tensor,
    num_heads: int,
    ce_layers: tuple[int, ...] = (),
    keep_ratio: float = 1.0,
) -> tuple[Tensor, ...]:
    """OSTrack's forward (ViT with optional candidate elimination, centre head) in eval mode.

    Written after OSTrack's ``vit_ce.py`` / ``CEBlock`` / ``candidate_elimination`` / ``head.py``:
    explicit attention maps, ``torch.sort`` for the kept tokens, the CTR_POINT template mask,
    the scatter that restores dropped tokens as zeros after the final norm.
    Returns ``(score_map, size_map, offset_map, boxes)``.
    """

    def ln(x: Tensor, p: str) -> Tensor:
        return F.layer_norm(x, x.shape[-1:], state[f"{p}.weight"], state[f"{p}.bias"], eps=1e-6)

    def linear(x: Tensor, p: str) -> Tensor:
        return F.linear(x, state[f"{p}.weight"], state[f"{p}.bias"])

    weight, bias = state["backbone.patch_embed.proj.weight"], state["backbone.patch_embed.proj.bias"]
    patch = weight.shape[-1]

    def embed(image: Tensor) -> Tensor:
        return F.conv2d(image, weight, bias, stride=patch).flatten(2).transpose(1, 2)

    z = embed(template) + state["backbone.pos_embed_z"]
    x = embed(search) + state["backbone.pos_embed_x"]
    batch, lens_z, lens_x = z.shape[0], z.shape[1], x.shape[1]
    z_side = math.isqrt(lens_z)
    centre = (z_side - 1) // 2  # generate_mask_cond CTR_POINT: slice(3, 4) on 8 x 8
    box_mask_z = torch.zeros(batch, z_side, z_side)
    box_mask_z[:, centre : centre + 1, centre : centre + 1] = 1
    box_mask_z = box_mask_z.flatten(1).to(torch.bool)

    tokens = torch.cat([z, x], dim=1)
    global_index_s = torch.arange(lens_x).unsqueeze(0).repeat(batch, 1)
    removed_indexes = []
    depth = len({k.split(".")[2] for k in state if k.startswith("backbone.blocks.")})
    for i in range(depth):
        p = f"backbone.blocks.{i}"
        y = ln(tokens, f"{p}.norm1")
        b, n, c = y.shape
        qkv = linear(y, f"{p}.attn.qkv").reshape(b, n, 3, num_heads, c // num_heads).permute(2, 0, 3, 1, 4)
        q, k, v = qkv[0], qkv[1], qkv[2]
        attn = ((q @ k.transpose(-2, -1)) * (c // num_heads) ** -0.5).softmax(dim=-1)
        tokens = tokens + linear((attn @ v).transpose(1, 2).reshape(b, n, c), f"{p}.attn.proj")
        if i in ce_layers and keep_ratio < 1:
            lens_t = lens_z
            lens_s = attn.shape[-1] - lens_t
            lens_keep = math.ceil(keep_ratio * lens_s)
            if lens_keep < lens_s:
                attn_t = attn[:, :, :lens_t, lens_t:]
                mask = box_mask_z.unsqueeze(1).unsqueeze(-1).expand(-1, attn_t.shape[1], -1, attn_t.shape[-1])
                attn_t = attn_t[mask].view(b, num_heads, -1, lens_s).mean(dim=2).mean(dim=1)
                _, indices = torch.sort(attn_t, dim=1, descending=True)
                topk_idx, non_topk_idx = indices[:, :lens_keep], indices[:, lens_keep:]
                keep_index = global_index_s.gather(dim=1, index=topk_idx)
                removed_indexes.append(global_index_s.gather(dim=1, index=non_topk_idx))
                tokens_s = tokens[:, lens_t:]
                attentive = tokens_s.gather(dim=1, index=topk_idx.unsqueeze(-1).expand(b, -1, c))
                tokens = torch.cat([tokens[:, :lens_t], attentive], dim=1)
                global_index_s = keep_index
        y = ln(tokens, f"{p}.norm2")
        tokens = tokens + linear(F.gelu(linear(y, f"{p}.mlp.fc1")), f"{p}.mlp.fc2")
    tokens = ln(tokens, "backbone.norm")
    x = tokens[:, lens_z:]
    if removed_indexes:
        c = x.shape[-1]
        pad = torch.zeros(batch, lens_x - x.shape[1], c)
        x = torch.cat([x, pad], dim=1)
        index_all = torch.cat([global_index_s, torch.cat(removed_indexes, dim=1)], dim=1)
        x = torch.zeros_like(x).scatter_(dim=1, index=index_all.unsqueeze(-1).expand(batch, -1, c), src=x)
    feat_sz = math.isqrt(lens_x)
    opt = x.unsqueeze(-1).permute((0, 3, 2, 1)).contiguous()
    feature = opt.view(-1, opt.shape[2], feat_sz, feat_sz)
    return _centre_head_reference(state, feature)


@pytest.fixture
def centre_head_reference() -> Callable:
    return _centre_head_reference


@pytest.fixture
def ostrack_forward() -> Callable:
    return ostrack_reference


# -- MPLT reference (modules with MPLT's names, MPLT's forward) -------------------------------


class _ChannelPool(nn.Module):  # MPLT's "SpatialAttention"
    def __init__(self, dim: int, ratio: int = 8) -> None:
        super().__init__()
        self.fc1 = nn.Conv2d(dim, dim // ratio, 1, bias=False)
        self.fc2 = nn.Conv2d(dim // ratio, dim, 1, bias=False)

    def forward(self, x: Tensor) -> Tensor:
        avg = self.fc2(F.relu(self.fc1(F.adaptive_avg_pool2d(x, 1))))
        mx = self.fc2(F.relu(self.fc1(F.adaptive_max_pool2d(x, 1))))
        return torch.sigmoid(avg + mx)


class _PositionPool(nn.Module):  # MPLT's "TokenAttention"
    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(2, 1, 7, padding=3, bias=False)

    def forward(self, x: Tensor) -> Tensor:
        stats = torch.cat([x.mean(dim=1, keepdim=True), x.max(dim=1, keepdim=True)[0]], dim=1)
        return torch.sigmoid(self.conv1(stats))


class _Fovea(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.smooth = nn.Parameter(torch.zeros(1) + 10.0)

    def forward(self, x: Tensor) -> Tensor:
        b, c, h, w = x.shape
        x = x.contiguous().view(b, c, h * w)
        return (torch.softmax(x * self.smooth, dim=-1) * x).view(b, c, h, w)


class _PromptBlock(nn.Module):
    """MPLT's Prompt_cbam_block (3 inputs) or Prompt_cbam_block_init (2 inputs), quirk included."""

    def __init__(self, dim: int, inputs: int) -> None:
        super().__init__()
        self.inputs = inputs
        for i in range(inputs):
            self.add_module(f"spatialattention{i}", _ChannelPool(dim))
            self.add_module(f"tokenattention{i}", _PositionPool())
        self.fovea = _Fovea()

    def forward(self, x: Tensor) -> Tensor:
        parts = x.chunk(self.inputs, dim=1)
        x0 = parts[0] * self.spatialattention0(parts[0])
        x0 = x0 * self.tokenattention0(x0)
        x1 = parts[1] * self.spatialattention1(parts[1])
        x1 = x1 * self.tokenattention1(x1)
        out = self.fovea(x0) + x1
        if self.inputs == 3:
            x2 = parts[2] * self.spatialattention1(parts[2])  # MPLT applies branch 1's here
            x2 = x2 * self.tokenattention2(x2)
            out = out + x2
        return out


class _MPLTBackbone(nn.Module):
    def __init__(self, config: dict) -> None:
        super().__init__()
        from functools import partial

        from timm.models.vision_transformer import Block

        d, p = config["embed_dim"], config["patch_size"]
        norm = partial(nn.LayerNorm, eps=1e-6)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, d))
        self.pos_embed = nn.Parameter(torch.zeros(1, 1 + 16, d))
        self.patch_embed = nn.Module()
        self.patch_embed.proj = nn.Conv2d(3, d, p, p)
        self.pos_embed_z = nn.Parameter(torch.zeros(1, (config["template_size"] // p) ** 2, d))
        self.pos_embed_x = nn.Parameter(torch.zeros(1, (config["search_size"] // p) ** 2, d))
        depth = config["depth"]
        self.blocks = nn.Sequential(*[Block(d, config["num_heads"], qkv_bias=True, norm_layer=norm) for _ in range(depth)])
        self.norm = norm(d)
        self.prompt_blocks = nn.Sequential(*[_PromptBlock(d, 3) for _ in range(depth)])
        self.prompt_blocks_rev = nn.Sequential(*[_PromptBlock(d, 3) for _ in range(depth)])
        self.prompt_blocks_init = _PromptBlock(d, 2)
        self.prompt_blocks_init_rev = _PromptBlock(d, 2)
        self.prompt_norms = nn.Sequential(*[norm(d) for _ in range(depth)])
        self.prompt_norms_rev = nn.Sequential(*[norm(d) for _ in range(depth)])


def _t2f(x: Tensor) -> Tensor:  # MPLT's token2feature
    b, n, c = x.shape
    side = math.isqrt(n)
    return x.permute(0, 2, 1).reshape(b, c, side, side)


def _f2t(x: Tensor) -> Tensor:  # MPLT's feature2token
    b, c, h, w = x.shape
    return x.view(b, c, h * w).permute(0, 2, 1)


class MPLTReference(nn.Module):
    """MPLT's teacher with its parameter names and forward (``vit_mplt`` + ``MPLTTrack``)."""

    def __init__(self, config: dict) -> None:
        super().__init__()
        from mmtrack_kd.models.head import CenterHead, conv_bn_relu

        d = config["embed_dim"]
        self.backbone = _MPLTBackbone(config)
        self.mplt_fuse_search = conv_bn_relu(2 * d, d)
        self.box_head = CenterHead(d, config["head_channels"])

    def forward(self, z: list[Tensor], x: list[Tensor]) -> tuple:
        """``(head output, final normed tokens [rgb stream, aux stream] (B, 2N, D))``."""
        bb = self.backbone
        x_v, z_v = bb.patch_embed.proj(x[0]).flatten(2).transpose(1, 2), bb.patch_embed.proj(z[0]).flatten(2).transpose(1, 2)
        x_i, z_i = bb.patch_embed.proj(x[1]).flatten(2).transpose(1, 2), bb.patch_embed.proj(z[1]).flatten(2).transpose(1, 2)
        n0 = bb.prompt_norms[0]
        z_feat_rgb, x_feat_rgb = _t2f(n0(z_v)), _t2f(n0(x_v))
        z_dte, x_dte = _t2f(n0(z_i)), _t2f(n0(x_i))
        z_tok = _f2t(bb.prompt_blocks_init(torch.cat([z_feat_rgb, z_dte], 1)))
        x_tok = _f2t(bb.prompt_blocks_init(torch.cat([x_feat_rgb, x_dte], 1)))
        z_tok_rev = _f2t(bb.prompt_blocks_init_rev(torch.cat([z_dte, z_feat_rgb], 1)))
        x_tok_rev = _f2t(bb.prompt_blocks_init_rev(torch.cat([x_dte, x_feat_rgb], 1)))
        z_pr, x_pr, z_pr_rev, x_pr_rev = z_tok, x_tok, z_tok_rev, x_tok_rev
        z_v, x_v, z_i, x_i = z_v + z_tok, x_v + x_tok, z_i + z_tok_rev, x_i + x_tok_rev
        z_v, x_v = z_v + bb.pos_embed_z, x_v + bb.pos_embed_x
        z_i, x_i = z_i + bb.pos_embed_z, x_i + bb.pos_embed_x
        x_v, x_i = torch.cat([z_v, x_v], 1), torch.cat([z_i, x_i], 1)
        lens_z = bb.pos_embed_z.shape[1]
        for i, blk in enumerate(bb.blocks):
            if i >= 1:
                x_ori, x_ori_rev = x_v, x_i
                x_v, x_i = bb.prompt_norms[i - 1](x_v), bb.prompt_norms_rev[i - 1](x_i)
                z_rgb, x_rgb = _t2f(x_v[:, :lens_z]), _t2f(x_v[:, lens_z:])
                z_rev, x_rev = _t2f(x_i[:, :lens_z]), _t2f(x_i[:, lens_z:])
                z_pf, x_pf = _t2f(bb.prompt_norms[i](z_pr)), _t2f(bb.prompt_norms[i](x_pr))
                z_pf_rev, x_pf_rev = _t2f(bb.prompt_norms_rev[i](z_pr_rev)), _t2f(bb.prompt_norms_rev[i](x_pr_rev))
                z_new = _f2t(bb.prompt_blocks[i](torch.cat([z_rgb, z_pf, z_rev], 1)))
                x_new = _f2t(bb.prompt_blocks[i](torch.cat([x_rgb, x_pf, x_rev], 1)))
                z_new_rev = _f2t(bb.prompt_blocks_rev[i](torch.cat([z_rev, z_pf_rev, z_rgb], 1)))
                x_new_rev = _f2t(bb.prompt_blocks_rev[i](torch.cat([x_rev, x_pf_rev, x_rgb], 1)))
                z_pr, x_pr, z_pr_rev, x_pr_rev = z_new, x_new, z_new_rev, x_new_rev
                x_v = x_ori + torch.cat([z_new, x_new], 1)
                x_i = x_ori_rev + torch.cat([z_new_rev, x_new_rev], 1)
            x_v, x_i = blk(x_v), blk(x_i)
        cat_feature = bb.norm(torch.cat([x_v, x_i], dim=1))
        num_x = bb.pos_embed_x.shape[1]
        enc = torch.cat([cat_feature[:, lens_z : lens_z + num_x], cat_feature[:, -num_x:]], dim=2)
        opt = enc.unsqueeze(-1).permute((0, 3, 2, 1)).contiguous()
        side = math.isqrt(num_x)
        feature = self.mplt_fuse_search(opt.view(-1, opt.shape[2], side, side))
        return self.box_head(feature), cat_feature


@pytest.fixture
def mplt_reference() -> type:
    return MPLTReference


@pytest.fixture(autouse=True)
def _seeded_initialisation() -> None:
    """Models are built with torch's global generator: seed it so every test sees the same
    initial weights (a gradient test must not depend on the draw)."""
    torch.manual_seed(0)
