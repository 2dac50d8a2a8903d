"""Several processes under ``torchrun --nproc_per_node N``: DistributedDataParallel over gloo or nccl.

The entry point is unchanged: :func:`setup` reads torchrun's environment (RANK, WORLD_SIZE,
LOCAL_RANK), starts the process group (nccl on GPUs, gloo on CPU) and picks the device. Every
rank trains on its shard of the in-memory index; rank 0 alone writes the record.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class Context:
    """Where this process sits: its rank among ``world`` processes and its device."""

    rank: int = 0
    world: int = 1
    device: torch.device = torch.device("cpu")
    backend: str | None = None

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world > 1


def setup(device: str | torch.device | None = None) -> Context:
    """The process's context; under torchrun, joins (once) the process group of WORLD_SIZE processes."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if device is None:
        device = "cuda" if torch.cuda.is_available() else "cpu"
    device = torch.device(device)
    if world <= 1:
        return Context(device=device)
    rank, local = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    if device.type == "cuda":
        device = torch.device("cuda", local)
        torch.cuda.set_device(device)
    backend = "nccl" if device.type == "cuda" else "gloo"
    if not dist.is_initialized():
        dist.init_process_group(backend=backend)
    return Context(rank=rank, world=world, device=device, backend=backend)


def barrier(ctx: Context) -> None:
    if ctx.distributed:
        dist.barrier()


def all_sum(ctx: Context, tensor: torch.Tensor) -> torch.Tensor:
    """Sum a tensor over ranks (in place; returned for convenience)."""
    if ctx.distributed:
        dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
    return tensor


def gather_objects(ctx: Context, obj: Any) -> list[Any]:
    """Every rank's ``obj``, in rank order (a one-element list without distribution)."""
    if not ctx.distributed:
        return [obj]
    out: list[Any] = [None] * ctx.world
    dist.all_gather_object(out, obj)
    return out


def broadcast_object(ctx: Context, obj: Any) -> Any:
    """Rank 0's ``obj`` on every rank."""
    if not ctx.distributed:
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def shard(indices: torch.Tensor, ctx: Context) -> torch.Tensor:
    """This rank's share of ``indices``, as DistributedSampler: pad by wrapping to a multiple of world, take every world-th."""
    if not ctx.distributed:
        return indices
    total = -(-len(indices) // ctx.world) * ctx.world
    padded = torch.cat([indices, indices[: total - len(indices)]]) if total > len(indices) else indices
    return padded[ctx.rank :: ctx.world]
