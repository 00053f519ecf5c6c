"""Throughput of the training-data path alone (no model): samples per second."""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass

from mmtrack_kd.data.loader import PairDataset, make_loader


@dataclass(frozen=True)
class DataBenchmark:
    """One measurement of the loader.

    Attributes:
        workers: DataLoader worker processes.
        batch_size: samples per batch.
        batches: batches timed (after the warm-up batches).
        samples: samples timed.
        seconds: wall time of the timed batches.
        startup_seconds: time to the end of the warm-up batches (worker start included).
        skipped: unreadable draws replaced during the run.
        streams: the streams loaded, RGB first.
        template_size, search_size: crop sides.
    """

    workers: int
    batch_size: int
    batches: int
    samples: int
    seconds: float
    startup_seconds: float
    skipped: int
    streams: tuple[str, ...]
    template_size: int
    search_size: int

    @property
    def samples_per_second(self) -> float:
        """Timed samples / timed seconds."""
        return self.samples / self.seconds if self.seconds > 0 else float("inf")

    def as_dict(self) -> dict[str, object]:
        """Plain data for JSON reports, ``samples_per_second`` included."""
        return {**asdict(self), "samples_per_second": self.samples_per_second}


def benchmark_loader(
    dataset: PairDataset,
    *,
    workers: int = 2,
    batch_size: int = 16,
    batches: int = 20,
    warmup: int = 2,
) -> DataBenchmark:
    """Time ``batches`` batches of ``dataset`` through a DataLoader with ``workers`` workers,
    after ``warmup`` batches that absorb worker start-up and first-touch costs.

    Raises ``ValueError`` when the dataset is too short for warm-up plus one timed batch.
    """
    available = len(dataset) // batch_size - warmup
    if available < 1:
        raise ValueError(
            f"{len(dataset)} samples are too few for {warmup} warm-up and one timed batch of "
            f"{batch_size}; build the dataset with more samples_per_epoch"
        )
    batches = min(batches, available)
    skipped_before = dataset.skipped
    loader = make_loader(dataset, batch_size, workers, drop_last=True)
    started = time.perf_counter()
    iterator = iter(loader)
    for _ in range(warmup):
        next(iterator)
    warm = time.perf_counter()
    for _ in range(batches):
        next(iterator)
    finished = time.perf_counter()
    del iterator
    sizes = dataset.processing
    return DataBenchmark(
        workers=workers,
        batch_size=batch_size,
        batches=batches,
        samples=batches * batch_size,
        seconds=finished - warm,
        startup_seconds=warm - started,
        skipped=dataset.skipped - skipped_before,
        streams=dataset.streams,
        template_size=sizes.template.size,
        search_size=sizes.search.size,
    )
