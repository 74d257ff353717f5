"""Stages ``align`` and ``sft``: supervised training of Qwen3-VL on MedMO records, loop in plain sight.

One PyTorch loop (torchtune style, ``recipes/full_finetune_single_device.py``) run through accelerate,
which owns devices, mixed precision, DDP / DeepSpeed / FSDP wrapping and gradient synchronisation:

1. build or load the model, freeze it for the stage (:func:`medmo.model.freeze_for_stage`);
2. AdamW over per-module parameter groups (:func:`medmo.model.param_groups`), warmup + cosine;
3. micro-batches from a deterministic per-epoch plan (:func:`medmo.train.packing.plan_batches`),
   packed or padded, sharded over processes;
4. loss on assistant tokens only, normalised by the number of target tokens in the whole
   accumulation window across processes (so packing, padding and accumulation give the same
   token-mean loss), clipping, checkpoints, eval loss, logs.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from medmo.model import param_groups, save
from medmo.train.checkpoint import TrainState, load_checkpoint, resolve_resume, save_checkpoint, set_aside_stale
from medmo.train.collate import IGNORE_INDEX, Encoded, PaddingCollator, SampleEncoder, rope_index_of, select_records
from medmo.train.distributed import full_state_dict, is_sharded, make_accelerator, state_layout
from medmo.train.logging import RunLogger
from medmo.train.packing import PackingCollator, plan_batches
from medmo.train.recipe import SUPERVISED_STAGES, SupervisedConfig, dump_recipe
from medmo.train.start import starting_model, warmup_steps

log = logging.getLogger(__name__)
NON_MODEL_KEYS = ("labels", "seq_ids", "filler_tokens")


# ------------------------------------------------------------------------------------------- loss


def token_losses(model: Any, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-target-token cross entropy and each token's sample id.

    Logits are computed only where a next-token label exists (``logits_to_keep`` as a boolean mask),
    which spares the vocabulary projection for prompt and image positions.
    """
    labels = batch["labels"]
    shifted = F.pad(labels[:, 1:], (0, 1), value=IGNORE_INDEX)
    keep = shifted != IGNORE_INDEX
    inputs = {k: v for k, v in batch.items() if k not in NON_MODEL_KEYS}
    logits = model(**inputs, use_cache=False, logits_to_keep=keep).logits
    losses = F.cross_entropy(logits.float().reshape(-1, logits.shape[-1]), shifted[keep], reduction="none")
    return losses, batch["seq_ids"][keep]


def sample_losses(model: Any, batch: dict[str, torch.Tensor], num_samples: int) -> torch.Tensor:
    """Mean target-token loss of each sample in a (padded or packed) batch, by ``seq_ids``."""
    losses, seq = token_losses(model, batch)
    total = torch.zeros(num_samples, dtype=losses.dtype).index_add_(0, seq, losses)
    count = torch.zeros(num_samples, dtype=losses.dtype).index_add_(0, seq, torch.ones_like(losses))
    return total / count.clamp(min=1)


# ------------------------------------------------------------------------------------------- optim


def make_optimizer(model: Any, recipe: SupervisedConfig, total_steps: int) -> tuple[Any, Any]:
    """AdamW over per-module groups and the recipe's warmup + decay schedule (transformers' schedulers)."""
    from transformers import get_scheduler

    o = recipe.optim
    groups = param_groups(model, lr_vision=o.lr_vision, lr_merger=o.lr_merger or o.lr, lr_llm=o.lr,
                          weight_decay=o.weight_decay)
    if not groups:
        raise ValueError(f"stage {recipe.stage!r} leaves no trainable parameter in {recipe.model}")
    # One fused kernel per update, on CPU too: for the nano model (4.4 M parameters in 91 tensors, 2-core
    # EPYC, medians of 30 steps) 3.6 ms against 8.8 ms for the per-parameter loop and 13.4 ms for the
    # multi-tensor (foreach) path, which only pays off on GPUs. Devices without a fused AdamW get the latter.
    try:
        optimizer = torch.optim.AdamW(groups, betas=tuple(o.betas), eps=o.eps, fused=True)
    except RuntimeError:
        optimizer = torch.optim.AdamW(groups, betas=tuple(o.betas), eps=o.eps, foreach=True)
    scheduler = get_scheduler(o.scheduler, optimizer, num_warmup_steps=warmup_steps(recipe, total_steps),
                              num_training_steps=total_steps)
    return optimizer, scheduler


