import pytest
import torch

from mmtrack_kd.errors import MmtrackError
from mmtrack_kd.runtime.device import choose_device


def test_auto_is_cuda_when_available_else_cpu():
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert choose_device("auto").type == expected


def test_a_named_device_is_taken_as_torch_spells_it():
    assert choose_device("cpu") == torch.device("cpu")
    assert choose_device(torch.device("cpu")) == torch.device("cpu")


def test_an_unknown_name_is_an_error_naming_the_setting():
    with pytest.raises(MmtrackError, match="--device: 'gpu0' is not a device"):
        choose_device("gpu0", setting="--device")


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_cuda_without_a_gpu_is_an_error():
    with pytest.raises(MmtrackError, match="train.device is cuda but no CUDA device"):
        choose_device("cuda")
