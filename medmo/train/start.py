"""The model a stage starts from and the folder it ends in, shared by the supervised and GRPO stages.

A stage starts from a checkpoint folder, a hub id, or a fresh small model (:class:`SmallModel`, built once
under ``output_dir/init`` with a BPE trained on the stage's own records). Weights are loaded in float32
whatever the checkpoint's dtype: they are the optimizer's master weights, and ``mixed_precision: bf16``
runs the forward and backward passes in bf16 under autocast (as the HF Trainer does). A bf16 master copy
would lose most small updates: one AdamW step at lr 5e-6 changes only a few percent of bf16 weights.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch

from medmo.model import add_lora, build_small, freeze_for_stage, load
from medmo.model.attention import speed_up_vision
from medmo.train.recipe import Recipe, SmallModel

log = logging.getLogger(__name__)
# Which parameters train in each stage (medmo.model.freeze): mergers in align; language model and mergers
# in the grounding and instruction-tuning stages; the language model in RL.
FREEZE = {"align": "align", "grounding": "sft", "sft": "sft", "grpo": "rl"}
CORPUS_RECORDS = 20_000  # records whose texts train a fresh small model's BPE


def starting_model(recipe: Recipe, samples: Sequence[Any], *, is_main: bool = True,
                   wait: Callable[[], None] = lambda: None) -> tuple[Any, Any]:  # fmt: skip
    """``(model, processor)`` a stage trains: loaded in float32, LoRA-wrapped if asked, frozen for the stage.

    Args:
        recipe: the stage's config.
        samples: its training records (a fresh small model's BPE learns their texts).
        is_main: this process builds a fresh small model; the others wait for it.
        wait: a barrier across processes (``accelerator.wait_for_everyone``).
    """
    spec = recipe.model
    if isinstance(spec, SmallModel):
        init = Path(recipe.output_dir) / "init"
        if is_main and not (init / "config.json").is_file():
            build_small(init, size=spec.size, corpus=list(samples[:CORPUS_RECORDS]), vocab_size=spec.vocab_size,
                        tokenizer=spec.tokenizer, text=spec.text, vision=spec.vision, seed=recipe.seed)
        wait()
        spec = str(init)
    model, processor = load(spec, dtype=torch.float32, attn_implementation=recipe.attn_implementation,
                            min_pixels=recipe.min_pixels, max_pixels=recipe.max_pixels)
    if recipe.attn_implementation == "sdpa_packed":  # the CPU choice: batched vision tower too
        speed_up_vision(model)
    if recipe.lora is not None:
        lo = recipe.lora
        model = add_lora(model, r=lo.r, alpha=lo.alpha, dropout=lo.dropout, target_modules=lo.target_modules or None)
    freeze_for_stage(model, FREEZE[recipe.stage], train_vision=recipe.train_vision)
    if recipe.gradient_checkpointing:
        model.activation_checkpointing_enable(activation_checkpointing_kwargs={"use_reentrant": False})
    return model, processor


def warmup_steps(recipe: Recipe, total_steps: int) -> int:
    """Warmup length: ``optim.warmup_steps``, else ``warmup_ratio`` of the steps, never all of them.

    A warmup as long as the run would take every step at a learning rate below the target (a 1-step
    smoke run at lr 0 changes nothing), so at least the last step runs at the full rate.
    """
    o = recipe.optim
    wanted = o.warmup_steps or math.ceil(o.warmup_ratio * total_steps)
    if wanted >= total_steps and wanted > 0:
        log.warning("warmup of %d steps would cover all %d steps; using %d", wanted, total_steps, total_steps - 1)
    return max(0, min(wanted, total_steps - 1))
