"""``train.processes``: the share of cores each process gets, and what the launcher refuses.
(The launch itself is tested against torchrun in test_trainer.py.)"""

from __future__ import annotations

import pytest
import torch

from mmtrack_kd.engine import launch
from mmtrack_kd.errors import MmtrackError


@pytest.mark.parametrize(("processes", "cores", "threads"), [(2, 2, 1), (2, 16, 8), (3, 16, 5), (4, 2, 1)])
def test_each_process_gets_an_equal_share_of_the_cores_and_at_least_one(processes, cores, threads):
    assert launch.threads_per_process(processes, cores) == threads


def test_the_share_is_of_the_cores_this_process_may_use(monkeypatch):
    monkeypatch.setattr(launch.os, "sched_getaffinity", lambda pid: {0, 1, 2, 3}, raising=False)
    assert launch.available_cores() == 4
    assert launch.threads_per_process(2) == 2


def test_cuda_runs_at_most_one_process_per_gpu_and_says_so(monkeypatch, caplog):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    with caplog.at_level("INFO", logger="mmtrack_kd"):
        assert launch.processes_to_start(2, "auto") == 1
    assert "train.processes is 2 but this machine has 1 GPU: training in 1 process" in caplog.text
    assert launch.processes_to_start(1, "cuda") == 1
    assert launch.processes_to_start(4, "cpu") == 4  # CPU processes share the cores
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert launch.processes_to_start(2, "auto") == 2


def test_inside_torchrun_nothing_is_launched_again(monkeypatch):
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    assert not launch.launched_by_torchrun()
    monkeypatch.setenv("WORLD_SIZE", "2")
    assert launch.launched_by_torchrun()
