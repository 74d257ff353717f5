"""``medmo eval run --shard auto``: one benchmark run spread over the processes of ``torchrun`` or
``accelerate launch``, merged at the end into the one-process results.

The launchers start N copies of the command with ``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR`` and
``MASTER_PORT`` set. Each copy evaluates shard ``RANK/WORLD_SIZE`` (:func:`medmo.eval.runner.shard_of`) with the
model on its own GPU (:func:`medmo.model.flags.default_device`); when all are done, the first process merges
the shard files with :func:`medmo.eval.merge.merge`, so corpus metrics are computed once over the whole set.
The processes meet over a gloo process group made at start (a wrong rendezvous fails before any model loads);
it carries only the shard files' paths, so it works the same on CPUs and GPUs.
"""

from __future__ import annotations

import os
from datetime import timedelta
from typing import Any

from medmo.model.flags import launch_slot

# Shards of a large benchmark can finish hours apart; the first process waits for the last this long.
WAIT = timedelta(hours=72)


def auto_shard() -> tuple[int, int] | None:
    """``(rank, world size)`` under a launcher with several processes, else ``None`` (no sharding).

    Raises:
        ValueError: several processes but no rendezvous address (the launcher's ``MASTER_ADDR`` / ``MASTER_PORT``).
    """
    rank, world, _ = launch_slot()
    if world <= 1:
        return None
    if not (os.environ.get("MASTER_ADDR") and os.environ.get("MASTER_PORT")):
        raise ValueError(f"--shard auto: WORLD_SIZE={world} but MASTER_ADDR / MASTER_PORT are not set; start the "
                         "processes with torchrun or accelerate launch, or give each one --shard I/N and run "
                         "`medmo eval merge` on the shard files")  # fmt: skip
    return rank, world


def join() -> None:
    """Meet the other processes (call once, before evaluating)."""
    import torch.distributed as dist

    if not dist.is_initialized():
        dist.init_process_group("gloo", timeout=WAIT)


def gather_paths(path: str) -> list[str] | None:
    """Every process's shard results path, in rank order, on the first process (``None`` on the others).
    Waits until every process has finished its shard."""
    import torch.distributed as dist

    paths: list[Any] = [None] * dist.get_world_size()
    dist.all_gather_object(paths, path)
    return [str(p) for p in paths] if dist.get_rank() == 0 else None


def leave() -> None:
    import torch.distributed as dist

    if dist.is_initialized():
        dist.destroy_process_group()