# -------------------------------------------------------------------------------------------- data


class PlannedBatches(torch.utils.data.Dataset):
    """Micro-batch ``i`` of a plan: encode its samples (images, tokens, rope) and collate them.

    ``filler`` (sharded runs): added to a micro-batch that has no image, so the vision tower runs on every
    process (:meth:`~medmo.train.collate.SampleEncoder.filler`); its tokens are reported as ``filler_tokens``.
    """

    def __init__(self, plan: list, samples: Sequence[Any], encoder: SampleEncoder, collate: Callable, packing: bool,
                 filler: Encoded | None = None):  # fmt: skip
        self.plan, self.samples, self.encoder, self.collate, self.packing = plan, samples, encoder, collate, packing
        self.filler = filler

    def __len__(self) -> int:
        return len(self.plan)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        rows = [[it for it in (self._encode(j) for j in row) if it is not None] for row in self.plan[i]]
        rows = [row for row in rows if row]
        if not rows:
            raise ValueError(f"every sample of micro-batch {i} failed to load; see the warnings above")
        extra = 0
        if self.filler is not None and not any(it.pixel_values is not None for row in rows for it in row):
            min(rows, key=lambda row: sum(len(it) for it in row)).append(self.filler)
            extra = len(self.filler)
        batch = self.collate(rows) if self.packing else self.collate([it for row in rows for it in row])
        batch["filler_tokens"] = torch.tensor(extra)
        return batch

    def _encode(self, j: int) -> Any:
        """One sample's tensors, or ``None`` (with a warning) if its image cannot be read: a bad file
        costs that sample, not the run."""
        try:
            return self.encoder(self.samples[j])
        except (ValueError, OSError) as e:
            log.warning("skipping sample %s: %s", getattr(self.samples[j], "id", j), e)
            return None


