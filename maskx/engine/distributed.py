"""Multi-process data parallel set-up for ``torchrun`` (NCCL on GPUs, gloo on CPUs)."""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class Process:
    rank: int
    world_size: int
    local_rank: int
    device: torch.device

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def start(device: str) -> Process:
    """Join the process group when launched by torchrun (``WORLD_SIZE`` > 1), else a single
    process. ``device`` is auto, cpu or cuda; under torchrun each process takes the GPU of
    its ``LOCAL_RANK``."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    use_cuda = device == "cuda" or (device == "auto" and torch.cuda.is_available())
    if use_cuda and not torch.cuda.is_available():
        raise ValueError("train.device is cuda but no CUDA device is available")
    if use_cuda:
        torch.cuda.set_device(local_rank)
        chosen = torch.device("cuda", local_rank)
    else:
        chosen = torch.device("cpu")
    if world_size > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if use_cuda else "gloo")
    return Process(rank, world_size, local_rank, chosen)


def stop() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def any_process(process: Process, flag: bool) -> bool:
    """True when ``flag`` is true in any process (every process gets the same answer)."""
    if not process.distributed:
        return flag
    value = torch.tensor([1.0 if flag else 0.0], device=process.device)
    dist.all_reduce(value, op=dist.ReduceOp.MAX)
    return bool(value.item() > 0)


def barrier(process: Process) -> None:
    if process.distributed:
        dist.barrier()


def gather_objects(process: Process, value):
    """``value`` of every process, in rank order (every process gets the list)."""
    if not process.distributed:
        return [value]
    values = [None] * process.world_size
    dist.all_gather_object(values, value)
    return values
