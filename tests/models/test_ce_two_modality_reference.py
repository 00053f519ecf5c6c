"""Two-modality candidate elimination checked against a reference written from the rule.

The student's docstring states the rule: tokens are ``[z_rgb, x_rgb, z_aux, x_aux]``; at a
candidate-elimination block the attention is computed as usual (softmax over all tokens, per
head), each search token is scored by the attention it receives from the centre token (or every
token, ``"all"``) of *every* modality's template, averaged over those queries and the heads; each
modality keeps ``ceil(ratio * K)`` of its own ``K`` current search tokens (top-k within its own
search tokens); the drop happens after the attention residual and before the MLP, and later blocks
run on the kept tokens; after the final norm the dropped positions are zero in each modality's
search map, the maps are fused (``Linear(2D -> D)`` over the concatenated channels) and the centre
head reads the fused map.

The reference below re-implements that from the state dict with plain torch ops, one sample at a
time and one modality's pieces at a time (OSTrack's explicit attention map and ``torch.sort``,
as ``ostrack_reference`` in conftest), so it shares no code with the model besides the centre head
reference of conftest (itself written after OSTrack). Everything runs in float64, so the chosen
tokens cannot flip on rounding; the reference also checks that the last kept and the first dropped
token of every choice are well apart.
"""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import Tensor

from mmtrack_kd.models import OneStreamStudent

from tests.models.conftest import TINY, _centre_head_reference, make_inputs, randomize

ATOL = 1e-9  # float64 on both sides
MARGIN = 1e-9  # least score gap between the last kept and the first dropped search token


