"""Resumable checkpoints: model (safetensors), optimizer, scheduler, RNG states and the data position.

accelerate's ``save_state`` / ``load_state`` write and read the model, optimizer, registered objects
(our LR scheduler) and every process's RNG states, including sharded DeepSpeed ZeRO-3 / FSDP states.
Beside them ``trainer_state.json`` records the optimizer step and where the data stream stands
(epoch and micro-batches consumed in it), so a resumed run replays exactly the batches an
uninterrupted run would have seen. A checkpoint is written to ``step-N.tmp`` and renamed when
complete: a run killed while saving leaves the previous checkpoint intact.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

STATE_FILE = "trainer_state.json"


@dataclass
class TrainState:
    """Progress of a run: optimizer steps done and the position of the next micro-batch."""

    step: int = 0
    epoch: int = 0
    offset: int = 0  # micro-batches of ``epoch`` already consumed by this rank
    tokens: int = 0  # input tokens seen (all ranks)
    total_steps: int = 0


def checkpoint_dir(output_dir: str | Path) -> Path:
    return Path(output_dir) / "checkpoints"


def list_checkpoints(output_dir: str | Path) -> list[Path]:
    """Complete checkpoints of a run, oldest first."""
    root = checkpoint_dir(output_dir)
    if not root.is_dir():
        return []
    done = [p for p in root.glob("step-*") if p.is_dir() and not p.name.endswith(".tmp") and (p / STATE_FILE).is_file()]
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
    if not (path / STATE_FILE).is_file():
        raise FileNotFoundError(f"resume={resume}: no checkpoint there (expected {path / STATE_FILE})")
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


def save_checkpoint(accelerator: Any, output_dir: str | Path, state: TrainState, keep: int = 2) -> Path:
    """Write a checkpoint for ``state.step`` (all ranks call this) and prune old ones; return its folder."""
    final = checkpoint_dir(output_dir) / f"step-{state.step:07d}"
    tmp = final.with_name(final.name + ".tmp")
    if accelerator.is_main_process and tmp.exists():
        shutil.rmtree(tmp)
    accelerator.wait_for_everyone()
    accelerator.save_state(str(tmp), safe_serialization=True)
    if accelerator.is_main_process:
        (tmp / STATE_FILE).write_text(json.dumps(asdict(state), indent=1))
        if final.exists():
            shutil.rmtree(final)
        tmp.rename(final)
        for old in list_checkpoints(output_dir)[: -max(1, keep)]:
            shutil.rmtree(old, ignore_errors=True)
    accelerator.wait_for_everyone()
    return final


def load_checkpoint(accelerator: Any, path: str | Path) -> TrainState:
    """Restore model, optimizer, scheduler and RNG states from ``path``; return the saved progress."""
    path = Path(path)
    accelerator.load_state(str(path))
    return TrainState(**json.loads((path / STATE_FILE).read_text()))
