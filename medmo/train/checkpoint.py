"""Resumable checkpoints: a standard model folder plus the training state needed to continue exactly.

``checkpoints/step-N/`` is a Qwen3-VL folder like the final output (:func:`medmo.model.layout.save`,
weights in the recipe's ``save_dtype``), so any checkpoint can be evaluated, served or loaded by other
tools. Its ``training_state/`` holds what resuming needs: accelerate's ``save_state`` (the float32 master
weights, optimizer, registered objects such as our LR scheduler, and every process's RNG states,
including sharded DeepSpeed ZeRO-3 / FSDP states) and ``trainer_state.json`` with the optimizer step and
where the data stream stands (epoch and micro-batches consumed in it), so a resumed run replays exactly
the batches an uninterrupted run would have seen. A checkpoint is written to ``step-N.tmp`` and renamed
when complete: a run killed while saving leaves the previous checkpoint intact.
"""

from __future__ import annotations

import json
import logging
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from medmo.model.layout import save
from medmo.train.distributed import full_state_dict, state_layout

log = logging.getLogger(__name__)

STATE_FILE = "trainer_state.json"
STATE_DIR = "training_state"


@dataclass
class TrainState:
    """Progress of a run: optimizer steps done and the position of the next micro-batch."""

    step: int = 0
    epoch: int = 0
    offset: int = 0  # micro-batches of ``epoch`` already consumed by this rank
    tokens: int = 0  # input tokens seen (all ranks)
    total_steps: int = 0
    world_size: int = 1  # processes that consumed the stream (``offset`` is per process)
    step_batches: int = 0  # micro-batches per optimizer step, all processes (0: not recorded)
    layout: str = ""  # how training_state/ was written (distributed.state_layout; "": not recorded)


def checkpoint_dir(output_dir: str | Path) -> Path:
    return Path(output_dir) / "checkpoints"


def list_checkpoints(output_dir: str | Path) -> list[Path]:
    """Complete checkpoints of a run, oldest first."""
    root = checkpoint_dir(output_dir)
    if not root.is_dir():
        return []
    done = [p for p in root.glob("step-*")
            if p.is_dir() and not p.name.endswith(".tmp") and (p / STATE_DIR / STATE_FILE).is_file()]
    return sorted(done, key=lambda p: int(p.name.split("-")[1]))


def latest_checkpoint(output_dir: str | Path) -> Path | None:
    found = list_checkpoints(output_dir)
    return found[-1] if found else None


def resolve_resume(resume: bool | str, output_dir: str | Path) -> Path | None:
    """The checkpoint a recipe's ``resume`` points to: ``true`` = newest in ``output_dir`` (none: fresh start)."""
    if resume is False or resume in ("", "false", "no"):
        return None
    if resume is True or resume in ("true", "latest", "yes"):
        return latest_checkpoint(output_dir)
    path = Path(str(resume))
    if not (path / STATE_DIR / STATE_FILE).is_file():
        raise FileNotFoundError(f"resume={resume}: no checkpoint there (expected {path / STATE_DIR / STATE_FILE})")
    return path


def set_aside_stale(output_dir: str | Path) -> Path | None:
    """Move checkpoints of an earlier run out of the way when a run starts afresh in the same folder.

    Otherwise a later ``--resume`` could pick the old run's newest step. Nothing is deleted: the folder
    is renamed ``checkpoints.stale-N``. Returns the new name, or ``None`` when there was nothing.
    """
    root = checkpoint_dir(output_dir)
    if not list_checkpoints(output_dir):
        return None
    n = 1
    while root.with_name(f"checkpoints.stale-{n}").exists():
        n += 1
    target = root.with_name(f"checkpoints.stale-{n}")
    root.rename(target)
    return target


def save_checkpoint(accelerator: Any, output_dir: str | Path, state: TrainState, *, model: Any, processor: Any,
                    keep: int = 2, dtype: str = "bfloat16") -> Path:  # fmt: skip
    """Write a checkpoint for ``state.step`` (all ranks call this) and prune old ones; return its folder.

    Args:
        accelerator: the run's accelerator (gathers sharded weights, writes every rank's state).
        output_dir: the run folder; checkpoints go under ``checkpoints/``.
        state: the progress to record.
        model / processor: written as a standard model folder in ``dtype``.
        keep: how many checkpoints to keep (oldest pruned first).
    """
    final = checkpoint_dir(output_dir) / f"step-{state.step:07d}"
    tmp = final.with_name(final.name + ".tmp")
    if accelerator.is_main_process and tmp.exists():
        shutil.rmtree(tmp)
    accelerator.wait_for_everyone()
    accelerator.save_state(str(tmp / STATE_DIR), safe_serialization=True)
    weights = full_state_dict(accelerator, model)
    if accelerator.is_main_process:
        save(accelerator.unwrap_model(model), processor, tmp, dtype=dtype, state_dict=weights)
        (tmp / STATE_DIR / STATE_FILE).write_text(json.dumps(asdict(state), indent=1))
        if final.exists():
            shutil.rmtree(final)
        tmp.rename(final)
        for old in list_checkpoints(output_dir)[: -max(1, keep)]:
            shutil.rmtree(old, ignore_errors=True)
    accelerator.wait_for_everyone()
    return final


