"""Stopping a training run cleanly: the stop flag, the signal handlers, the loader workers.

A first SIGTERM or SIGINT only sets :data:`STOP`; the loop checks it before each micro-batch
and saves the last completed update. A second one stops at once without saving.
"""

from __future__ import annotations

import contextlib
import logging
import signal
import threading
from typing import Any, Iterator

from mmtrack_kd.data.loader import worker_init_fn
from mmtrack_kd.errors import MmtrackError

log = logging.getLogger(__name__)


class TrainingStopped(MmtrackError):
    """The run stopped early (non-finite loss); the message names the step and the checkpoint."""


class StopFlag:
    """What the signals asked for so far (one per process: signal handlers are global)."""

    requested = False  # a first SIGTERM / SIGINT: stop at the next micro-batch and save
    hard = False  # a second one: stop at once, without saving


STOP = StopFlag()


def request_stop(signum: int, frame: Any) -> None:
    """SIGTERM / SIGINT during training: the first asks the loop to stop at its next micro-batch
    (it saves the last completed update); a second stops at once.

    The first signal only sets a flag. Raising from a handler lands wherever the main thread is,
    and where that is inside a hook whose exceptions Python ignores (logging's at-fork lock
    release while DataLoader workers start, a ``__del__``) the KeyboardInterrupt is printed and
    lost, and the run trains on. DataLoader workers install it too (:func:`training_worker_init`).
    """
    if STOP.requested:
        STOP.hard = True
        raise KeyboardInterrupt
    STOP.requested = True


def training_worker_init(worker_id: int) -> None:
    """A training DataLoader worker: seeded as every loader's, and deferring SIGTERM / SIGINT to
    the main process. torch's workers die on SIGTERM, and a pre-emption signal sent to the whole
    process group would then kill them under the main process, whose next batch fails with
    "DataLoader worker killed"; here the first signal is noted and ignored, the main process
    stops at its next micro-batch and shuts the workers down (a second signal still stops them,
    and a worker whose main process is gone exits by torch's own watchdog)."""
    worker_init_fn(worker_id)
    STOP.requested = STOP.hard = False
    for number in (signal.SIGTERM, signal.SIGINT):
        signal.signal(number, request_stop)


@contextlib.contextmanager
def stop_on_signals(stage: str) -> Iterator[None]:
    """Route SIGTERM and SIGINT to :func:`request_stop` while a stage trains (main thread only:
    Python delivers signals there, and elsewhere the caller keeps its own handling). A signal
    that came too late to stop the stage (during its last update or its final save) still
    stops the run after it, before a next stage starts."""
    STOP.requested = STOP.hard = False
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {number: signal.signal(number, request_stop) for number in (signal.SIGTERM, signal.SIGINT)}
    late = False
    try:
        yield
        late = STOP.requested
    finally:
        for number, handler in previous.items():
            if handler is not None:  # None: installed from C, cannot be put back from Python
                signal.signal(number, handler)
        STOP.requested = STOP.hard = False
    if late:
        log.warning("%s: finished; stopping on the signal that came during its last step", stage)
        raise KeyboardInterrupt
