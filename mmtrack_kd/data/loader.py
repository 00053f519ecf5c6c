"""Training and validation pairs as a map-style ``torch.utils.data.Dataset``.

Sample ``index`` of epoch ``e`` is a pure function of ``(seed, purpose, e, index)``: its random
generator is seeded from exactly those numbers, and every choice (dataset, sequence, frames,
jitter, augmentation, replacement draws) comes from it. So any worker, any number of workers, a
``DistributedSampler``-style split over processes and a resumed run all produce the same samples.
The epoch comes from :meth:`PairDataset.set_epoch` (kept in shared memory, so persistent workers
see it) or from the index itself: ``dataset[e * samples_per_epoch + k]`` is sample ``k`` of epoch
``e`` (for samplers that stream global indices).

A pair whose frame cannot be read (the adapter raises ``DataError``) is replaced by the next draw
from the same generator (still deterministic); the failure is logged once per process with the
message naming the file, and counted across worker processes (:attr:`PairDataset.skipped`). After
``max_retries`` consecutive failures for one sample the loader stops with a ``DataError`` rather
than retry forever.

Sample keys (``S_t`` / ``S_s`` template / search size, ``C_m`` the channels of
stream ``m``, streams in :attr:`PairDataset.streams` order, RGB first):

``template``      list of ``(C_m, S_t, S_t)`` float32, normalised by each stream's adapter
``search``        list of ``(C_m, S_s, S_s)`` float32
``template_box``  ``(4,)`` float32 ``x, y, w, h`` in units of the template crop side
``search_box``    ``(4,)`` float32 ``x, y, w, h`` in units of the search crop side
``frames``        ``(2,)`` int64 template and search frame indices
``sequence``      ``"dataset/sequence"`` (a list of strings after collation)

``default_collate`` batches them: lists of ``(B, C_m, S, S)`` tensors and ``(B, 4)`` boxes. The
heat-map target is drawn from ``search_box`` by the loss, for the whole batch at once.
"""

from __future__ import annotations

import logging
import random
from typing import TYPE_CHECKING, Any, Iterator, Literal, Sequence as SequenceOf, Union

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from mmtrack_kd.data.crop import CropSettings
from mmtrack_kd.data.dataset import DatasetPlugin
from mmtrack_kd.data.modality import ModalityAdapter
from mmtrack_kd.data.processing import (
    NO_AUGMENTATION,
    Augmentation,
    CropSpec,
    PairProcessing,
)
from mmtrack_kd.data.sampler import FrameSampleMode, PairSampler
from mmtrack_kd.data.sequence import Sequence
from mmtrack_kd.errors import DataError, PluginError

if TYPE_CHECKING:
    from mmtrack_kd.recipe import SamplerConfig

log = logging.getLogger(__name__)

Purpose = Literal["train", "val"]
_PURPOSE_CODE = {"train": 0, "val": 1}
_COUNTER_SLOTS = 257  # slot 0: main process; slot 1 + worker id (mod 256) for workers

DatasetSource = Union[DatasetPlugin, SequenceOf[Sequence]]


