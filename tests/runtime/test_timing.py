import torch

from mmtrack_kd.runtime.timing import time_call, time_calls


def test_time_calls_times_repeats_after_untimed_warmup():
    calls = []
    times = time_calls(lambda: calls.append(1), warmup=3, repeats=4)
    assert len(calls) == 7
    assert len(times) == 4
    assert all(seconds >= 0 for seconds in times)


def test_time_call_on_a_cpu_device():
    assert time_call(lambda: torch.ones(8) @ torch.ones(8), torch.device("cpu")) >= 0
