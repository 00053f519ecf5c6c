"""``train.processes``: the share of cores each process gets, and what the launcher refuses.
(The launch itself is tested against torchrun in test_trainer.py.)"""

from __future__ import annotations

import pytest
import torch

from mmtrack_kd.engine import launch
from mmtrack_kd.runtime import device
from mmtrack_kd.errors import MmtrackError


@pytest.mark.parametrize(("processes", "cores", "threads"), [(2, 2, 1), (2, 16, 8), (3, 16, 5), (4, 2, 1)])
def test_each_process_gets_an_equal_share_of_the_cores_and_at_least_one(processes, cores, threads):
    assert device.threads_per_process(processes, cores) == threads


def test_the_share_is_of_the_cores_this_process_may_use(monkeypatch):
    monkeypatch.setattr(device.os, "sched_getaffinity", lambda pid: {0, 1, 2, 3}, raising=False)
    assert device.available_cores() == 4
    assert device.threads_per_process(2) == 2


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


def test_inside_torchrun_nothing_is_launched_again_and_rank_0_is_the_main_process(monkeypatch):
    from mmtrack_kd.runtime.distributed import is_main_process, launched_by_torchrun

    monkeypatch.delenv("WORLD_SIZE", raising=False)
    monkeypatch.delenv("RANK", raising=False)
    assert not launched_by_torchrun() and is_main_process()
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "1")
    assert launched_by_torchrun() and not is_main_process()
    monkeypatch.setenv("RANK", "0")
    assert is_main_process()


def test_one_process_raises_its_own_refusal_and_a_quiet_one_is_not_printed(capsys, monkeypatch):
    """(Several processes: the torchrun test in test_trainer.py.)"""
    from mmtrack_kd import cli
    from mmtrack_kd.cli import main
    from mmtrack_kd.engine.run import PeerRefused, agree_to_start
    from mmtrack_kd.runtime.distributed import DistributedContext

    agree_to_start(DistributedContext(), None)
    with pytest.raises(MmtrackError, match="holds a run"):
        agree_to_start(DistributedContext(), MmtrackError("runs/x/teacher already holds a run"))
    assert PeerRefused("told by process 0").quiet and not MmtrackError("loud").quiet
    capsys.readouterr()

    def refused(args):
        raise PeerRefused("process 1: the main process refused the run: ...")

    monkeypatch.setattr(cli, "cmd_train", refused)
    assert main(["train", "any.yaml"]) == 2
    assert capsys.readouterr().err == ""  # process 0 has said why
