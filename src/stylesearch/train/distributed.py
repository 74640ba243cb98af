"""Data-parallel plumbing for `torchrun`: process group from the environment, sharding, gathers with gradients.

`torchrun --nproc_per_node N -m stylesearch train ...` sets RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR
and MASTER_PORT; without them everything here is a no-op and training is the single-process loop.

The contrastive loss needs every rank's embeddings: each rank splits off its share of the global batch
(`shard`), embeds it, and `gather_with_grad` rebuilds the global matrices. The gather keeps each rank's
own rows in the autograd graph and sums the gradient that every rank's (identical) loss sends to them,
so after DDP averages the parameter gradients they equal the single-process gradient of the same batch.
"""

from __future__ import annotations

import datetime
import os
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class Dist:
    """Where this process sits: rank among `world` processes, its device, and whether it made the group."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")
    owns_group: bool = False  # True when `setup` created the process group (and `cleanup` should end it)

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def launched_by_torchrun() -> bool:
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def setup(timeout_minutes: float = 30) -> Dist:
    """Join the process group torchrun describes (gloo on CPU, nccl on GPU), or run alone."""
    cuda = torch.cuda.is_available()
    if not launched_by_torchrun() and not dist.is_initialized():
        return Dist(device=torch.device("cuda" if cuda else "cpu"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    device = torch.device("cuda", local_rank) if cuda else torch.device("cpu")
    if cuda:
        torch.cuda.set_device(device)  # one GPU per process, chosen by torchrun's LOCAL_RANK
    owns = not dist.is_initialized()
    if owns:
        dist.init_process_group("nccl" if cuda else "gloo", timeout=datetime.timedelta(minutes=timeout_minutes))
    return Dist(rank=dist.get_rank(), world=dist.get_world_size(), local_rank=local_rank, device=device,
                owns_group=owns)


def cleanup(where: Dist) -> None:
    if where.owns_group and dist.is_initialized():
        dist.destroy_process_group()


def is_main() -> bool:
    """Rank 0, or the only process: the one that writes checkpoints, history and logs."""
    return not dist.is_initialized() or dist.get_rank() == 0


def barrier() -> None:
    if dist.is_initialized():
        dist.barrier()


def shard_sizes(n: int, world: int) -> list[int]:
    """Rows of an n-row global batch per rank: contiguous slices, the first n % world one row longer."""
    return [n // world + (r < n % world) for r in range(world)]


def shard(batch: list[int], rank: int, world: int) -> list[int]:
    """This rank's contiguous slice of a global batch; concatenating every rank's slice gives the batch back."""
    sizes = shard_sizes(len(batch), world)
    start = sum(sizes[:rank])
    return batch[start:start + sizes[rank]]


class _GatherRows(torch.autograd.Function):
    """all_gather along dim 0 whose backward sums every rank's gradient for this rank's rows (a reduce-scatter)."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, sizes: list[int]) -> torch.Tensor:  # type: ignore[override]
        rank, rows = dist.get_rank(), max(sizes)
        padded = torch.cat([x, x.new_zeros((rows - len(x), *x.shape[1:]))]).contiguous()
        parts = [torch.empty_like(padded) for _ in sizes]
        dist.all_gather(parts, padded)
        # Our own rows stay the tensor autograd knows, not a copy that came back over the wire.
        parts[rank] = padded
        ctx.rank, ctx.sizes, ctx.rows = rank, sizes, rows
        return torch.cat([part[:n] for part, n in zip(parts, sizes, strict=True)])

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor, None]:  # type: ignore[override]
        grad = grad.contiguous().clone()
        dist.all_reduce(grad)  # each rank's loss reaches our rows: sum what they all send
        start = sum(ctx.sizes[:ctx.rank])
        return grad[start:start + ctx.sizes[ctx.rank]], None


def gather_with_grad(x: torch.Tensor, sizes: list[int]) -> torch.Tensor:
    """Every rank's rows of `x` in rank order (rank r holds `sizes[r]` rows), differentiable w.r.t. our rows.

    Like open_clip's `gather_features(..., gather_with_grad=True)`, but for uneven shards.
    """
    if not dist.is_initialized() or dist.get_world_size() == 1:
        return x
    return _GatherRows.apply(x, list(sizes))


def gather(x: torch.Tensor, sizes: list[int]) -> torch.Tensor:
    """Every rank's rows of `x` in rank order, without gradients (group ids, labels)."""
    if not dist.is_initialized() or dist.get_world_size() == 1:
        return x
    with torch.no_grad():
        return _GatherRows.apply(x, list(sizes))


def broadcast(value: Any, src: int = 0) -> Any:
    """Rank `src`'s value on every rank (a picklable object: metrics, a stop decision)."""
    if not dist.is_initialized() or dist.get_world_size() == 1:
        return value
    box = [value]
    dist.broadcast_object_list(box, src=src)
    return box[0]
