"""The Multi-Modal Mutual Prompter: shapes, switches, Conv2d == Linear, maps kept apart."""

from __future__ import annotations

import itertools

import pytest
import torch

from mmtrack_kd.models.prompter import MutualPrompter

GRIDS = [(4, 4), (8, 8)]
N = 16 + 64


def _tokens(seed: int = 0) -> list[torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    return [torch.randn(2, N, 64, generator=generator) for _ in range(3)]


SWITCHES = list(itertools.product([True, False], repeat=3))  # spatial, token, history


@pytest.mark.parametrize("spatial,token,history", SWITCHES)
def test_shapes_and_modules_follow_the_switches(spatial, token, history):
    prompter = MutualPrompter(64, history=history, spatial_attention=spatial, token_attention=token)
    own, other, prev = _tokens()
    out = prompter(own, other, prev if history else None, GRIDS)
    assert out.shape == (2, N, 64)
    branches = [prompter.own, prompter.other] + ([prompter.prev] if history else [])
    for branch in branches:
        assert (branch.spatial_attention is not None) == spatial
        assert (branch.channel_attention is not None) == token
    assert (prompter.norm_prev is not None) == history


@pytest.mark.parametrize("spatial,token,history", SWITCHES)
def test_linear_and_conv2d_prompters_agree_given_the_same_weights(spatial, token, history, random_weights):
    conv = random_weights(
        MutualPrompter(64, history=history, spatial_attention=spatial, token_attention=token, layer_type="conv2d")
    )
    linear = MutualPrompter(64, history=history, spatial_attention=spatial, token_attention=token, layer_type="linear")
    state = {k: v.flatten(1) if v.dim() == 4 and v.shape[2:] == (1, 1) else v for k, v in conv.state_dict().items()}
    linear.load_state_dict(state)
    own, other, prev = _tokens(1)
    prev = prev if history else None
    assert torch.allclose(conv(own, other, prev, GRIDS), linear(own, other, prev, GRIDS), atol=1e-5)


def test_template_and_search_maps_are_prompted_separately(random_weights):
    prompter = random_weights(MutualPrompter(64, history=True))
    own, other, prev = _tokens(2)
    whole = prompter(own, other, prev, GRIDS)
    template = prompter(own[:, :16], other[:, :16], prev[:, :16], [(4, 4)])
    search = prompter(own[:, 16:], other[:, 16:], prev[:, 16:], [(8, 8)])
    assert torch.allclose(whole, torch.cat([template, search], dim=1), atol=1e-6)


def test_prompt_is_the_sum_of_fovea_own_other_and_previous(random_weights):
    prompter = random_weights(MutualPrompter(64, history=True, layer_type="linear"))
    own, other, prev = _tokens(3)
    grid = [(8, 8)]
    own, other, prev = own[:, :64], other[:, :64], prev[:, :64]
    branch = lambda module, x: module(x, (8, 8))  # noqa: E731
    fovea_in = branch(prompter.own, prompter.norm_own(own))
    fovea = torch.softmax(prompter.fovea.smooth * fovea_in, dim=1) * fovea_in
    expected = fovea + branch(prompter.other, prompter.norm_other(other)) + branch(prompter.prev, prompter.norm_prev(prev))
    assert torch.allclose(prompter(own, other, prev, grid), expected, atol=1e-6)
    # fovea starts at lambda = 10
    assert MutualPrompter(64, history=False).fovea.smooth.item() == 10.0


def test_channel_and_spatial_attention_weight_what_their_names_say():
    prompter = MutualPrompter(64, history=False, layer_type="linear")
    x = torch.randn(2, 64, 64)
    channel = prompter.own.channel_attention(x)
    spatial = prompter.own.spatial_attention(x, (8, 8))
    assert channel.shape == (2, 1, 64)  # one weight per channel
    assert spatial.shape == (2, 64, 1)  # one weight per position
    assert prompter.own.channel_attention.fc1.weight.shape == (8, 64)  # D -> D/8 bottleneck


def test_mplt_compat_shares_the_previous_branch_channel_attention(random_weights):
    prompter = random_weights(MutualPrompter(64, history=True, mplt_compat=True))
    assert prompter.other.channel_attention is None
    own, other, prev = _tokens(4)
    out = prompter(own, other, prev, GRIDS)
    plain = MutualPrompter(64, history=True)
    state = prompter.state_dict()
    state.update({f"other.channel_attention.{k}": v for k, v in prompter.prev.channel_attention.state_dict().items()})
    plain.load_state_dict(state)
    assert torch.allclose(out, plain(own, other, prev, GRIDS), atol=1e-6)
    with pytest.raises(ValueError, match="mplt_compat"):
        MutualPrompter(64, history=False, mplt_compat=True)


def test_wrong_inputs_are_refused():
    own, other, prev = _tokens()
    with pytest.raises(ValueError, match="history"):
        MutualPrompter(64, history=True)(own, other, None, GRIDS)
    with pytest.raises(ValueError, match="history"):
        MutualPrompter(64, history=False)(own, other, prev, GRIDS)
    with pytest.raises(ValueError, match="tokens"):
        MutualPrompter(64, history=False)(own, other, None, [(8, 8)])
    with pytest.raises(ValueError, match="layer_type"):
        MutualPrompter(64, history=False, layer_type="dense")
