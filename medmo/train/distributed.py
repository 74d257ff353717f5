"""The accelerator of a training process, and what sharded (FSDP2 / ZeRO-3) runs need from our loop.

``accelerate launch --config_file $(medmo recipes path accelerate/fsdp2) ...`` starts the processes and
passes the config to each through ``ACCELERATE_*`` / ``FSDP_*`` variables; :func:`make_accelerator` turns
them into the run's ``Accelerator``. One gap is filled here: accelerate (1.16, ``state.py``
``AcceleratorState.__init__``) switches to FSDP only on accelerator devices, so on CPU (``ACCELERATE_USE_CPU``,
gloo) the FSDP config silently trains with DDP. torch's FSDP2 (``fully_shard``) runs on CPU over gloo, so on
CPU the state is switched to FSDP as accelerate does on GPUs; the same sharded forward, checkpoint and
gather code then runs on a laptop and in CI as on GPUs.
"""

from __future__ import annotations

import logging
import os
from typing import Any

log = logging.getLogger(__name__)


def make_accelerator(*, mixed_precision: str, grad_accum: int, kwargs_handlers: list | None = None) -> Any:
    """The run's ``Accelerator``, with FSDP on CPU when the launch config asks for it (see module doc)."""
    from accelerate import Accelerator

    accelerator = Accelerator(mixed_precision=mixed_precision, gradient_accumulation_steps=grad_accum,
                              kwargs_handlers=kwargs_handlers or [])
    if _fsdp_requested() and accelerator.device.type == "cpu":
        _switch_to_fsdp(accelerator)
    return accelerator


def _fsdp_requested() -> bool:
    return os.environ.get("ACCELERATE_USE_FSDP", "false").lower() == "true"


def _switch_to_fsdp(accelerator: Any) -> None:
    """Do what accelerate's ``AcceleratorState.__init__`` does for FSDP on GPUs: mark both shared states FSDP
    and attach the plugin built from the launch config.

    Raises:
        RuntimeError: the installed accelerate keeps its state differently; the message says what to do.
    """
    from accelerate.state import AcceleratorState, PartialState
    from accelerate.utils import DistributedType, FullyShardedDataParallelPlugin

    shared = getattr(PartialState, "_shared_state", None)
    if not hasattr(shared, "__setitem__") or "distributed_type" not in shared or not hasattr(accelerator, "is_fsdp2"):
        raise RuntimeError("this accelerate version keeps its distributed state differently from accelerate 1.16, "
                           "so FSDP cannot be switched on for CPU processes; run FSDP on GPUs, or use the DDP config "
                           "(accelerate/ddp) on CPU")
    if accelerator.distributed_type != DistributedType.MULTI_CPU:
        return
    state = AcceleratorState()
    state.fsdp_plugin = FullyShardedDataParallelPlugin()
    state.distributed_type = DistributedType.FSDP
    shared["distributed_type"] = DistributedType.FSDP  # AcceleratorState() re-reads it from PartialState
    if accelerator.distributed_type != DistributedType.FSDP:
        raise RuntimeError("switching accelerate to FSDP on CPU did not take; this accelerate version is not "
                           "supported for FSDP on CPU (use accelerate/ddp there)")
    log.info("FSDP%s on CPU over gloo, %d processes", state.fsdp_plugin.fsdp_version, accelerator.num_processes)


def is_sharded(accelerator: Any) -> bool:
    """Whether parameters are sharded over processes (FSDP, or DeepSpeed ZeRO stage 3): every process must
    then run every module in the same order, since each module's forward gathers its shards collectively."""
    from accelerate.utils import DistributedType

    if accelerator.distributed_type == DistributedType.FSDP:
        return True
    if accelerator.distributed_type == DistributedType.DEEPSPEED:
        plugin = accelerator.state.deepspeed_plugin
        return int(plugin.zero_stage) == 3
    return False
