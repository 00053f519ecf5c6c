"""``train.processes``: ``mmtrack-kd train`` starting its own DistributedDataParallel processes.

A recipe that asks for more than one process is run as ``torchrun --standalone
--nproc_per_node N -m mmtrack_kd train ...`` would run it, through torchrun's own launcher
(:mod:`torch.distributed.run`), so that a user need not know the torchrun command line. Under
an outer ``torchrun`` (``WORLD_SIZE`` set) nothing is launched: its process count wins.

Why this is worth having on a CPU: a small model's training step barely gains from a second
intra-op thread (thread barriers on small matrix products), and a data-loader worker competing
with the model's threads for the same cores slows both. Two processes of one thread each, each
loading its own half of the batch, keep both cores busy: 1.54x the samples per second of one
two-thread process with two loader workers for the demo's model on a 2-core AMD EPYC.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence

import torch

from mmtrack_kd.errors import MmtrackError
from mmtrack_kd.runtime.device import choose_device, threads_per_process

log = logging.getLogger("mmtrack_kd")


def processes_to_start(processes: int, device: str) -> int:
    """How many of ``train.processes`` this machine runs: all of them on CPUs (they share the
    cores), at most one per GPU on CUDA -- so a recipe written for a 2-core CPU still runs on a
    one-GPU machine, in one process, and says so."""
    if processes <= 1 or choose_device(device).type != "cuda":
        return processes
    gpus = torch.cuda.device_count()
    if processes > gpus:
        log.info("train.processes is %d but this machine has %d GPU%s: training in %d process%s, "
                 "one per GPU", processes, gpus, "" if gpus == 1 else "s", gpus,
                 "" if gpus == 1 else "es")
        return gpus
    return processes


def launch_training(processes: int, cli_arguments: Sequence[str]) -> int:
    """Run ``python -m mmtrack_kd <cli_arguments>`` (a ``train`` command line) in ``processes``
    processes on this machine (:func:`processes_to_start` of ``train.processes``).

    Each process gets ``OMP_NUM_THREADS`` = its share of the cores, unless the caller set it.
    A process that fails prints its own one-line error.

    Args:
        processes: how many processes, above 1.
        cli_arguments: the whole command line after the program name, as given.

    Returns:
        0 when every process finished.

    Raises:
        MmtrackError: naming the first process that failed and its exit status, or the signal
            that stopped them (each process saved its ``last.pt`` first).
    """
    from torch.distributed.elastic.multiprocessing.api import SignalException
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.run import get_args_parser, run

    threads = os.environ.get("OMP_NUM_THREADS") or str(threads_per_process(processes))
    os.environ["OMP_NUM_THREADS"] = threads
    log.info("training in %d processes (DistributedDataParallel, %s thread%s each)", processes,
             threads, "" if threads == "1" else "s")
    launcher = get_args_parser().parse_args(
        ["--standalone", f"--nproc_per_node={processes}", "--module", "mmtrack_kd",
         *cli_arguments]
    )
    # torchrun's agent logs each process it stops or sees fail; the processes print their own
    # reasons and the error below names the one that failed, with its exit status
    logging.getLogger("torch.distributed.elastic").setLevel(logging.CRITICAL)
    try:
        run(launcher)
    except ChildFailedError as failure:
        rank, first = failure.get_first_failure()
        log.debug("%s", failure)
        # the processes printed the reason above (the main one, or the one that failed)
        raise MmtrackError(f"training stopped: process {rank} of {processes} exited with status "
                           f"{first.exitcode} (the reason is above)") from None
    except SignalException as stop:
        # torchrun has passed the signal on: each process saved its last.pt before it stopped
        raise MmtrackError(f"training stopped by signal {stop.sigval.name}; "
                           "`mmtrack-kd train ... --resume` continues it") from None
    return 0