class PairDataset(Dataset):
    """``samples_per_epoch`` training pairs per epoch, each deterministic from its index.

    Args:
        sampler: draws dataset, sequence and frames.
        processing: crops, augments and normalises a drawn pair.
        adapters: readers of the streams, RGB first (same order as ``processing``'s).
        samples_per_epoch: ``len(self)``.
        seed: the run's seed.
        max_retries: draws tried for one sample before giving up with a ``DataError``.
        purpose: ``"train"`` or ``"val"``; part of the seed, so a validation set never repeats
            training samples drawn with the same seed.
        fixed_epoch: when set (validation), :meth:`set_epoch` has no effect and every epoch
            yields the same samples.
    """

    def __init__(
        self,
        sampler: PairSampler,
        processing: PairProcessing,
        adapters: SequenceOf[ModalityAdapter],
        *,
        samples_per_epoch: int,
        seed: int,
        max_retries: int = 100,
        purpose: Purpose = "train",
        fixed_epoch: int | None = None,
    ) -> None:
        if samples_per_epoch < 0:
            raise ValueError(f"samples_per_epoch must be >= 0, got {samples_per_epoch}")
        if max_retries < 1:
            raise ValueError(f"max_retries must be >= 1, got {max_retries}")
        self.sampler = sampler
        self.processing = processing
        self.adapters = list(adapters)
        self.samples_per_epoch = int(samples_per_epoch)
        self.seed = int(seed)
        self.max_retries = int(max_retries)
        self.purpose = purpose
        self.fixed_epoch = fixed_epoch
        # Shared memory, so that set_epoch reaches persistent workers and workers' counts reach
        # the main process (fork and spawn alike).
        self._epoch = torch.zeros(1, dtype=torch.int64).share_memory_()
        self._counts = torch.zeros(2, _COUNTER_SLOTS, dtype=torch.int64).share_memory_()
        self._reported: set[str] = set()
        if fixed_epoch is not None:
            self._epoch[0] = fixed_epoch

    # ----------------------------------------------------------------------- epoch and seeds

    @property
    def streams(self) -> tuple[str, ...]:
        """Stream names in the order of the ``template`` and ``search`` lists."""
        return tuple(adapter.name for adapter in self.adapters)

    @property
    def epoch(self) -> int:
        """The epoch whose samples :meth:`__getitem__` returns."""
        return int(self._epoch[0])

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch; call before creating the epoch's DataLoader iterator (it also
        reaches persistent workers, which read it from shared memory)."""
        if self.fixed_epoch is None:
            self._epoch[0] = int(epoch)

    def rng(self, index: int, epoch: int | None = None) -> np.random.Generator:
        """The generator of sample ``index`` of ``epoch`` (the current epoch by default)."""
        epoch = self.epoch if epoch is None else epoch
        entropy = [self.seed % 2**63, _PURPOSE_CODE[self.purpose], int(epoch), int(index)]
        return np.random.default_rng(np.random.SeedSequence(entropy))

    # ----------------------------------------------------------------------- counters

    @property
    def skipped(self) -> int:
        """Draws replaced because a frame could not be read, over all processes."""
        return int(self._counts[0].sum())

    @property
    def rejected(self) -> int:
        """Draws replaced because the jittered crop was unusable (OSTrack's ``valid=False``)."""
        return int(self._counts[1].sum())

    def _count(self, row: int) -> None:
        info = torch.utils.data.get_worker_info()
        slot = 0 if info is None else 1 + info.id % (_COUNTER_SLOTS - 1)
        self._counts[row, slot] += 1

    def _report(self, error: DataError) -> None:
        self._count(0)
        message = str(error)
        if message not in self._reported:
            self._reported.add(message)
            log.warning(
                "%s -- replaced by another training pair (later failures of it are only counted)",
                message,
            )

    # ----------------------------------------------------------------------- samples

    def __len__(self) -> int:
        return self.samples_per_epoch

    def __getitem__(self, index: int) -> dict[str, object]:
        """Sample ``index`` of the current epoch. An index beyond ``len(self)`` counts on into
        later epochs: ``dataset[e * samples_per_epoch + k]`` is sample ``k`` of epoch
        ``epoch + e`` (a sampler may stream global indices instead of calling
        :meth:`set_epoch`). A fixed (validation) set wraps around instead."""
        index = int(index)
        if index < 0 or self.samples_per_epoch == 0:
            raise IndexError(f"sample {index} of a dataset of {self.samples_per_epoch} samples")
        later, position = divmod(index, self.samples_per_epoch)
        if self.fixed_epoch is not None:
            return self.sample(position, self.fixed_epoch)
        return self.sample(position, self.epoch + later)

    def sample(self, index: int, epoch: int | None = None) -> dict[str, object]:
        """Sample ``index`` of ``epoch`` (the current epoch by default)."""
        rng = self.rng(index, epoch)
        problem = "no draw made"
        for _ in range(self.max_retries):
            draw = self.sampler.draw(rng)
            sequence = draw.sequence
            try:
                template_frames = self._read(sequence, draw.template)
                search_frames = self._read(sequence, draw.search)
            except DataError as error:
                self._report(error)
                problem = str(error)
                continue
            sample = self.processing(
                template_frames,
                sequence.boxes[draw.template],
                search_frames,
                sequence.boxes[draw.search],
                rng,
            )
            if sample is None:
                self._count(1)
                problem = (
                    f"{sequence.where}: frames {draw.template}/{draw.search}: "
                    "jittered crop degenerate or outside the image"
                )
                continue
            sample["frames"] = torch.tensor([draw.template, draw.search], dtype=torch.int64)
            sample["sequence"] = sequence.where
            return sample
        raise DataError(
            f"no {self.purpose} pair could be built for sample {index} of epoch "
            f"{self.epoch if epoch is None else epoch} in {self.max_retries} draws "
            f"(data.sampler.max_retries); last problem: {problem}"
        )

    def _read(self, sequence: Sequence, index: int) -> list[np.ndarray]:
        """Every stream's frame ``index``, checked for shape agreement."""
        frames = []
        for adapter in self.adapters:
            frame = adapter.read(sequence, index)
            if frame.ndim != 3 or frame.shape[2] != adapter.channels:
                raise PluginError(
                    f"modality adapter {adapter.name} returned a frame of shape {frame.shape} "
                    f"for {sequence.where} frame {index}; it declares {adapter.channels} channels "
                    "(H x W x C expected)"
                )
            if frames and frame.shape[:2] != frames[0].shape[:2]:
                raise DataError(
                    f"{sequence.where}: frame {index}: the {adapter.name} frame is "
                    f"{frame.shape[1]}x{frame.shape[0]} but the {self.adapters[0].name} frame is "
                    f"{frames[0].shape[1]}x{frames[0].shape[0]} (streams must be aligned)"
                )
            frames.append(frame)
        return frames


# --------------------------------------------------------------------------- building


def load_sequences(
    source: DatasetSource, streams: SequenceOf[str] = ()
) -> tuple[str, list[Sequence]]:
    """``(name, sequences)`` of a dataset plugin (every sequence of its split, annotations only)
    or of a ready list of sequences; checks that a plugin carries every stream."""
    if isinstance(source, DatasetPlugin):
        missing = [stream for stream in streams if stream not in source.modalities]
        if missing:
            raise DataError(
                f"dataset {source.name} carries {', '.join(source.modalities)}; it has no "
                f"{', '.join(missing)} stream for this recipe's modality"
            )
        return source.name, list(source.sequences())
    sequences = list(source)
    return (sequences[0].dataset if sequences else "<empty>"), sequences


def _adapters(
    rgb: ModalityAdapter | None,
    aux: ModalityAdapter | None,
    adapters: SequenceOf[ModalityAdapter] | None,
) -> list[ModalityAdapter]:
    if adapters is not None:
        if rgb is not None or aux is not None:
            raise TypeError("pass either rgb/aux or adapters, not both")
        adapters = list(adapters)
        if not 1 <= len(adapters) <= 2:
            raise ValueError(f"adapters must be [rgb] or [rgb, aux], got {len(adapters)}")
        return adapters
    if rgb is None:
        raise TypeError("the RGB adapter is required (rgb=... or adapters=[rgb, aux])")
    return [rgb] if aux is None else [rgb, aux]


def _sizes(model: Any, explicit: dict[str, Any]) -> CropSettings:
    given = {key: value for key, value in explicit.items() if value is not None}
    if model is not None:
        if given:
            raise TypeError(f"pass either model or {', '.join(given)}, not both")
        return CropSettings.from_recipe(model)
    missing = [key for key in explicit if key not in given]
    if missing:
        raise TypeError(f"missing crop sizes: {', '.join(missing)} (or pass model=...)")
    return CropSettings(**given)


def build_pair_dataset(
    datasets: SequenceOf[tuple[DatasetSource, float]],
    adapters: SequenceOf[ModalityAdapter],
    sizes: CropSettings,
    sampler: "SamplerConfig",
    *,
    samples: int,
    seed: int,
    augment: bool,
    purpose: Purpose,
    fixed_epoch: int | None = None,
    mode: FrameSampleMode = "causal",
) -> PairDataset:
    """The common builder behind :func:`build_train_dataset` and :func:`build_val_dataset`."""
    adapters = list(adapters)
    streams = [adapter.name for adapter in adapters]
    loaded = []
    for source, weight in datasets:
        name, sequences = load_sequences(source, streams)
        loaded.append((name, sequences, float(weight)))
    pair_sampler = PairSampler(loaded, max_gap=sampler.max_gap, mode=mode)
    augmentation = (
        Augmentation(
            flip_probability=sampler.flip_probability,
            brightness_jitter=sampler.brightness_jitter,
            grayscale_probability=sampler.grayscale_probability,
        )
        if augment
        else NO_AUGMENTATION
    )
    processing = PairProcessing(
        adapters,
        template=CropSpec(
            sizes.template_size, sizes.template_factor,
            sampler.template_scale_jitter, sampler.template_centre_jitter,
        ),
        search=CropSpec(
            sizes.search_size, sizes.search_factor, sampler.scale_jitter, sampler.centre_jitter
        ),
        augmentation=augmentation,
    )
    return PairDataset(
        pair_sampler,
        processing,
        adapters,
        samples_per_epoch=samples,
        seed=seed,
        max_retries=sampler.max_retries,
        purpose=purpose,
        fixed_epoch=fixed_epoch,
    )


def build_train_dataset(
    datasets: SequenceOf[tuple[DatasetSource, float]],
    rgb: ModalityAdapter | None = None,
    aux: ModalityAdapter | None = None,
    *,
    sampler: "SamplerConfig",
    samples_per_epoch: int,
    seed: int,
    adapters: SequenceOf[ModalityAdapter] | None = None,
    model: Any = None,
    template_size: int | None = None,
    search_size: int | None = None,
    template_factor: float | None = None,
    search_factor: float | None = None,
    patch_size: int | None = None,
    mode: FrameSampleMode = "causal",
) -> PairDataset:
    """Training pairs: OSTrack's sampling, jitter and augmentation.

    Args:
        datasets: ``(dataset plugin instance, weight)`` pairs (a list of :class:`Sequence` works
            in place of a plugin); weights are relative shares of the pairs.
        rgb, aux: the RGB adapter and the auxiliary one (None for an RGB-only run) -- or
            ``adapters=[rgb]`` / ``[rgb, aux]``.
        sampler: ``data.sampler`` of the recipe.
        samples_per_epoch: ``len()`` of the dataset.
        seed: the run's seed.
        model: the recipe's ``model`` section for the crop sizes -- or give ``template_size``,
            ``search_size``, ``template_factor``, ``search_factor`` and ``patch_size``.
        mode: ``"causal"`` (search after template, OSTrack) or ``"interval"``.
    """
    sizes = _sizes(model, dict(
        template_size=template_size, search_size=search_size, template_factor=template_factor,
        search_factor=search_factor, patch_size=patch_size,
    ))
    return build_pair_dataset(
        datasets, _adapters(rgb, aux, adapters), sizes, sampler,
        samples=samples_per_epoch, seed=seed, augment=True, purpose="train", mode=mode,
    )


def build_val_dataset(
    datasets: SequenceOf[tuple[DatasetSource, float]],
    rgb: ModalityAdapter | None = None,
    aux: ModalityAdapter | None = None,
    *,
    sampler: "SamplerConfig",
    num_samples: int,
    seed: int = 0,
    adapters: SequenceOf[ModalityAdapter] | None = None,
    model: Any = None,
    template_size: int | None = None,
    search_size: int | None = None,
    template_factor: float | None = None,
    search_factor: float | None = None,
    patch_size: int | None = None,
    mode: FrameSampleMode = "causal",
) -> PairDataset:
    """A fixed validation set of ``num_samples`` pairs: the same pair sampling and crop jitter as
    training (so the target is not always centred) from a fixed seed and epoch, without flips or
    photometric augmentation. Every evaluation sees exactly the same pairs. Arguments as
    :func:`build_train_dataset`."""
    sizes = _sizes(model, dict(
        template_size=template_size, search_size=search_size, template_factor=template_factor,
        search_factor=search_factor, patch_size=patch_size,
    ))
    return build_pair_dataset(
        datasets, _adapters(rgb, aux, adapters), sizes, sampler,
        samples=num_samples, seed=seed, augment=False, purpose="val", fixed_epoch=0, mode=mode,
    )


# --------------------------------------------------------------------------- loading


def worker_init_fn(worker_id: int) -> None:
    """Seed a worker's global generators from the seed torch gives it. Samples themselves do not
    use global generators; this only makes third-party randomness reproducible."""
    # Do not call cv2.setNumThreads here: in a forked worker it tears down the thread pool
    # inherited from the parent and deadlocks (OpenCV itself works fine after the fork).
    base = torch.initial_seed() % 2**32
    random.seed(base)
    np.random.seed(base)


class ShardIndices(Sampler[int]):
    """Indices ``rank, rank + world, rank + 2 * world, ...`` below ``length`` (a non-padding,
    non-shuffling ``DistributedSampler``: samples are random already), skipping the first
    ``start`` of this rank's indices to resume inside an epoch. The tail that does not divide by
    ``world_size`` is dropped so every rank gets the same count."""

    def __init__(self, length: int, rank: int = 0, world_size: int = 1, start: int = 0) -> None:
        if not 0 <= rank < world_size:
            raise ValueError(f"rank {rank} outside 0..{world_size - 1}")
        self.length = int(length)
        self.rank = int(rank)
        self.world_size = int(world_size)
        self.start = int(start)

    def _per_rank(self) -> int:
        return self.length // self.world_size

    def __iter__(self) -> Iterator[int]:
        for k in range(self.start, self._per_rank()):
            yield self.rank + k * self.world_size

    def __len__(self) -> int:
        return max(0, self._per_rank() - self.start)


def make_loader(
    dataset: PairDataset,
    batch_size: int,
    workers: int,
    *,
    rank: int = 0,
    world_size: int = 1,
    start: int = 0,
    drop_last: bool = True,
    pin_memory: bool = False,
    persistent_workers: bool = False,
    prefetch_factor: int | None = None,
) -> DataLoader:
    """A DataLoader over ``dataset`` for one process of ``world_size``.

    Args:
        batch_size: this process's batch (the recipe's global batch / world size).
        workers: worker processes (0: load in this process).
        start: samples of this rank already consumed this epoch (resume mid-epoch).
    """
    return DataLoader(
        dataset,
        batch_size=batch_size,
        sampler=ShardIndices(len(dataset), rank, world_size, start),
        num_workers=workers,
        drop_last=drop_last,
        pin_memory=pin_memory,
        worker_init_fn=worker_init_fn if workers > 0 else None,
        persistent_workers=persistent_workers and workers > 0,
        prefetch_factor=prefetch_factor if workers > 0 else None,
    )
