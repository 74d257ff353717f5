"""The accelerator of a training process, and what sharded (FSDP2 / ZeRO-3) runs need from our loop.

``accelerate launch --config_file $(medmo recipes path accelerate/fsdp2) ...`` starts the processes and
passes the config to each through ``ACCELERATE_*`` / ``FSDP_*`` variables; :func:`make_accelerator` turns
them into the run's ``Accelerator``. One gap is filled here: accelerate (1.16, ``state.py``
``AcceleratorState.__init__``) switches to FSDP only on accelerator devices, so on CPU (``ACCELERATE_USE_CPU``,
gloo) the FSDP config silently trains with DDP. torch's FSDP2 (``fully_shard``) runs on CPU over gloo, so on
CPU the state is switched to FSDP as accelerate does on GPUs; the same sharded forward, checkpoint and
gather code then runs on a laptop and in CI as on GPUs. DeepSpeed ZeRO-3 runs on CPU too, through
DeepSpeed's CPU accelerator over gloo (:func:`make_accelerator` names the backend accelerate cannot find).
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

from medmo import recipes

log = logging.getLogger(__name__)
DEEPSPEED_CONFIG_ENV = "ACCELERATE_DEEPSPEED_CONFIG_FILE"  # set by `accelerate launch` from deepspeed_config_file


def resolve_precision(mixed_precision: str) -> str:
    """The precision a recipe's ``mixed_precision`` means on this machine (``auto`` resolved).

    ``auto`` is bf16 autocast where bf16 matrix products run natively: a CUDA GPU that supports bf16, or a
    CPU with AVX512-BF16 or AMX tiles, where oneDNN's bf16 kernels make a nano step ~1.13x faster than fp32
    (``bench/step_profile.py``: 289 vs 328 ms on a 2-core AMD EPYC with AVX512-BF16). On other CPUs bf16 is
    emulated and slower than fp32, so ``auto`` keeps fp32 there.
    """
    if mixed_precision != "auto":
        return mixed_precision
    import torch

    if torch.cuda.is_available():
        return "bf16" if torch.cuda.is_bf16_supported() else "no"
    native = [getattr(torch.cpu, name, lambda: False) for name in ("_is_avx512_bf16_supported", "_is_amx_tile_supported")]
    return "bf16" if any(check() for check in native) else "no"


def make_accelerator(*, mixed_precision: str, grad_accum: int, max_grad_norm: float = 0.0, micro_batch: int = 1,
                     kwargs_handlers: list | None = None) -> Any:  # fmt: skip
    """The run's ``Accelerator``, with FSDP on CPU when the launch config asks for it (see module doc).

    Under DeepSpeed the recipe's ``grad_accum``, ``max_grad_norm`` and micro-batch size fill the JSON's
    ``"auto"`` values (the engine accumulates and clips itself; without this accelerate would reset
    ``grad_accum`` to 1). The micro-batch is ``"auto"`` in the shipped JSON because the GRPO stage's
    (``transformers.Trainer``) is prompts x generations and must match it; our supervised loop hands no
    DataLoader to ``prepare``, so accelerate cannot fill it there.
    """
    from accelerate import Accelerator
    from accelerate.utils import InitProcessGroupKwargs

    handlers = list(kwargs_handlers or [])
    if os.environ.get("ACCELERATE_USE_DEEPSPEED", "false").lower() == "true" and resolve_deepspeed_config():
        os.environ["ACCELERATE_GRADIENT_ACCUMULATION_STEPS"] = str(grad_accum)
        os.environ["ACCELERATE_GRADIENT_CLIPPING"] = str(float(max_grad_norm))
        if not _has_accelerator():  # DeepSpeed's CPU accelerator talks gloo; accelerate finds no backend on CPU
            handlers.append(InitProcessGroupKwargs(backend="gloo"))
    accelerator = Accelerator(mixed_precision=resolve_precision(mixed_precision), gradient_accumulation_steps=grad_accum,
                              kwargs_handlers=handlers)
    plugin = getattr(accelerator.state, "deepspeed_plugin", None)
    if plugin is not None and plugin.is_auto("train_micro_batch_size_per_gpu"):
        plugin.deepspeed_config["train_micro_batch_size_per_gpu"] = micro_batch
    if fsdp_requested() and accelerator.device.type == "cpu":
        _switch_to_fsdp(accelerator)
    return accelerator


def resolve_deepspeed_config() -> Path | None:
    """Point accelerate at the DeepSpeed JSON the launch config names, from any working directory.

    The shipped ``accelerate/zero3`` config names its DeepSpeed settings by recipe name
    (``deepspeed_config_file: deepspeed/zero3``): the one copy of them, ``medmo/recipes/deepspeed/zero3.json``,
    wherever the package is installed. accelerate hands the name to each process as is
    (``ACCELERATE_DEEPSPEED_CONFIG_FILE``) and opens it relative to the working directory, so each process
    resolves it here first. A path to an existing file is kept as it is.

    Raises:
        FileNotFoundError: the name is neither a file nor a shipped recipe (the message lists close names).
    """
    given = os.environ.get(DEEPSPEED_CONFIG_ENV, "")
    if not given or given.lower() == "none" or Path(given).is_file():
        return Path(given) if given and given.lower() != "none" else None
    path = recipes.path(given).resolve()
    os.environ[DEEPSPEED_CONFIG_ENV] = str(path)
    return path


def _has_accelerator() -> bool:
    import torch

    return torch.accelerator.current_accelerator() is not None


def fsdp_requested() -> bool:
    """Whether the launch config asks for FSDP (``accelerate launch`` sets ``ACCELERATE_USE_FSDP``)."""
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
    return state_layout(accelerator) in ("fsdp", "deepspeed-zero3")


def state_layout(accelerator: Any) -> str:
    """How ``accelerator.save_state`` lays out this run's training state, as checkpoints record it.

    ``"fsdp"``: torch distributed-checkpoint shards (``pytorch_model_fsdp_0/*.distcp``), which load at any
    process count; ``"deepspeed-zeroN"``: DeepSpeed's per-rank partitions (``pytorch_model/zero_pp_rank_*``),
    which DeepSpeed loads only at the process count that wrote them; ``"full"``: whole-model files (one
    process, DDP), loadable at any process count. The three cannot be read by each other's loaders.
    """
    from accelerate.utils import DistributedType

    if accelerator.distributed_type == DistributedType.FSDP:
        return "fsdp"
    if accelerator.distributed_type == DistributedType.DEEPSPEED:
        return f"deepspeed-zero{int(accelerator.state.deepspeed_plugin.zero_stage)}"
    return "full"


def full_state_dict(accelerator: Any, model: Any) -> dict[str, Any] | None:
    """The whole model's weights gathered from FSDP / ZeRO-3 shards (every process must call this), under the
    model's own names, each tied weight once (as ``save_pretrained`` writes a single model); ``None`` on the
    processes that receive nothing (ZeRO-3 gathers to the main process only)."""
    weights = accelerator.get_state_dict(model)
    if weights is None:
        return None
    seen: dict[int, str] = {}
    for name, param in accelerator.unwrap_model(model).named_parameters(remove_duplicate=False):
        if id(param) in seen and name in weights and seen[id(param)] in weights:
            weights.pop(name)  # a tie (lm_head = embed_tokens): gathered as two tensors, saved as one
        seen.setdefault(id(param), name)
    return weights
