"""Backbone and head: OSTrack's parameter names and shapes, box decoding, the attention probe."""

from __future__ import annotations

import torch

from mmtrack_kd.models.head import CenterHead, boxes_at, peak_index
from mmtrack_kd.models.vit import BackboneSettings, ViTBackbone, attention_with_probe


def _backbone(tiny: dict, **overrides) -> ViTBackbone:
    args = {k: v for k, v in tiny.items() if k != "head_channels"}
    return ViTBackbone(BackboneSettings(**{**args, **overrides}))


def test_backbone_parameter_names_are_ostracks(tiny):
    names = set(_backbone(tiny).state_dict())
    expected = {"patch_embed.proj.weight", "patch_embed.proj.bias", "pos_embed_z", "pos_embed_x", "norm.weight", "norm.bias"}
    for i in range(tiny["depth"]):
        for part in ("norm1", "attn.qkv", "attn.proj", "norm2", "mlp.fc1", "mlp.fc2"):
            expected |= {f"blocks.{i}.{part}.weight", f"blocks.{i}.{part}.bias"}
    assert names == expected


def test_backbone_shapes_and_features(tiny):
    backbone = _backbone(tiny)
    assert backbone.template_grid == (4, 4) and backbone.search_grid == (8, 8)
    z, x = torch.randn(2, 3, 64, 64), torch.randn(2, 3, 128, 128)
    tokens, features = backbone(z, x)
    assert tokens.shape == (2, 16 + 64, 64) and features is None
    tokens_again, features = backbone(z, x, return_features=True)
    assert len(features) == tiny["depth"] and all(f.shape == (2, 80, 64) for f in features)
    assert torch.equal(tokens, tokens_again)
    # the final output is the norm of the last block's output
    assert torch.allclose(backbone.norm(features[-1]), tokens)
    for block in backbone.blocks:
        assert block.norm1.eps == 1e-6  # OSTrack's LayerNorm


def test_aux_patch_embed_adapts_the_rgb_one(tiny):
    shared = _backbone(tiny)
    assert shared.patch_embed_aux is None  # three channels: one patch embedding for both
    single = _backbone(tiny, aux_in_chans=1)
    rgb = single.patch_embed.proj.weight
    assert torch.allclose(single.patch_embed_aux.proj.weight, rgb.sum(dim=1, keepdim=True))
    assert torch.equal(single.patch_embed_aux.proj.bias, single.patch_embed.proj.bias)
    five = _backbone(tiny, aux_in_chans=5)
    assert five.patch_embed_aux.proj.weight.shape[1] == 5
    assert five.patchify(torch.randn(1, 5, 64, 64), modality=1).shape == (1, 16, 64)


def test_attention_probe_matches_the_attention_map(tiny):
    block = _backbone(tiny).blocks[0].eval()
    x = torch.randn(2, 20, 64)
    out, probe = attention_with_probe(block.attn, x, torch.tensor([3, 7]))
    assert torch.allclose(out, block.attn(x), atol=1e-6)
    attn = block.attn
    q, k, _ = attn.qkv(x).reshape(2, 20, 3, attn.num_heads, attn.head_dim).permute(2, 0, 3, 1, 4)
    full = ((q @ k.transpose(-2, -1)) * attn.scale).softmax(-1)
    assert probe.shape == (2, attn.num_heads, 2, 20)
    assert torch.allclose(probe, full[:, :, [3, 7]], atol=1e-6)


def test_head_parameter_names_and_outputs():
    head = CenterHead(64, 32).eval()
    names = set(head.state_dict())
    for branch in ("ctr", "offset", "size"):
        for stage in range(1, 5):
            assert f"conv{stage}_{branch}.0.weight" in names and f"conv{stage}_{branch}.1.running_var" in names
        assert f"conv5_{branch}.weight" in names
    assert head.conv4_ctr[0].out_channels == 4 and head.conv5_size.out_channels == 2
    out = head(torch.randn(3, 64, 8, 8))
    assert out.score_logits.shape == out.score_map.shape == (3, 1, 8, 8)
    assert out.size_map.shape == out.offset_map.shape == (3, 2, 8, 8)
    assert out.boxes.shape == (3, 4)
    assert torch.allclose(out.score_map, torch.clamp(out.score_logits.sigmoid(), 1e-4, 1 - 1e-4))
    assert out.score_map.min() >= 1e-4 and out.size_map.max() <= 1 - 1e-4


def test_box_decoding_at_peak_and_at_any_index():
    score = torch.zeros(2, 1, 8, 8)
    score[0, 0, 2, 5] = 1.0  # row 2, column 5
    score[1, 0, 7, 0] = 1.0
    size = torch.rand(2, 2, 8, 8)
    offset = torch.rand(2, 2, 8, 8)
    index = peak_index(score)
    assert index.tolist() == [2 * 8 + 5, 7 * 8]
    boxes = boxes_at(index, size, offset)
    expected0 = [(5 + offset[0, 0, 2, 5]) / 8, (2 + offset[0, 1, 2, 5]) / 8, size[0, 0, 2, 5], size[0, 1, 2, 5]]
    assert torch.allclose(boxes[0], torch.stack(expected0))
    assert torch.allclose(boxes[1, :2], torch.stack([offset[1, 0, 7, 0] / 8, (7 + offset[1, 1, 7, 0]) / 8]))
    # the tracker reads the box after a Hann window: any index works
    window = torch.hann_window(10, periodic=False)[1:-1]
    windowed = score * (window[:, None] * window[None, :])
    assert torch.equal(boxes_at(peak_index(windowed), size, offset), boxes)


def test_head_matches_ostracks_decoding(centre_head_reference, random_weights):
    head = random_weights(CenterHead(64, 32)).eval()
    feature = torch.randn(2, 64, 8, 8)
    out = head(feature)
    state = {f"box_head.{k}": v for k, v in head.state_dict().items()}
    score, size, offset, boxes = centre_head_reference(state, feature)
    assert torch.allclose(out.score_map, score, atol=1e-6)
    assert torch.allclose(out.size_map, size, atol=1e-6)
    assert torch.allclose(out.offset_map, offset, atol=1e-6)
    assert torch.allclose(out.boxes, boxes, atol=1e-6)
