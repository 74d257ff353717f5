"""The ``grpo`` stage: RL with verifiable rewards on TRL's ``GRPOTrainer``.

MedMO's last stage optimizes accuracy / factuality, box GIoU and format rewards with Group Relative
Policy Optimization (Shao et al., "DeepSeekMath", 2024) and DAPO's asymmetric "clip-higher" range
(Yu et al., arXiv:2503.14476): ``recipe.grpo.epsilon_low`` / ``epsilon_high`` (0.15 / 0.25) become TRL's
``epsilon`` / ``epsilon_high``. The trainer is TRL's (``trl/trainer/grpo_trainer.py``); this module only
turns a :class:`~medmo.train.recipe.Recipe` into its inputs:

* a ``datasets.Dataset`` with the columns TRL reads: ``prompt`` (chat messages from
  :func:`medmo.prompts.messages`, ``{"type": "image"}`` placeholders), ``images`` (PIL images, loaded
  lazily per row) and the reward columns ``task`` and ``gold`` (:func:`medmo.gold.gold_json`);
* one reward callable per reward with a non-zero weight (:func:`medmo.train.rewards.trl_reward_funcs`),
  the weights in ``GRPOConfig.reward_weights``; rewards that do not apply to a row's task return ``None``,
  which TRL leaves out of the sum;
* :class:`~medmo.model.processor.MedMOProcessor` as the processing class, unchanged: TRL renders prompts
  with ``processor.apply_chat_template(..., tokenize=True, return_dict=True)`` and calls
  ``processor(text=..., images=...)``, both of which the image-only processor implements, and it returns
  the ``mm_token_type_ids`` Qwen3-VL's forward needs, so no wrapper is required. Its tokenizer is only
  switched to left padding while training, the side TRL pads prompt ids to.

The trainer is TRL's with two methods replaced (``grpo.shared_prefix``, on by default): completions are
sampled and scored with each distinct prompt run once (:mod:`medmo.train.shared_prefix`), the same samples
and log-probabilities for less compute (the nano recipe's 150 steps take 141 s instead of 236 s).

Only the language model trains (``freeze_for_stage(model, "rl")``, plus the vision tower with
``train_vision``). Generation runs through transformers (``use_vllm: false``, the only choice on CPU);
set ``grpo.use_vllm: true`` on GPUs with vLLM installed. Reward curves go to ``output_dir/metrics.jsonl``
(one JSON per logging step), the final model and processor to ``output_dir`` itself, loadable by
:func:`medmo.model.load`; TRL checkpoints to ``output_dir/checkpoints``.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from medmo.data.images import load_image
from medmo.gold import gold_json
from medmo.model import freeze_for_stage, load, save
from medmo.prompts import messages
from medmo.records import Sample
from medmo.train.collate import select_records
from medmo.train.recipe import dump_recipe
from medmo.train.rewards import TASK_REWARDS, normalize_weights, trl_reward_funcs
from medmo.train.shared_prefix import SharedPrefixMixin

log = logging.getLogger(__name__)

# Keys of TRL's log dict that go into metrics.jsonl besides the per-reward means, renamed where the
# SFT loop's metrics.jsonl uses another name (medmo.train.logging).
_LOGGED = {"loss": "loss", "reward": "reward", "reward_std": "reward_std", "kl": "kl", "entropy": "entropy",
           "learning_rate": "lr", "grad_norm": "grad_norm", "completions/mean_length": "completion_length",
           "clip_ratio/region_mean": "clip_ratio", "frac_reward_zero_std": "frac_reward_zero_std"}  # fmt: skip


# ------------------------------------------------------------------------------------------ data


def load_samples(recipe: Any) -> list[Sample]:
    """Training records of ``recipe.data`` (tasks, sources, ``max_samples``) that have a reward."""
    data = recipe.data
    if not data.train:
        raise ValueError("grpo needs prompts with gold answers: set data.train to record files (e.g. train.jsonl)")
    out = [s for s in select_records(data.train, data.tasks, data.sources, data.max_samples) if s.task in TASK_REWARDS]
    if not out:
        raise ValueError(f"no records with a reward in data.train={data.train}; rewarded tasks: "
                         f"{', '.join(TASK_REWARDS)}")  # fmt: skip
    return out


def _load_images(batch: dict[str, list]) -> dict[str, list]:
    """``datasets`` transform: image paths -> PIL images, on access, so a large set is never all in memory."""
    batch["images"] = [
        [load_image(p, frame=f) for p, f in zip(paths, frames)]
        for paths, frames in zip(batch["images"], batch["frames"])
    ]
    return batch


def build_dataset(samples: Iterable[Sample], think: bool = False) -> Any:
    """A ``datasets.Dataset`` of GRPO prompts in TRL's layout (``prompt``, ``images``, ``task``, ``gold``).

    Args:
        samples: records with gold answers (paths of their images already resolved).
        think: ask for ``<think>/<answer>`` outputs (the format reward then checks them).
    """
    from datasets import Dataset

    rows = []
    for s in samples:
        rows.append({
            "prompt": messages(s, with_answer=False, think=think),
            "images": [ref.path for ref in s.images],
            "frames": [ref.frame for ref in s.images],
            "task": s.task,
            "gold": gold_json(s, think=think),
            "id": s.id,
        })  # fmt: skip
    return Dataset.from_list(rows).with_transform(_load_images)


# --------------------------------------------------------------------------------------- config


def reward_setup(weights: dict[str, float] | None, tasks: Iterable[str]) -> tuple[list[Any], list[float]]:
    """TRL reward callables and their weights: every reward with a non-zero weight that applies to at
    least one of ``tasks``."""
    used = {name for t in tasks for name in TASK_REWARDS.get(t, ())}
    w = {k: v for k, v in normalize_weights(weights).items() if v != 0 and k in used}
    if not w:
        raise ValueError(f"no reward with a non-zero weight applies to tasks {sorted(set(tasks))}; "
                         "check grpo.reward_weights")  # fmt: skip
    return trl_reward_funcs(list(w)), list(w.values())


def grpo_config(recipe: Any, reward_weights: list[float]) -> Any:
    """TRL ``GRPOConfig`` from a recipe: ``batch_size`` is prompts per device step, each sampled
    ``grpo.num_generations`` times."""
    import torch
    from trl import GRPOConfig

    g, o, lg = recipe.grpo, recipe.optim, recipe.logging
    if g.max_prompt_length:
        log.warning("grpo.max_prompt_length is ignored: TRL never truncates prompts (they hold image tokens)")
    report = [name for name, on in (("tensorboard", lg.tensorboard), ("wandb", lg.wandb)) if on and _has(name)]
    return GRPOConfig(
        output_dir=str(Path(recipe.output_dir) / "checkpoints"),
        per_device_train_batch_size=recipe.batch_size * g.num_generations,
        gradient_accumulation_steps=recipe.grad_accum,
        num_generations=g.num_generations,
        max_completion_length=g.max_completion_length,
        temperature=g.temperature,
        beta=g.beta,
        epsilon=g.epsilon_low,
        epsilon_high=g.epsilon_high,
        loss_type=g.loss_type,
        scale_rewards=g.scale_rewards,
        num_iterations=g.num_iterations,
        use_vllm=g.use_vllm,
        reward_weights=reward_weights,
        learning_rate=o.lr,
        weight_decay=o.weight_decay,
        adam_beta1=o.betas[0],
        adam_beta2=o.betas[1],
        adam_epsilon=o.eps,
        warmup_steps=o.warmup_steps if o.warmup_steps > 0 else o.warmup_ratio,
        lr_scheduler_type=o.scheduler,
        max_grad_norm=o.max_grad_norm,
        max_steps=recipe.max_steps if recipe.max_steps > 0 else -1,
        num_train_epochs=recipe.epochs,
        logging_steps=lg.every,
        save_strategy="steps" if recipe.save_every > 0 else "no",
        save_steps=max(1, recipe.save_every),
        save_total_limit=recipe.keep_checkpoints,
        seed=recipe.seed,
        bf16=recipe.mixed_precision == "bf16",
        fp16=recipe.mixed_precision == "fp16",
        use_cpu=not torch.cuda.is_available(),
        gradient_checkpointing=recipe.gradient_checkpointing,
        remove_unused_columns=False,
        report_to=report,
        run_name=lg.run_name,
        disable_tqdm=not lg.progress,
    )


def _has(module: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(module) is not None


def _number(value: Any) -> float | None:
    """A JSON-safe float; ``None`` where no row of the step had that reward (TRL logs NaN / None)."""
    try:
        v = float(value)
    except (TypeError, ValueError):
        return None
    return v if math.isfinite(v) else None


def metrics_callback(path: Path) -> Any:
    """A ``TrainerCallback`` appending one JSON line per logging step: ``step``, ``reward`` (weighted
    total), each reward's mean as ``reward/<name>`` (``null`` when no row of the step had it), ``loss``,
    ``lr``, ``kl``, ``entropy``, ``completion_length``, ``clip_ratio``."""
    from transformers import TrainerCallback

    class _Metrics(TrainerCallback):
        def on_log(self, args: Any, state: Any, control: Any, logs: dict | None = None, **kw: Any) -> None:
            if not state.is_world_process_zero or not logs or "reward" not in logs:
                return
            row: dict[str, Any] = {"step": state.global_step}
            for key, value in logs.items():
                if key.startswith("rewards/") and key.endswith("/mean"):
                    row["reward/" + key.split("/")[1].removesuffix("_reward")] = _number(value)
                elif key in _LOGGED:
                    row[_LOGGED[key]] = _number(value)
            with open(path, "a", encoding="utf-8") as f:
                f.write(json.dumps(row) + "\n")

    return _Metrics()


# ------------------------------------------------------------------------------------------- run


def _pixels(recipe: Any) -> dict[str, int]:
    """Pixel limits the recipe sets explicitly; left at their defaults, the checkpoint's own apply.

    RL continues from an SFT model, and a policy sampled at another image resolution than it was
    trained at sees different visual tokens (a 128 px nano image is 16 tokens at the nano limits,
    64 at the recipe defaults), so the checkpoint's saved limits win unless the recipe overrides them.
    """
    import dataclasses

    defaults = {f.name: f.default for f in dataclasses.fields(recipe) if f.name in ("min_pixels", "max_pixels")}
    return {k: getattr(recipe, k) for k, d in defaults.items() if getattr(recipe, k) != d}


def _resume_arg(recipe: Any) -> str | None:
    """The TRL checkpoint to resume from: ``resume`` as a folder, or the newest under ``checkpoints/``."""
    if isinstance(recipe.resume, str):
        return recipe.resume
    found = sorted((Path(recipe.output_dir) / "checkpoints").glob("checkpoint-*"),
                   key=lambda p: int(p.name.rsplit("-", 1)[-1]) if p.name.rsplit("-", 1)[-1].isdigit() else -1)
    return str(found[-1]) if recipe.resume and found else None


def _trim_metrics(path: Path, resume: str | None) -> None:
    """Keep ``metrics.jsonl`` the curve of one continuous run: empty for a fresh run, cut at the
    checkpoint's step on resume."""
    if not path.is_file():
        return
    tail = Path(resume).name.rsplit("-", 1)[-1] if resume else ""
    keep_to = int(tail) if tail.isdigit() else 0
    rows = [line for line in path.read_text().splitlines() if line.strip()]
    kept = [line for line in rows if resume and json.loads(line).get("step", 0) <= keep_to]
    path.write_text("".join(line + "\n" for line in kept))