class Batches:
    """Micro-batches for one process: the epoch plans, sharded by rank, resumable at (epoch, offset).

    ``accum``: micro-batches per process per optimizer step; each epoch keeps whole steps only.
    """

    def __init__(self, samples: Sequence[Any], encoder: SampleEncoder, recipe: SupervisedConfig, model: Any,
                 accelerator: Any, accum: int = 1):  # fmt: skip
        self.encoder, self.recipe = encoder, recipe
        self.samples, self.lengths, empty = [], [], 0
        for s in samples:
            try:
                n = encoder.trainable_length(s)
                if n is None:
                    empty += 1
                    continue
                self.lengths.append(n)
                self.samples.append(s)
            except (ValueError, OSError) as e:  # unreadable image: drop the record, keep the run
                log.warning("skipping sample %s: %s", s.id, e)
        if empty:
            log.warning("%d of %d samples keep no answer token within max_tokens=%d and are left out; "
                        "raise max_tokens to train on them", empty, len(samples), recipe.max_tokens)
        if not self.samples:
            raise ValueError(f"no sample of {len(samples)} can be trained on: {empty} have no answer token "
                             f"within max_tokens={recipe.max_tokens} (raise it) and the others failed to load")
        self.rank, self.world, self.accum = accelerator.process_index, accelerator.num_processes, accum
        self.filler = encoder.filler() if is_sharded(accelerator) else None
        pad = encoder.processor.tokenizer.pad_token_id
        if recipe.packing:
            attn = getattr(model.config, "_attn_implementation", "sdpa")
            self.collate = PackingCollator(pad, attn_implementation=attn)
        else:
            self.collate = PaddingCollator(pad)

    def plan(self, epoch: int) -> list:
        r = self.recipe
        plan = plan_batches(self.lengths, batch_size=r.batch_size, max_tokens=r.max_tokens, packing=r.packing,
                            seed=r.seed, epoch=epoch)
        # whole optimizer steps only: every step sees one global batch of one epoch, so N processes
        # accumulating k micro-batches each replay exactly one process accumulating N*k (resumes too)
        window = self.world * self.accum
        mine = plan[: len(plan) // window * window][self.rank :: self.world]
        if not mine:
            raise ValueError(f"{len(self.samples)} samples make {len(plan)} micro-batches, fewer than one step's "
                             f"{window} ({self.world} processes x grad_accum {self.accum}); lower batch_size / "
                             "max_tokens or add data")
        return mine

    def loader(self, plan: list) -> torch.utils.data.DataLoader:
        ds = PlannedBatches(plan, self.samples, self.encoder, self.collate, self.recipe.packing, self.filler)
        return torch.utils.data.DataLoader(ds, batch_size=None, shuffle=False,
                                           num_workers=self.recipe.data.num_workers)

    def stream(self, epoch: int, offset: int) -> Iterator[tuple[int, int, dict[str, torch.Tensor]]]:
        """Yield ``(epoch, micro-batches consumed in it, batch)`` forever, starting after ``offset``."""
        while True:
            for k, batch in enumerate(self.loader(self.plan(epoch)[offset:]), start=offset + 1):
                yield epoch, k, batch
            epoch, offset = epoch + 1, 0


# -------------------------------------------------------------------------------------------- loop


def evaluate(model: Any, batches: Batches, accelerator: Any) -> dict[str, float]:
    """Token-mean loss over the validation records (all processes)."""
    model.eval()
    total = torch.zeros(2, device=accelerator.device)
    with torch.no_grad():
        for batch in batches.loader(batches.plan(0)):
            with accelerator.autocast():
                losses, _ = token_losses(model, _to(batch, accelerator.device))
            total += torch.stack([losses.sum(), torch.tensor(float(losses.numel()), device=losses.device)])
    model.train()
    total = accelerator.reduce(total, reduction="sum")
    return {"eval_loss": float(total[0] / total[1].clamp(min=1))}


def _real_tokens(batch: dict[str, torch.Tensor]) -> int:
    """Tokens of the batch's samples (padding and the vision filler left out)."""
    return int((batch["seq_ids"] >= 0).sum()) - int(batch.get("filler_tokens", 0))


def _to(batch: dict[str, torch.Tensor], device: Any) -> dict[str, torch.Tensor]:
    return {k: v.to(device) for k, v in batch.items()}


class NonFiniteLoss(FloatingPointError):
    """A training loss that is NaN or infinite; the weights were not updated with it."""


def train_step(model: Any, window: list[dict], accelerator: Any, optimizer: Any, recipe: SupervisedConfig,
               step: int = 0) -> dict[str, float]:  # fmt: skip
    """One optimizer step over ``grad_accum`` micro-batches; returns the window's loss, tokens, grad norm.

    Raises:
        NonFiniteLoss: the window's loss is not finite; raised before the optimizer steps, so the model
            keeps the weights of the last good step (a checkpoint then resumes from sane weights).
    """
    counts = torch.tensor([[(b["labels"][:, 1:] != IGNORE_INDEX).sum(), _real_tokens(b)] for b in window],
                          dtype=torch.float32, device=accelerator.device).sum(0)
    targets, tokens = accelerator.reduce(counts, reduction="sum").tolist()
    # accelerate divides by grad_accum; DDP averages over processes: undo both so the gradient is sum / targets
    scale = accelerator.num_processes * recipe.grad_accum / max(targets, 1.0)
    loss_sum = torch.zeros((), device=accelerator.device)
    for batch in window:
        with accelerator.accumulate(model):
            with accelerator.autocast():
                losses, _ = token_losses(model, _to(batch, accelerator.device))
            accelerator.backward(losses.sum() * scale)
            loss_sum += losses.detach().sum()
    loss = float(accelerator.reduce(loss_sum, reduction="sum")) / max(targets, 1.0)
    if not math.isfinite(loss):
        optimizer.zero_grad(set_to_none=True)
        raise NonFiniteLoss(f"training loss is {loss} at step {step + 1}; the model was not updated. Lower "
                            "optim.lr or raise optim.warmup_steps, check the data, and resume from the last checkpoint")
    grad_norm = None
    if recipe.optim.max_grad_norm > 0:
        grad_norm = accelerator.clip_grad_norm_(model.parameters(), recipe.optim.max_grad_norm)
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    out = {"loss": loss, "tokens": tokens, "targets": targets}
    if grad_norm is not None:
        out["grad_norm"] = float(grad_norm)
    return out


@dataclass
class Setup:
    """Everything a supervised stage trains with, built from its recipe by :func:`setup`."""

    accelerator: Any
    model: Any  # prepared by the accelerator
    processor: Any
    optimizer: Any  # prepared by the accelerator
    scheduler: Any
    batches: Batches
    evals: Batches | None  # validation batches, when the recipe evaluates
    total_steps: int


def setup(recipe: SupervisedConfig) -> Setup:
    """The accelerator, records, starting model, batches and optimizer of a supervised stage, seeded.

    :func:`run` trains with them; ``bench/step_profile.py`` times the same objects through :func:`train_step`.
    The scheduler runs over the recipe's ``max_steps``, else over its ``epochs``.
    """
    from accelerate.utils import DistributedDataParallelKwargs, set_seed

    if recipe.stage not in SUPERVISED_STAGES:
        raise ValueError(f"medmo.train.sft runs stages {', '.join(SUPERVISED_STAGES)}, not {recipe.stage!r}")
    # text-only micro-batches leave the vision tower and mergers unused on that process
    ddp = DistributedDataParallelKwargs(find_unused_parameters=True)
    accelerator = make_accelerator(mixed_precision=recipe.mixed_precision, grad_accum=recipe.grad_accum,
                                   max_grad_norm=recipe.optim.max_grad_norm, micro_batch=recipe.batch_size,
                                   kwargs_handlers=[ddp])  # fmt: skip
    set_seed(recipe.seed)
    d = recipe.data
    samples = select_records(d.train, d.tasks, d.sources, d.max_samples)
    model, processor = starting_model(recipe, samples, is_main=accelerator.is_main_process,
                                      wait=accelerator.wait_for_everyone)
    encoder = SampleEncoder(processor, rope_index_of(model), max_length=recipe.max_tokens, think=d.think)
    batches = Batches(samples, encoder, recipe, model, accelerator, accum=recipe.grad_accum)
    per_epoch = len(batches.plan(0)) // recipe.grad_accum
    total_steps = recipe.max_steps or max(1, math.ceil(recipe.epochs * per_epoch))
    optimizer, scheduler = make_optimizer(model, recipe, total_steps)
    model, optimizer = accelerator.prepare(model, optimizer)
    accelerator.register_for_checkpointing(scheduler)
    evals = None
    if d.validation and recipe.eval_every:
        val = select_records(d.validation, d.tasks, d.sources, d.max_eval_samples)
        # the unwrapped model: its config names the attention the collator packs for (DDP hides it)
        evals = Batches(val, encoder, recipe, accelerator.unwrap_model(model), accelerator)
    return Setup(accelerator, model, processor, optimizer, scheduler, batches, evals, total_steps)


def run(recipe: SupervisedConfig, *, on_step: Callable[[TrainState, dict], None] | None = None) -> Path:
    """Train one supervised stage (``align``, ``grounding``, ``sft``); return ``output_dir`` with the final model.

    Args:
        recipe: the run's settings (:func:`medmo.train.recipe.load_recipe`).
        on_step: called after every optimizer step (after logging and checkpointing) with the
            progress and that step's metrics; raising from it stops the run like a kill would.
    """
    parts = setup(recipe)
    accelerator, out = parts.accelerator, Path(recipe.output_dir)
    state = _start_state(recipe, accelerator, parts.total_steps)
    log = RunLogger(out, recipe.logging, parts.total_steps, start_step=state.step, enabled=accelerator.is_main_process,
                    run_config=recipe.to_dict())
    try:
        _loop(parts.model, parts.processor, parts.optimizer, parts.scheduler, parts.batches, parts.evals, accelerator,
              recipe, state, log, on_step)
    finally:
        log.close()
    _save_final(parts.model, parts.processor, accelerator, out, recipe.save_dtype)
    return out


def _start_state(recipe: SupervisedConfig, accelerator: Any, total: int) -> TrainState:
    """Fresh progress, or the resumed checkpoint's (model, optimizer, scheduler and RNG restored)."""
    out = Path(recipe.output_dir)
    step_batches = accelerator.num_processes * recipe.grad_accum
    layout = state_layout(accelerator)
    state = TrainState(total_steps=total, world_size=accelerator.num_processes, step_batches=step_batches,
                       layout=layout)  # fmt: skip
    ckpt = resolve_resume(recipe.resume, out)
    if ckpt is not None:
        state = load_checkpoint(accelerator, ckpt, step_batches=step_batches)
        state.total_steps, state.layout = total, layout
    if accelerator.is_main_process:
        out.mkdir(parents=True, exist_ok=True)
        dump_recipe(recipe, out / "recipe.yaml")
        if ckpt is None and (stale := set_aside_stale(out)) is not None:
            log.warning("%s held checkpoints of an earlier run; moved them to %s (use --resume to continue a run)",
                        out, stale)
    return state


def _loop(model, processor, optimizer, scheduler, batches, evals, accelerator, recipe, state, log, on_step) -> None:
    stream = batches.stream(state.epoch, state.offset)
    model.train()
    clock = time.perf_counter()
    while state.step < state.total_steps:
        window = []
        for _ in range(recipe.grad_accum):
            state.epoch, state.offset, batch = next(stream)
            window.append(batch)
        lr = _lm_lr(scheduler.optimizer)  # the rate this step ran at
        metrics = train_step(model, window, accelerator, optimizer, recipe, step=state.step)
        scheduler.step()
        state.step += 1
        tokens = int(metrics.pop("tokens"))
        state.tokens += tokens
        now = time.perf_counter()
        metrics.update(lr=lr, tokens_per_s=tokens / max(now - clock, 1e-9),
                       num_tokens=state.tokens, epoch=state.epoch)
        clock = now
        if evals is not None and (state.step % recipe.eval_every == 0 or state.step == state.total_steps):
            metrics.update(evaluate(model, evals, accelerator))
        if state.step % recipe.logging.every == 0 or "eval_loss" in metrics or state.step == state.total_steps:
            log.log(state.step, metrics)
        log.advance()
        if recipe.save_every and state.step % recipe.save_every == 0 and state.step < state.total_steps:
            save_checkpoint(accelerator, recipe.output_dir, state, model=model, processor=processor,
                            keep=recipe.keep_checkpoints, dtype=recipe.save_dtype)
        if on_step is not None:
            on_step(state, metrics)


def _lm_lr(optimizer: Any) -> float:
    """The language model's learning rate (the mergers' in ``align``, where the LM is frozen)."""
    groups = optimizer.param_groups
    for prefix in ("llm", "lora", "merger"):
        for g in groups:
            if str(g.get("name", "")).startswith(prefix):
                return float(g["lr"])
    return float(groups[0]["lr"])


def _save_final(model: Any, processor: Any, accelerator: Any, out: Path, dtype: str) -> None:
    """Write the trained model (gathered from ZeRO-3 / FSDP shards) as a standard Qwen3-VL folder."""
    accelerator.wait_for_everyone()
    state_dict = full_state_dict(accelerator, model)
    if accelerator.is_main_process:
        save(accelerator.unwrap_model(model), processor, out, dtype=dtype, state_dict=state_dict)
    accelerator.wait_for_everyone()