def load_checkpoint(accelerator: Any, path: str | Path, *, step_batches: int = 0) -> TrainState:
    """Restore model, optimizer, scheduler and RNG states from ``path``; return the saved progress.

    A checkpoint saved by N processes resumes on M: sharded FSDP / DCP states are resharded on load, and
    the data position (per process) is rescaled, so the run goes on with the micro-batch an uninterrupted
    run would take next, provided ``step_batches`` (processes x ``grad_accum``) is unchanged.

    Raises:
        ValueError: the new process count cannot continue at the saved data position, or this launch cannot
            read the saved training state (:func:`check_layout`).
    """
    path = Path(path)
    state = TrainState(**json.loads((path / STATE_DIR / STATE_FILE).read_text()))
    check_layout(state, state_layout(accelerator), accelerator.num_processes, where=path)
    accelerator.load_state(str(path / STATE_DIR))
    # load_state also restores accelerate's micro-batch counter, whose remainder modulo grad_accum decides which
    # micro-batch ends an accumulation window. Counted under the saved run's processes and grad_accum, it can
    # fall mid-window in this run (a 2-process run saved at step 3 and resumed on 1 process with grad_accum 2
    # ended every window one micro-batch off); our windows always start whole, so the count starts at 0.
    accelerator.step = 0
    return rescale(state, accelerator.num_processes, step_batches, where=path)


def check_layout(state: TrainState, layout: str, world_size: int, where: Any = "checkpoint") -> None:
    """Refuse, before anything is loaded, a resume that the saved training state's loader cannot serve.

    FSDP shards, DeepSpeed partitions and whole-model files are read only by their own loaders, and DeepSpeed
    re-partitions no ZeRO state over another process count (deepspeed 0.19 raises deep inside
    ``load_checkpoint`` after the model and data are set up). Checkpoints from before ``layout`` was recorded
    are not checked.

    Raises:
        ValueError: the message names the checkpoint, how it was saved, and the two ways on.
    """
    if not state.layout:
        return
    start_over = (f"or start a new run from its weights with model={where} (a standard Qwen3-VL folder; the "
                  "optimizer and learning-rate schedule start afresh)")  # fmt: skip
    if state.layout != layout:
        raise ValueError(f"{where} holds a {state.layout} training state and this run's is {layout}: resume it under "
                         f"{_launch_for(state.layout)} as it was saved, {start_over}")
    if layout.startswith("deepspeed") and world_size != state.world_size:
        raise ValueError(f"{where} was saved by DeepSpeed on {state.world_size} processes and this run has "
                         f"{world_size}: DeepSpeed loads ZeRO partitions only at the process count that wrote them; "
                         f"resume with --num_processes {state.world_size} in all, {start_over}")


def rescale(state: TrainState, world_size: int, step_batches: int = 0, where: Any = "checkpoint") -> TrainState:
    """``state`` as seen by ``world_size`` processes taking ``step_batches`` micro-batches per step in all."""
    if step_batches and state.step_batches and step_batches != state.step_batches:
        log.warning("%s was trained with %d micro-batches per step and resumes with %d; the loss curve will not "
                    "continue exactly (keep processes x grad_accum the same for that)", where, state.step_batches,
                    step_batches)  # fmt: skip
    if world_size != state.world_size:
        consumed = state.offset * state.world_size
        if consumed % world_size:
            raise ValueError(f"{where} stands {consumed} micro-batches into epoch {state.epoch}, which {world_size} "
                             f"processes cannot share evenly; resume with {state.world_size} processes")
        state.offset, state.world_size = consumed // world_size, world_size
    state.step_batches = step_batches or state.step_batches
    return state


def _launch_for(layout: str) -> str:
    if layout == "fsdp":
        return "an FSDP launch config (accelerate/fsdp2)"
    if layout.startswith("deepspeed-zero"):
        return f"DeepSpeed ZeRO stage {layout.removeprefix('deepspeed-zero')} (accelerate/zero3 for stage 3)"
    return "one process or DDP (accelerate/ddp)"
