"""Data parallelism for one run under ``torchrun``: joining the process group, barriers, averaging the
group losses across ranks, gathering every rank's generator state. With one process every function is
a no-op, so the trainer calls them unconditionally."""

from __future__ import annotations

import os

from torch import Tensor


def join(device_type: str) -> tuple[int, int]:
    """(rank, world size); joins the process group that ``torchrun`` describes in the environment."""
    import torch.distributed as dist

    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world == 1:
        return 0, 1
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device_type == "cuda" else "gloo")
    return dist.get_rank(), dist.get_world_size()


def barrier(world: int) -> None:
    if world > 1:
        import torch.distributed as dist

        dist.barrier()


def mean_over_ranks(losses: Tensor) -> Tensor:
    """Group losses averaged over ranks, so every rank moves α identically."""
    import torch.distributed as dist

    losses = losses.detach().clone()
    dist.all_reduce(losses)
    return losses / dist.get_world_size()


def gather_states(state: Tensor, world: int) -> list[Tensor]:
    """Every rank's counterpart-generator state, so a resumed data-parallel run redraws the same pairs."""
    if world == 1:
        return [state]
    import torch.distributed as dist

    states = [None] * world
    dist.all_gather_object(states, state)
    return states