def two_modality_ce_reference(
    state: dict,
    templates: list[Tensor],
    searches: list[Tensor],
    num_heads: int,
    ce_layers: tuple[int, ...],
    keep_ratio: float,
    template_range: str,
    scoring: str = "every",
) -> dict:
    """The documented two-modality rule, sample by sample.

    ``scoring="own"`` scores a modality's search tokens from its own template only (a rule the
    model must *not* follow; used to show the cases tell the two apart).

    Returns the head's maps and boxes, the per-block expanded features and masks, the kept grid
    positions after every block (``kept[block][sample][modality]``) and ``joint_differs``: whether,
    at some elimination, one top-k over both modalities' search tokens together (keeping as many
    in all) would have chosen differently from the per-modality choice.
    """

    def ln(x: Tensor, p: str) -> Tensor:
        return F.layer_norm(x, x.shape[-1:], state[f"{p}.weight"], state[f"{p}.bias"], eps=1e-6)

    def linear(x: Tensor, p: str) -> Tensor:
        return F.linear(x, state[f"{p}.weight"], state[f"{p}.bias"])

    def embed(image: Tensor, modality: int) -> Tensor:  # (C, H, W) -> (H*W/p^2, D), row-major
        own_aux = modality == 1 and "backbone.patch_embed_aux.proj.weight" in state
        p = "backbone.patch_embed_aux.proj" if own_aux else "backbone.patch_embed.proj"
        weight = state[f"{p}.weight"]
        out = F.conv2d(image[None], weight, state[f"{p}.bias"], stride=weight.shape[-1])[0]
        return out.flatten(1).t()

    modalities = 2
    depth = len({k.split(".")[2] for k in state if k.startswith("backbone.blocks.")})
    lens_z = state["backbone.pos_embed_z"].shape[1]
    lens_x = state["backbone.pos_embed_x"].shape[1]
    z_side, x_side = math.isqrt(lens_z), math.isqrt(lens_x)
    if template_range == "centre":
        centre = (z_side - 1) // 2  # OSTrack's CTR_POINT: (1, 1) of 4 x 4, (3, 3) of 8 x 8
        template_queries = [centre * z_side + centre]
    else:
        template_queries = list(range(lens_z))

    batch = templates[0].shape[0]
    maps, features, masks, kept_log = [], [[] for _ in range(depth)], [[] for _ in range(depth)], [[] for _ in range(depth)]
    joint_differs = False
    for b in range(batch):
        z, x, kept = [], [], []
        for m in range(modalities):
            zm = embed(templates[m][b], m) + state["backbone.pos_embed_z"][0]
            xm = embed(searches[m][b], m) + state["backbone.pos_embed_x"][0]
            if "modality_embed" in state:
                zm, xm = zm + state["modality_embed"][m], xm + state["modality_embed"][m]
            z.append(zm)
            x.append(xm)
            kept.append(torch.arange(lens_x))
        for i in range(depth):
            p = f"backbone.blocks.{i}"
            k_cur = x[0].shape[0]
            assert x[1].shape[0] == k_cur
            # where modality m's template and search tokens sit in the sequence
            z_at = [m * (lens_z + k_cur) for m in range(modalities)]
            x_at = [m * (lens_z + k_cur) + lens_z for m in range(modalities)]
            seq = torch.cat([t for m in range(modalities) for t in (z[m], x[m])], dim=0)  # (N, D)
            n, c = seq.shape
            head_dim = c // num_heads
            qkv = linear(ln(seq, f"{p}.norm1"), f"{p}.attn.qkv").reshape(n, 3, num_heads, head_dim).permute(1, 2, 0, 3)
            q, k, v = qkv[0], qkv[1], qkv[2]  # (H, N, hd)
            attn = ((q @ k.transpose(-2, -1)) * head_dim**-0.5).softmax(dim=-1)  # (H, N, N)
            seq = seq + linear((attn @ v).transpose(0, 1).reshape(n, c), f"{p}.attn.proj")
            z = [seq[z_at[m] : z_at[m] + lens_z] for m in range(modalities)]
            x = [seq[x_at[m] : x_at[m] + k_cur] for m in range(modalities)]
            lens_keep = math.ceil(keep_ratio * k_cur)
            if i in ce_layers and lens_keep < k_cur:
                every = [z_at[m] + q_ for m in range(modalities) for q_ in template_queries]
                scores = []
                for m in range(modalities):
                    rows = every if scoring == "every" else [z_at[m] + q_ for q_ in template_queries]
                    # attention from those queries to modality m's search tokens, mean over queries and heads
                    scores.append(attn[:, rows][:, :, x_at[m] : x_at[m] + k_cur].mean(dim=1).mean(dim=0))
                kept_order = []
                for m in range(modalities):
                    order = torch.sort(scores[m], descending=True).indices
                    top = order[:lens_keep]
                    kept_order.append(top)
                    gap = scores[m][order[lens_keep - 1]] - scores[m][order[lens_keep]]
                    assert gap > MARGIN, f"near tie at block {i}, sample {b}, modality {m}: {gap}"
                    x[m] = x[m][top]
                    kept[m] = kept[m][top]
                both = torch.cat(scores)
                joint = set(torch.sort(both, descending=True).indices[: modalities * lens_keep].tolist())
                per_modality = {m * k_cur + int(j) for m in range(modalities) for j in kept_order[m]}
                joint_differs |= joint != per_modality
            seq = torch.cat([t for m in range(modalities) for t in (z[m], x[m])], dim=0)
            seq = seq + linear(F.gelu(linear(ln(seq, f"{p}.norm2"), f"{p}.mlp.fc1")), f"{p}.mlp.fc2")
            k_new = x[0].shape[0]
            z = [seq[m * (lens_z + k_new) : m * (lens_z + k_new) + lens_z] for m in range(modalities)]
            x = [seq[m * (lens_z + k_new) + lens_z : (m + 1) * (lens_z + k_new)] for m in range(modalities)]
            # block output re-expanded to every position, dropped search tokens zero
            full = seq.new_zeros(modalities * (lens_z + lens_x), c)
            mask = torch.zeros(modalities * (lens_z + lens_x), dtype=torch.bool)
            for m in range(modalities):
                base = m * (lens_z + lens_x)
                full[base : base + lens_z] = z[m]
                mask[base : base + lens_z] = True
                full[base + lens_z + kept[m]] = x[m]
                mask[base + lens_z + kept[m]] = True
            features[i].append(full)
            masks[i].append(mask)
            kept_log[i].append([kept[m].clone() for m in range(modalities)])
        search_maps = []
        for m in range(modalities):
            normed = ln(x[m], "backbone.norm")
            full = normed.new_zeros(lens_x, normed.shape[-1])
            full[kept[m]] = normed
            search_maps.append(full)
        fused = linear(torch.cat(search_maps, dim=-1), "fusion.reduce")  # (Nx, D)
        maps.append(fused.t().reshape(-1, x_side, x_side))
    score, size, offset, boxes = _centre_head_reference(state, torch.stack(maps))
    return dict(
        score_map=score, size_map=size, offset_map=offset, boxes=boxes,
        features=[torch.stack(f) for f in features], masks=[torch.stack(m) for m in masks],
        kept=kept_log, joint_differs=joint_differs,
    )  # fmt: skip


CASES = {
    "centre-0.7-one-block": dict(depth=3, ce_layers=(1,), ratio=0.7, range="centre", batch=2),
    "centre-0.5-consecutive": dict(depth=4, ce_layers=(1, 2), ratio=0.5, range="centre", batch=2),
    "centre-0.7-three-consecutive-batch3": dict(depth=4, ce_layers=(0, 1, 2), ratio=0.7, range="centre", batch=3),
    "all-0.7-consecutive": dict(depth=4, ce_layers=(1, 2), ratio=0.7, range="all", batch=2),
    "all-0.5-one-block": dict(depth=3, ce_layers=(0,), ratio=0.5, range="all", batch=2),
    "all-0.5-first-and-last": dict(depth=4, ce_layers=(0, 3), ratio=0.5, range="all", batch=2),
    # own auxiliary patch embedding and a (random, non-zero) modality embedding; ratio per call
    "centre-0.5-aux1-embedding-override": dict(
        depth=4, ce_layers=(1, 2), ratio=0.5, range="centre", batch=2,
        options=dict(aux_in_chans=1, modality_embedding=True, ce_keep_ratio=0.9), via_forward=True,
    ),  # fmt: skip
}