def run(recipe: Any) -> Path:
    """Run the ``grpo`` stage of ``recipe`` and return the folder holding the trained model.

    The model starts from ``recipe.model`` (an SFT output folder or a hub id): RL needs a policy that
    already answers in the task's format, so ``nano:`` / ``tiny:`` (fresh random models) are refused.

    Raises:
        ValueError: a random starting model, no usable records, or all reward weights zero.
    """
    from trl import GRPOTrainer

    if str(recipe.model).startswith(("nano:", "tiny:")):
        raise ValueError(f"grpo starts from a trained model, got model={recipe.model!r}; "
                         "point model at an SFT output folder (e.g. runs/nano/sft)")  # fmt: skip
    samples = load_samples(recipe)  # fail on bad data before loading the model
    out = Path(recipe.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    dump_recipe(recipe, out / "recipe.yaml")
    model, processor = load(recipe.model, dtype="float32" if recipe.mixed_precision == "no" else "auto",
                            attn_implementation=recipe.attn_implementation, **_pixels(recipe))  # fmt: skip
    freeze_for_stage(model, "rl", train_vision=recipe.train_vision)
    # TRL left-pads prompt ids itself but takes mm_token_type_ids from the processor as returned:
    # the processor must pad on the same side or image tokens get the wrong rope positions.
    side, processor.tokenizer.padding_side = processor.tokenizer.padding_side, "left"
    dataset = build_dataset(samples, think=recipe.data.think)
    funcs, weights = reward_setup(recipe.grpo.reward_weights, {s.task for s in samples})
    resume = _resume_arg(recipe)
    _trim_metrics(out / "metrics.jsonl", resume)
    trainer_cls = GRPOTrainer
    if recipe.grpo.shared_prefix:

        trainer_cls = type("SharedPrefixGRPOTrainer", (SharedPrefixMixin, GRPOTrainer), {})
    trainer = trainer_cls(
        model=model,
        processing_class=processor,
        reward_funcs=funcs,
        args=grpo_config(recipe, weights),
        train_dataset=dataset,
        callbacks=[metrics_callback(out / "metrics.jsonl")],
    )
    trainer.train(resume_from_checkpoint=resume)
    model = trainer.accelerator.unwrap_model(trainer.model).eval()
    processor.tokenizer.padding_side = side
    return save(model, processor, out)
