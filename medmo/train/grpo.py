"""The ``grpo`` stage: RL with verifiable rewards on TRL's ``GRPOTrainer``.

MedMO's last stage optimizes accuracy / factuality, box GIoU and format rewards with Group Relative
Policy Optimization (Shao et al., "DeepSeekMath", 2024) and DAPO's asymmetric "clip-higher" range
(Yu et al., arXiv:2503.14476): the recipe's ``trl.epsilon`` / ``trl.epsilon_high`` (0.15 / 0.25) go to
TRL's ``GRPOConfig`` by name, like every ``trl:`` key. The trainer is TRL's (``trl/trainer/grpo_trainer.py``); this module only
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
:func:`medmo.model.load`; checkpoints to ``output_dir/checkpoints`` (:mod:`medmo.train.grpo_trainer`).
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from medmo.boxes import convention_of
from medmo.data.images import load_shown
from medmo.gold import gold_json
from medmo.model import save
from medmo.prompts import messages
from medmo.records import ImageRef, Sample
from medmo.train.collate import select_records
from medmo.train.distributed import (fsdp_requested, full_state_dict, resolve_deepspeed_config, resolve_precision,
                                     state_layout)
from medmo.train.grpo_trainer import MedMOTrainerMixin, check_trainer, resume_dir
from medmo.train.recipe import GRPOStageConfig, dump_recipe
from medmo.train.rewards import TASK_REWARDS, normalize_weights, trl_reward_funcs
from medmo.train.shared_prefix import SharedPrefixMixin
from medmo.train.start import starting_model, warmup_steps

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
        [load_shown(ImageRef(p, frame=f), {"box_convention": c}) for p, f in zip(paths, frames)]
        for paths, frames, c in zip(batch["images"], batch["frames"], batch["box_convention"])
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
            "box_convention": str(convention_of(s.meta)),
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
                         "check the recipe's rewards")  # fmt: skip
    return trl_reward_funcs(list(w)), list(w.values())


def grpo_config(recipe: GRPOStageConfig, reward_weights: list[float]) -> Any:
    """TRL ``GRPOConfig`` from a recipe: the recipe's own settings, then its ``trl:`` fields by name.

    ``batch_size`` is prompts per device step, each sampled ``trl.num_generations`` times.
    """
    import torch
    from trl import GRPOConfig

    o, lg = recipe.optim, recipe.logging
    generations = recipe.trl.get("num_generations") or _trl_default("num_generations")
    report = [name for name, on in (("tensorboard", lg.tensorboard), ("wandb", lg.wandb)) if on and _has(name)]
    total = recipe.max_steps if recipe.max_steps > 0 else None
    vllm = {"use_vllm": recipe.vllm != "off"}
    if recipe.vllm != "off":
        vllm.update(vllm_mode=recipe.vllm, vllm_server_base_url=recipe.vllm_server if recipe.vllm == "server" else None)
    return GRPOConfig(
        output_dir=str(Path(recipe.output_dir) / "checkpoints"),
        per_device_train_batch_size=recipe.batch_size * generations,
        gradient_accumulation_steps=recipe.grad_accum,
        reward_weights=reward_weights,
        learning_rate=o.lr,
        weight_decay=o.weight_decay,
        adam_beta1=o.betas[0],
        adam_beta2=o.betas[1],
        adam_epsilon=o.eps,
        warmup_steps=warmup_steps(recipe, total) if total else (o.warmup_steps or o.warmup_ratio),
        lr_scheduler_type=o.scheduler,
        max_grad_norm=o.max_grad_norm,
        max_steps=total or -1,
        num_train_epochs=recipe.epochs,
        logging_steps=lg.every,
        save_strategy="steps" if recipe.save_every > 0 else "no",
        save_steps=max(1, recipe.save_every),
        save_total_limit=recipe.keep_checkpoints,
        seed=recipe.seed,
        bf16=resolve_precision(recipe.mixed_precision) == "bf16",
        fp16=recipe.mixed_precision == "fp16",
        use_cpu=not torch.cuda.is_available(),
        activation_checkpointing=recipe.gradient_checkpointing,  # transformers 5's name for gradient_checkpointing
        remove_unused_columns=False,
        report_to=report,
        run_name=lg.run_name,
        disable_tqdm=not lg.progress,
        **vllm,
        **recipe.trl,
    )


def check_vllm(recipe: GRPOStageConfig, timeout_s: float = 10.0) -> None:
    """Before any model loads: the vLLM generation the recipe asks for can run here.

    TRL's trainer needs the ``vllm`` package in its own environment in both modes (in server mode it
    sends the updated weights to the ``trl vllm-serve`` process over NCCL), and in server mode the server
    must answer its ``/health/`` route.

    Raises:
        ValueError: what is missing and the command that provides it.
    """
    import importlib.util
    import urllib.request

    if recipe.vllm == "off":
        return
    if importlib.util.find_spec("vllm") is None:
        raise ValueError(
            f"{recipe.stage} recipe sets vllm: {recipe.vllm}, but vLLM is not installed here. On GPU machines "
            "install it beside the trainer (`pip install 'trl[vllm]'`; TRL's trainer uses it to send weights to "
            "the generation server), start `trl vllm-serve --model MODEL` on the generation GPUs for server "
            "mode, or set vllm=off to generate with transformers (slower).")
    if recipe.vllm == "server":
        url = f"{recipe.vllm_server.rstrip('/')}/health/"
        try:
            with urllib.request.urlopen(url, timeout=timeout_s) as r:  # noqa: S310 - the recipe's own server
                r.read(1)
        except OSError as e:
            raise ValueError(f"no trl vllm-serve answers at {recipe.vllm_server} ({type(e).__name__}); start "
                             "`trl vllm-serve --model MODEL --port PORT` on the generation GPUs first, or set "
                             "vllm_server to where it runs") from None


def _trl_default(name: str) -> Any:
    import dataclasses

    from trl import GRPOConfig

    return next(f.default for f in dataclasses.fields(GRPOConfig) if f.name == name)


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
            loss = logs.get("loss")
            if isinstance(loss, (int, float)) and not math.isfinite(loss):
                raise FloatingPointError(f"GRPO loss is {loss} at step {state.global_step}; lower optim.lr, check "
                                         "the rewards, and resume from the last checkpoint")
            with open(path, "a", encoding="utf-8") as f:
                f.write(json.dumps(row) + "\n")

    return _Metrics()


# ------------------------------------------------------------------------------------------- run


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


def run(recipe: GRPOStageConfig) -> Path:
    """Run the ``grpo`` stage of ``recipe`` and return the folder holding the trained model.

    The model starts from ``recipe.model`` (an SFT output folder or a hub id) with float32 master weights
    (:func:`medmo.train.start.starting_model`). Bad data and a missing vLLM fail before the model loads.

    Raises:
        ValueError: no usable records, all reward weights zero, or vLLM asked for but not available.
    """
    from accelerate import PartialState
    from trl import GRPOTrainer

    samples = load_samples(recipe)  # fail on bad data before loading the model
    check_vllm(recipe)
    check_trainer()
    resolve_deepspeed_config()  # TRL's accelerator reads the launch config's DeepSpeed JSON from the environment
    out = Path(recipe.output_dir)
    resume = _resume_arg(recipe)
    procs = PartialState()  # the processes of this run (one unless launched by accelerate / torchrun)
    if procs.is_main_process:
        out.mkdir(parents=True, exist_ok=True)
        dump_recipe(recipe, out / "recipe.yaml")
        _trim_metrics(out / "metrics.jsonl", resume)
    procs.wait_for_everyone()
    model, processor = starting_model(recipe, samples)
    # TRL left-pads prompt ids itself but takes mm_token_type_ids from the processor as returned:
    # the processor must pad on the same side or image tokens get the wrong rope positions.
    side, processor.tokenizer.padding_side = processor.tokenizer.padding_side, "left"
    dataset = build_dataset(samples, think=recipe.data.think)
    funcs, weights = reward_setup(recipe.rewards, {s.task for s in samples})
    mixins = (MedMOTrainerMixin, SharedPrefixMixin) if recipe.shared_prefix else (MedMOTrainerMixin,)
    trainer_cls = type("MedMOGRPOTrainer", (*mixins, GRPOTrainer), {})
    trainer = trainer_cls(
        model=model,
        processing_class=processor,
        reward_funcs=funcs,
        args=grpo_config(recipe, weights),
        train_dataset=dataset,
        callbacks=[metrics_callback(out / "metrics.jsonl")],
    )
    trainer.medmo_processor, trainer.medmo_save_dtype = processor, recipe.save_dtype
    if procs.is_main_process and fsdp_requested() and state_layout(trainer.accelerator) != "fsdp":
        log.warning("the launch config asks for FSDP, but transformers.Trainer turns FSDP on only on GPUs: this "
                    "GRPO run on CPU trains with DDP, a whole model on every process (the supervised stages shard)")
    trainer.train(resume_from_checkpoint=resume_dir(resume) if resume else None)
    processor.tokenizer.padding_side = side
    weights = full_state_dict(trainer.accelerator, trainer.model_wrapped)  # gathered from shards, all processes
    if procs.is_main_process:
        save(trainer.accelerator.unwrap_model(trainer.model).eval(), processor, out, dtype=recipe.save_dtype,
             state_dict=weights)  # fmt: skip
    procs.wait_for_everyone()
    return out
