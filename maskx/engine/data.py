"""Training and evaluation data for the engine: datasets from a ``DataConfig``, and a
training stream whose batches are a function of (seed, epoch, position) alone.

Every training sample carries its own augmentation seed, drawn from (run seed, epoch,
rank, position). The augmentation therefore does not depend on which data-loader worker
ran it, nor on where the stream was started, so a resumed run sees exactly the batches an
uninterrupted run would have seen.
"""

from __future__ import annotations

import signal
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from maskx.data import CocoInstanceDataset, RandomHorizontalFlip, SeededSampler, coco_layout, collate_detection
from maskx.engine.config import DataConfig


def subset_paths(data: DataConfig, subset: str) -> tuple[Path, Path]:
    """(image folder, annotation file) of the ``train`` or ``val`` subset."""
    images = data.train_images if subset == "train" else data.val_images
    annotations = data.train_annotations if subset == "train" else data.val_annotations
    if images and annotations:
        return Path(images), Path(annotations)
    if data.root is None:
        raise ValueError(f"data: no {subset} data: give data.root or data.{subset}_annotations and data.{subset}_images")
    name = data.train_subset if subset == "train" else data.val_subset
    return coco_layout(data.root, name)


class SeededSamples(Dataset):
    """``dataset[index]`` augmented under its own seed: keys are ``(index, seed)``.

    With ``cache`` the un-augmented samples are kept in memory (images as uint8) after
    their first load; only for loading in the main process (num_workers 0).
    """

    def __init__(self, dataset: CocoInstanceDataset, flip_probability: float, cache: bool = False):
        self.dataset = dataset
        self.flip = RandomHorizontalFlip(flip_probability)
        self.cache: dict[int, tuple[torch.Tensor, dict]] | None = {} if cache else None

    def __len__(self) -> int:
        return len(self.dataset)

    def _load(self, index: int) -> tuple[torch.Tensor, dict]:
        if self.cache is None:
            return self.dataset[index]
        if index not in self.cache:
            image, target = self.dataset[index]
            # uint8 holds the decoded pixels exactly (they came from 8-bit files).
            self.cache[index] = ((image * 255).round_().to(torch.uint8), target)
        pixels, target = self.cache[index]
        return pixels.float().div_(255), target

    def __getitem__(self, key: tuple[int, int]) -> tuple[torch.Tensor, dict]:
        index, seed = key
        image, target = self._load(index)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            return self.flip(image, target)


def _ignore_sigint(worker_id: int) -> None:
    # A Ctrl-C reaches the whole process group; the main process saves a checkpoint and
    # stops the workers itself, so they must not die of it first.
    signal.signal(signal.SIGINT, signal.SIG_IGN)


@dataclass
class StreamPosition:
    """Where the training stream is: the next batch is batch ``batch`` of epoch ``epoch``."""

    epoch: int = 0
    batch: int = 0


class TrainingStream:
    """Endless batches ``(images, targets)`` for one process of a (possibly distributed) run.

    Each epoch is ``SeededSampler``'s order for (seed, epoch), this rank's share of it,
    cut into batches of ``images_per_batch`` (an incomplete last batch is dropped).
    """

    def __init__(self, samples: SeededSamples, images_per_batch: int, seed: int, rank: int = 0,
                 world_size: int = 1, num_workers: int = 0):
        if len(samples) < images_per_batch * world_size:
            raise ValueError(f"the training set has {len(samples)} images, fewer than one batch of "
                             f"{images_per_batch} per process x {world_size} processes")
        self.samples = samples
        self.images_per_batch = images_per_batch
        self.seed = seed
        self.rank = rank
        self.world_size = world_size
        self.num_workers = num_workers
        self.position = StreamPosition()

    @property
    def batches_per_epoch(self) -> int:
        sampler = SeededSampler(self.samples, seed=self.seed, num_replicas=self.world_size, rank=self.rank)
        return len(sampler) // self.images_per_batch

    def _epoch_keys(self, epoch: int) -> list[list[tuple[int, int]]]:
        sampler = SeededSampler(self.samples, seed=self.seed, num_replicas=self.world_size, rank=self.rank)
        sampler.set_epoch(epoch)
        indices = list(sampler)
        seeds = np.random.SeedSequence([self.seed, epoch, self.rank]).generate_state(len(indices), dtype=np.uint64)
        keys = [(index, int(s) & 0x7FFF_FFFF_FFFF_FFFF) for index, s in zip(indices, seeds)]
        count = len(keys) // self.images_per_batch
        return [keys[i * self.images_per_batch:(i + 1) * self.images_per_batch] for i in range(count)]

    def __iter__(self) -> Iterator[tuple[list[torch.Tensor], list[dict]]]:
        while True:
            keys = self._epoch_keys(self.position.epoch)[self.position.batch:]
            loader = DataLoader(self.samples, batch_sampler=keys, collate_fn=collate_detection,
                                num_workers=self.num_workers, worker_init_fn=_ignore_sigint,
                                # Its own generator: creating a loader must not draw from
                                # the global RNG the model's sampling uses.
                                generator=torch.Generator())
            for batch in loader:
                self.position.batch += 1
                yield batch
            self.position = StreamPosition(self.position.epoch + 1, 0)