def _build(case: dict, seed: int = 0):
    options = dict(case.get("options", {}))
    config_ratio = options.pop("ce_keep_ratio", case["ratio"])
    config = dict(TINY, depth=case["depth"])
    student = OneStreamStudent(
        **config, num_modalities=2, ce_layers=case["ce_layers"], ce_keep_ratio=config_ratio,
        ce_template_range=case["range"], **options,
    )  # fmt: skip
    randomize(student, seed=seed, scale=0.2)
    with torch.no_grad():  # sharper attention than scale 0.2 alone gives: scores well apart
        for block in student.backbone.blocks:
            block.attn.qkv.weight.mul_(4.0)
    student = student.double().eval()
    templates, searches = make_inputs(batch=case["batch"], aux_chans=options.get("aux_in_chans", 3), seed=seed + 1)
    return student, [t.double() for t in templates], [s.double() for s in searches]


def _reference(student: OneStreamStudent, templates, searches, case: dict, scoring: str = "every") -> dict:
    return two_modality_ce_reference(
        student.state_dict(), templates, searches, TINY["num_heads"], case["ce_layers"], case["ratio"],
        case["range"], scoring,
    )  # fmt: skip


@pytest.mark.parametrize("case", list(CASES.values()), ids=list(CASES))
def test_two_modality_candidate_elimination_matches_reference(case):
    student, templates, searches = _build(case)
    with torch.no_grad():
        keep_ratio = case["ratio"] if case.get("via_forward") else None
        out = student(templates, searches, return_features=True, keep_ratio=keep_ratio)
        ref = _reference(student, templates, searches, case)
    depth, batch = case["depth"], case["batch"]
    lens_z, lens_x = 16, 64

    # the chosen tokens: per block, each modality's search mask is exactly the reference's kept set
    assert out.feature_masks is not None and len(out.feature_masks) == depth
    expected_kept, k = [], lens_x
    for i in range(depth):
        if i in case["ce_layers"]:
            k = math.ceil(case["ratio"] * k)
        expected_kept.append(k)
    for i in range(depth):
        mask = out.feature_masks[i]
        assert mask.shape == (batch, 2 * (lens_z + lens_x))
        assert torch.equal(mask, ref["masks"][i]), f"block {i}: kept tokens differ from the reference"
        for m in range(2):
            base = m * (lens_z + lens_x)
            assert mask[:, base : base + lens_z].all()
            assert (mask[:, base + lens_z : base + lens_z + lens_x].sum(1) == expected_kept[i]).all()
            for b in range(batch):
                assert ref["kept"][i][b][m].numel() == expected_kept[i]
                assert torch.equal(
                    mask[b, base + lens_z : base + lens_z + lens_x].nonzero().flatten(), ref["kept"][i][b][m].sort().values
                )

    # the values: re-expanded block outputs, the head's maps and boxes
    for i in range(depth):
        torch.testing.assert_close(out.features[i], ref["features"][i], rtol=0, atol=ATOL, msg=f"features of block {i}")
    for name in ("score_map", "size_map", "offset_map", "boxes"):
        torch.testing.assert_close(getattr(out, name), ref[name], rtol=0, atol=ATOL, msg=name)

    # the case is not degenerate: samples differ, and the two modalities keep different positions
    last = ref["kept"][depth - 1]
    assert any(set(last[b][0].tolist()) != set(last[b][1].tolist()) for b in range(batch))
    final_masks = out.feature_masks[-1]
    rgb, aux = final_masks[:, lens_z : lens_z + lens_x], final_masks[:, 2 * lens_z + lens_x :]
    assert not torch.equal(rgb, aux), "both modalities kept the same positions: the case cannot tell them apart"
    assert not torch.equal(final_masks[0], final_masks[1]), "samples kept the same tokens"


@pytest.mark.slow
@pytest.mark.parametrize("case", list(CASES.values()), ids=list(CASES))
def test_cases_tell_the_documented_rule_from_near_misses(case):
    """Scoring from the own template only, or one top-k over both modalities, would choose other
    tokens in every case, so a model that followed either could not pass the test above."""
    student, templates, searches = _build(case)
    with torch.no_grad():
        every = _reference(student, templates, searches, case)
        own = _reference(student, templates, searches, case, scoring="own")
    assert any(
        not torch.equal(every["masks"][i], own["masks"][i]) for i in range(case["depth"])
    ), "own-template scoring keeps the same tokens"
    assert every["joint_differs"], "a joint top-k over both modalities would keep the same tokens"
