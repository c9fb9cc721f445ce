"""A deterministic, seedable sampler that can shard an epoch across processes."""

from __future__ import annotations

import math
from collections.abc import Iterator, Sized

import numpy as np
import torch.utils.data


class SeededSampler(torch.utils.data.Sampler[int]):
    """Index order fixed by ``(seed, epoch)``; call ``set_epoch`` for a new shuffle.

    With ``num_replicas > 1`` each ``rank`` gets every ``num_replicas``-th index of the
    same permutation, padded by wrapping around so all ranks see as many samples, as
    ``DistributedSampler`` does.
    """

    def __init__(self, data_source: Sized, *, seed: int = 0, shuffle: bool = True,
                 num_replicas: int = 1, rank: int = 0):
        if num_replicas < 1 or not 0 <= rank < num_replicas:
            raise ValueError(f"need 0 <= rank < num_replicas, got rank {rank} of {num_replicas}")
        if seed < 0:
            raise ValueError("seed must be non-negative")
        self.size = len(data_source)
        self.seed = seed
        self.shuffle = shuffle
        self.num_replicas = num_replicas
        self.rank = rank
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return math.ceil(self.size / self.num_replicas)

    def __iter__(self) -> Iterator[int]:
        if self.shuffle:
            # Seeding with the pair keeps (seed, epoch) streams apart, unlike seed + epoch.
            order = np.random.default_rng([self.seed, self.epoch]).permutation(self.size)
        else:
            order = np.arange(self.size)
        total = len(self) * self.num_replicas
        if total > self.size:
            order = np.resize(order, total)
        return iter(order[self.rank::self.num_replicas].tolist())
