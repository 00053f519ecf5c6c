import torch
from torch import nn

from mmtrack_kd.runtime.precision import autocast, autocast_dtype, quantize_int8


def test_autocast_dtype_of_each_setting():
    cpu = torch.device("cpu")
    assert autocast_dtype("fp32", cpu) is None
    assert autocast_dtype("bf16", cpu) is torch.bfloat16
    assert autocast_dtype("fp16", cpu) is torch.float16
    assert autocast_dtype("int8", cpu) is None  # int8 quantizes the model, not the activations
    assert autocast_dtype("auto", cpu) is None


def test_autocast_runs_matmuls_in_the_dtype_and_none_is_a_no_op():
    a = torch.randn(4, 4)
    with autocast(torch.device("cpu"), torch.bfloat16):
        assert (a @ a).dtype is torch.bfloat16
    with autocast(torch.device("cpu"), None):
        assert (a @ a).dtype is torch.float32


def test_quantize_int8_copies_and_keeps_the_original():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(8, 8), nn.ReLU(), nn.Linear(8, 2))
    quantized = quantize_int8(model)
    assert isinstance(model[0], nn.Linear)  # left as it was
    assert not isinstance(quantized[0], nn.Linear)
    x = torch.randn(3, 8)
    assert torch.allclose(quantized(x), model(x), atol=0.1)
