"""Training recipes: one typed config per stage, loaded from YAML plus ``key=value`` overrides.

The dataclasses below *are* the schema (litgpt style): every YAML key must name a field, values are
checked against the field's type, and a wrong key or value fails with the key and what it may be.
MedMO trains in four stages (MedMO model card; arXiv 2602.06965):

1. ``align``: general medical SFT on image-text pairs at 768 px (projector + DeepStack mergers);
2. ``grounding``: high-resolution grounding at 1280 px (language model + mergers);
3. ``sft``: multi-task instruction tuning (language model + mergers);
4. ``grpo``: RL with verifiable rewards (:mod:`medmo.train.grpo`).

Stages 1-3 share :class:`SupervisedConfig` (one loop, :mod:`medmo.train.sft`); stage 4 is
:class:`GRPOStageConfig`, whose ``trl:`` mapping goes to TRL's ``GRPOConfig`` by name. Shipped recipes
live in the package (``medmo/recipes/``) and are named like ``nano/sft``; a path works too.

Example::

    recipe = load_recipe("nano/sft", ["optim.lr=3e-4", "max_steps=50"])
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from medmo import recipes

STAGES = ("align", "grounding", "sft", "grpo")
SUPERVISED_STAGES = ("align", "grounding", "sft")
SCHEDULERS = ("linear", "cosine", "cosine_with_restarts", "polynomial", "constant", "constant_with_warmup",
              "inverse_sqrt", "cosine_with_min_lr", "warmup_stable_decay")  # transformers' SchedulerType


class RecipeError(ValueError):
    """A recipe that cannot run; the message names the key and what to write instead."""


@dataclass
class SmallModel:
    """A fresh randomly initialised small Qwen3-VL (:func:`medmo.model.build.build_small`).

    Attributes:
        size: ``nano`` (the CPU recipe's ~4 M parameters) or ``tiny`` (tests).
        vocab_size: size of the byte-level BPE trained on the stage's own training texts.
        tokenizer: ``bpe`` (trained here) or ``qwen3`` (the real 151k Qwen3 tokenizer).
        text: ``Qwen3VLConfig.text_config`` overrides, e.g. ``{hidden_size: 128}``.
        vision: ``vision_config`` overrides, e.g. ``{depth: 1}``.
    """

    size: Literal["nano", "tiny"] = "nano"
    vocab_size: int = 1024
    tokenizer: Literal["bpe", "qwen3"] = "bpe"
    text: dict[str, Any] = field(default_factory=dict)
    vision: dict[str, Any] = field(default_factory=dict)


@dataclass
class DataConfig:
    """Where the training records come from and which of them to use.

    Attributes:
        train: record files or folders (``.jsonl``, Parquet file or a mixture's shard folder).
        validation: held-out records for eval loss (empty: no eval).
        tasks: keep only these tasks (empty: all), e.g. ``[closed_vqa, grounding]``.
        sources: keep only these dataset names (empty: all).
        max_samples: cap on training records after filtering (``null``: all).
        max_eval_samples: cap on validation records.
        think: ask for ``<think>/<answer>`` style answers in the prompt.
        num_workers: DataLoader worker processes that load images and tokenize.
    """

    train: list[str] = field(default_factory=list)
    validation: list[str] = field(default_factory=list)
    tasks: list[str] = field(default_factory=list)
    sources: list[str] = field(default_factory=list)
    max_samples: int | None = None
    max_eval_samples: int | None = 64
    think: bool = False
    num_workers: int = 0


@dataclass
class OptimConfig:
    """AdamW with one learning rate per module and a warmup + decay schedule.

    Attributes:
        lr: language-model learning rate.
        lr_vision: vision-tower learning rate (used only when the stage trains it).
        lr_merger: projector / DeepStack merger learning rate (``null``: same as ``lr``).
        weight_decay: decoupled weight decay (not applied to norms and biases).
        betas: AdamW betas.
        eps: AdamW epsilon.
        warmup_ratio: fraction of the optimizer steps spent warming up (ignored if warmup_steps > 0);
            never more than all but one step, so a 1-step smoke run still takes a step.
        warmup_steps: explicit warmup length in optimizer steps.
        scheduler: a transformers scheduler name (:data:`SCHEDULERS`).
        max_grad_norm: gradient clipping norm (0 disables).
    """

    lr: float = 1e-5
    lr_vision: float = 2e-6
    lr_merger: float | None = None
    weight_decay: float = 0.0
    betas: list[float] = field(default_factory=lambda: [0.9, 0.999])
    eps: float = 1e-8
    warmup_ratio: float = 0.03
    warmup_steps: int = 0
    scheduler: Literal[SCHEDULERS] = "cosine"  # type: ignore[valid-type]
    max_grad_norm: float = 1.0


@dataclass
class LoggingConfig:
    """Where progress goes: tqdm, ``metrics.jsonl`` (always), TensorBoard (default), wandb (opt-in).

    Attributes:
        every: log every N optimizer steps (>= 1).
    """

    every: int = 1
    progress: bool = True
    tensorboard: bool = True
    wandb: bool = False
    wandb_project: str = "medmo"
    run_name: str | None = None


@dataclass
class LoraConfig:
    """LoRA adapters on the language model (:func:`medmo.model.add_lora`; Hu et al., 2021).

    The saved model has the adapters merged, so it loads without PEFT.
    """

    r: int = 16
    alpha: int = 32
    dropout: float = 0.05
    target_modules: list[str] = field(default_factory=list)


@dataclass
class StageConfig:
    """Settings every stage has: from a starting model to an output folder :func:`medmo.model.load` reads.

    Attributes:
        stage: one of :data:`STAGES`.
        model: a local folder, a hub id (``Qwen/Qwen3-VL-4B-Instruct``), or a :class:`SmallModel` mapping
            for a fresh small model (``model: {size: nano, vocab_size: 1024}``).
        output_dir: the final model, ``checkpoints/``, ``metrics.jsonl`` and logs go here.
        max_steps: optimizer steps (0: derive from ``epochs``).
        epochs: passes over the data when ``max_steps`` is 0.
        batch_size: rows per micro-batch (supervised: samples or packed rows; grpo: prompts).
        grad_accum: micro-batches per optimizer step.
        min_pixels / max_pixels: image resolution bounds given to the processor (``null``: the starting
            checkpoint's own, so a policy is trained and sampled at the resolution it was tuned at).
        train_vision: also train the vision tower.
        lora: train LoRA adapters on the language model instead of its full weights (``null``: off).
        mixed_precision: ``no``, ``bf16`` or ``fp16`` (accelerate); master weights stay fp32. ``auto``: bf16
            where the device computes it natively (a CUDA GPU with bf16, a CPU with AVX512-BF16 or AMX),
            fp32 elsewhere (:func:`medmo.train.distributed.resolve_precision`).
        attn_implementation: ``sdpa``, ``eager``, ``flash_attention_2``, ``sdpa_packed`` (``sdpa`` computing
            only each sample's block of packed rows, for CPU: :mod:`medmo.model.attention`) or ``null``
            (model default).
        gradient_checkpointing: recompute activations to save memory.
        save_every: checkpoint every N optimizer steps (0: only the final model).
        keep_checkpoints: how many recent checkpoints to keep (>= 1).
        save_dtype: dtype of saved weights, final and checkpoints (``bfloat16``, as Qwen3-VL ships).
        resume: continue from the newest checkpoint in ``output_dir`` (or from the given folder).
        seed: seeds model init, data order, dropout and sampling.
    """

    stage: str = "sft"
    model: str | SmallModel = "Qwen/Qwen3-VL-4B-Instruct"
    output_dir: str = "runs/sft"
    data: DataConfig = field(default_factory=DataConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    max_steps: int = 0
    epochs: float = 1.0
    batch_size: int = 4
    grad_accum: int = 1
    min_pixels: int | None = None
    max_pixels: int | None = None
    train_vision: bool = False
    lora: LoraConfig | None = None
    mixed_precision: Literal["no", "bf16", "fp16", "auto"] = "no"
    attn_implementation: Literal["sdpa", "sdpa_packed", "eager", "flash_attention_2", "flash_attention_3"] | None = "sdpa"
    gradient_checkpointing: bool = False
    save_every: int = 0
    keep_checkpoints: int = 2
    save_dtype: Literal["bfloat16", "float16", "float32"] = "bfloat16"
    resume: bool | str = False
    seed: int = 0
    logging: LoggingConfig = field(default_factory=LoggingConfig)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass
class SupervisedConfig(StageConfig):
    """Stages ``align``, ``grounding`` and ``sft``: next-token loss on the answers (:mod:`medmo.train.sft`).

    Attributes:
        max_tokens: token budget of a packed row, image tokens included; also the truncation length.
        packing: pack several samples per row (:mod:`medmo.train.packing`).
        eval_every: eval loss on ``data.validation`` every N steps (0: never).
    """

    stage: Literal["align", "grounding", "sft"] = "sft"
    max_tokens: int = 2048
    packing: bool = True
    eval_every: int = 0


@dataclass
class GRPOStageConfig(StageConfig):
    """Stage ``grpo``: TRL's ``GRPOTrainer`` with MedMO's verifiable rewards (:mod:`medmo.train.grpo`).

    Attributes:
        rewards: weight per reward (:data:`medmo.train.rewards.REWARDS`; ``giou`` is ``box``); a zero
            weight turns a reward off.
        shared_prefix: sample and score each distinct prompt once (:mod:`medmo.train.shared_prefix`).
        vllm: generate with vLLM: ``server`` (TRL's server mode: a ``trl vllm-serve`` process on other
            GPUs, reached at ``vllm_server``), ``colocate`` (vLLM inside the trainer's processes) or ``off``
            (transformers, the only choice on CPU). Checked before the model loads.
        vllm_server: URL of the ``trl vllm-serve`` process in server mode.
        trl: ``trl.GRPOConfig`` fields passed through by name (``num_generations``, ``epsilon``,
            ``epsilon_high``, ``beta``, ``temperature``, ``max_completion_length``, ``loss_type``,
            ``scale_rewards``, ``num_iterations``, ``top_p``, ...). Settings this config owns (learning
            rate, batch size, steps, precision, saving, logging) are refused there, so each is set once.
    """

    stage: Literal["grpo"] = "grpo"
    rewards: dict[str, float] = field(default_factory=lambda: {"accuracy": 1.0, "box": 1.0, "factuality": 1.0,
                                                               "format": 0.5})  # fmt: skip
    shared_prefix: bool = True
    vllm: Literal["off", "server", "colocate"] = "off"
    vllm_server: str = "http://127.0.0.1:8000"
    trl: dict[str, Any] = field(default_factory=dict)


Recipe = SupervisedConfig | GRPOStageConfig

# GRPOConfig fields that StageConfig derives, with the recipe key that sets each.
OWNED_BY_RECIPE = {
    "output_dir": "output_dir", "per_device_train_batch_size": "batch_size",
    "gradient_accumulation_steps": "grad_accum", "learning_rate": "optim.lr", "weight_decay": "optim.weight_decay",
    "adam_beta1": "optim.betas", "adam_beta2": "optim.betas", "adam_epsilon": "optim.eps",
    "warmup_steps": "optim.warmup_steps", "warmup_ratio": "optim.warmup_ratio", "lr_scheduler_type": "optim.scheduler",
    "max_grad_norm": "optim.max_grad_norm", "max_steps": "max_steps", "num_train_epochs": "epochs",
    "logging_steps": "logging.every", "save_strategy": "save_every", "save_steps": "save_every",
    "save_total_limit": "keep_checkpoints", "seed": "seed", "bf16": "mixed_precision", "fp16": "mixed_precision",
    "gradient_checkpointing": "gradient_checkpointing", "activation_checkpointing": "gradient_checkpointing",
    "report_to": "logging", "run_name": "logging.run_name",
    "disable_tqdm": "logging.progress", "reward_weights": "rewards", "use_vllm": "vllm", "vllm_mode": "vllm",
    "vllm_server_base_url": "vllm_server", "use_cpu": "(the machine)",
    "remove_unused_columns": "(fixed: reward columns are kept)",
}  # fmt: skip


# ------------------------------------------------------------------------------------------ files


def load_recipe(name_or_path: str | Path | None = None, overrides: list[str] | tuple[str, ...] = ()) -> Recipe:
    """Read a recipe, apply dotted ``key=value`` overrides, and validate it.

    Args:
        name_or_path: a shipped recipe name (``nano/sft``), a YAML file, or ``None`` for an ``sft``
            stage with all defaults.
        overrides: strings like ``optim.lr=1e-4`` or ``data.tasks=[closed_vqa]``; values parse as YAML.

    Raises:
        RecipeError: unknown key, wrong type, or an invalid combination; the message says what to fix.
        FileNotFoundError: no such file or shipped recipe.
    """
    raw: dict[str, Any] = {}
    where = "recipe"
    if name_or_path is not None:
        path = recipes.path(name_or_path)
        where = str(name_or_path)
        try:
            raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        except yaml.YAMLError as e:
            raise RecipeError(f"recipe {where} is not valid YAML: {e}") from e
        if not isinstance(raw, dict):
            raise RecipeError(f"recipe {where} must be a mapping of keys to values, got {type(raw).__name__}")
    for item in overrides:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise RecipeError(f"override {item!r} must look like key=value (e.g. optim.lr=1e-4)")
        try:
            parsed = yaml.safe_load(value) if value.strip() else None
        except yaml.YAMLError:
            raise RecipeError(f"override {item!r}: the value is not valid YAML") from None
        _set_dotted(raw, key.strip(), parsed)
    stage = raw.get("stage", "sft")
    if stage not in STAGES:
        raise RecipeError(f"{where}: stage must be one of {', '.join(STAGES)}, got {stage!r}")
    cls = GRPOStageConfig if stage == "grpo" else SupervisedConfig
    return validate(from_dict(cls, raw, where=where), where)


def dump_recipe(recipe: Recipe, path: str | Path) -> None:
    """Write the resolved recipe (after overrides) beside a run, for provenance; it loads back as is."""
    Path(path).write_text(yaml.safe_dump(recipe.to_dict(), sort_keys=False))


def _set_dotted(tree: dict[str, Any], key: str, value: Any) -> None:
    parts = key.split(".")
    node = tree
    for part in parts[:-1]:
        child = node.get(part)
        if not isinstance(child, dict):
            child = node[part] = {}
        node = child
    node[parts[-1]] = value


# --------------------------------------------------------------------------------------- checking


def from_dict(cls: type, data: dict[str, Any], where: str = "recipe", prefix: str = "") -> Any:
    """Build dataclass ``cls`` from a plain dict, checking keys and value types against its fields.

    Args:
        cls: the dataclass.
        data: its values.
        where: the source named in errors (the recipe file).
        prefix: dotted path of ``data`` inside the recipe (``optim.``), for error messages.
    """
    if not isinstance(data, dict):
        raise RecipeError(f"{where}: {prefix.rstrip('.') or 'recipe'} must be a mapping, got {data!r}")
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    unknown = sorted(set(data) - set(names))
    if unknown:
        keys = ", ".join(prefix + k for k in unknown)
        under = f" under {prefix.rstrip('.')}" if prefix else ""
        raise RecipeError(f"{where}: unknown key(s) {keys}; valid keys{under}: {', '.join(names)}")
    kwargs = {}
    for k, v in data.items():
        try:
            kwargs[k] = _coerce(v, hints[k], prefix + k, where)
        except RecipeError as e:
            raise RecipeError(f"{where}: {e}" if not str(e).startswith(where) else str(e)) from None
    return cls(**kwargs)


def _dataclass_in(tp: Any) -> type | None:
    if dataclasses.is_dataclass(tp):
        return tp
    return next((a for a in typing.get_args(tp) if dataclasses.is_dataclass(a)), None)


def _coerce(value: Any, tp: Any, key: str, where: str = "recipe") -> Any:
    """Check (and gently convert: int->float, scalar->list) ``value`` against type hint ``tp``."""
    sub = _dataclass_in(tp)
    if sub is not None and isinstance(value, dict):
        return from_dict(sub, value, where, key + ".")
    if value is None and dataclasses.is_dataclass(tp):  # an empty section (`data:` with nothing under it)
        return tp()
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in (a for a in args if a is not type(None) and not dataclasses.is_dataclass(a)):
            try:
                return _coerce(value, arg, key, where)
            except RecipeError as e:
                errors.append(str(e))
        if sub is not None:
            errors.append(f"{key} must be a mapping of {sub.__name__} keys")
        raise RecipeError(errors[0] if len(errors) == 1 else f"{key}: {value!r} matches none of {_name(tp)}")
    if origin is Literal:
        if isinstance(value, bool):  # YAML 1.1 reads the words off / no / on / yes as booleans
            word = next((w for w in (("on", "yes", "true") if value else ("off", "no", "false")) if w in args), None)
            if word is not None:
                return word
        if value not in args:
            raise RecipeError(f"{key} must be one of {', '.join(map(str, args))}, got {value!r}")
        return value
    if origin is list:
        items = value if isinstance(value, list) else [value]
        return [_coerce(v, args[0], f"{key}[{i}]", where) for i, v in enumerate(items)] if args else items
    if origin is dict:
        if not isinstance(value, dict):
            raise RecipeError(f"{key} must be a mapping, got {value!r}")
        return {str(k): _coerce(v, args[1], f"{key}.{k}", where) for k, v in value.items()} if args else value
    return _scalar(value, tp, key)


def _scalar(value: Any, tp: Any, key: str) -> Any:
    if tp is Any or not isinstance(tp, type):
        return value  # a type we do not check (a library's own field types)
    if tp is bool and isinstance(value, bool):
        return value
    if tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str):  # YAML 1.1 reads "1e-5" (no dot) as a string
            try:
                return float(value)
            except ValueError:
                pass
    elif tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
    elif tp is str:
        if isinstance(value, (str, int, float)) and not isinstance(value, bool):
            return str(value)
    elif tp is not bool and isinstance(value, tp):
        return value
    raise RecipeError(f"{key} must be {_name(tp)}, got {value!r}")


def _name(tp: Any) -> str:
    return getattr(tp, "__name__", None) or str(tp).replace("typing.", "")


def validate(recipe: Recipe, where: str = "recipe") -> Recipe:
    """Check cross-field rules a type cannot express; return the recipe.

    Raises:
        RecipeError: naming the key and the values it may take.
    """
    def fail(message: str) -> None:
        raise RecipeError(f"{where}: {message}")

    if recipe.stage != "grpo" and not recipe.data.train:
        fail("data.train is empty: give record files, e.g. data.train=[data/train.jsonl]")
    at_least_one = {"batch_size": recipe.batch_size, "grad_accum": recipe.grad_accum,
                    "keep_checkpoints": recipe.keep_checkpoints, "logging.every": recipe.logging.every}  # fmt: skip
    if isinstance(recipe, SupervisedConfig):
        at_least_one["max_tokens"] = recipe.max_tokens
    for key, cap in (("data.max_samples", recipe.data.max_samples), ("data.max_eval_samples",
                                                                     recipe.data.max_eval_samples)):
        if cap is not None:
            at_least_one[key] = cap
    for key, value in at_least_one.items():
        if value < 1:
            fail(f"{key} must be >= 1, got {value}" + (" (null means all records)" if "samples" in key else ""))
    for key, value in {"max_steps": recipe.max_steps, "save_every": recipe.save_every,
                       "optim.warmup_steps": recipe.optim.warmup_steps}.items():  # fmt: skip
        if value < 0:
            fail(f"{key} must be >= 0, got {value}")
    o = recipe.optim
    numbers = {"epochs": recipe.epochs, "optim.lr": o.lr, "optim.lr_vision": o.lr_vision, "optim.eps": o.eps,
               "optim.weight_decay": o.weight_decay, "optim.max_grad_norm": o.max_grad_norm,
               "optim.warmup_ratio": o.warmup_ratio, **{f"optim.betas[{i}]": b for i, b in enumerate(o.betas)}}
    if o.lr_merger is not None:
        numbers["optim.lr_merger"] = o.lr_merger
    for key, value in numbers.items():
        if not math.isfinite(value) or value < 0:
            fail(f"{key} must be a finite number >= 0, got {value}")
    if recipe.epochs <= 0 or o.lr <= 0:
        fail(f"epochs and optim.lr must be > 0, got {recipe.epochs} and {o.lr}")
    if len(o.betas) != 2 or not all(0 <= b < 1 for b in o.betas):
        fail(f"optim.betas needs two numbers in [0, 1), got {o.betas}")
    if o.warmup_ratio >= 1:
        fail(f"optim.warmup_ratio must be < 1, got {o.warmup_ratio}")
    lo, hi = recipe.min_pixels, recipe.max_pixels
    if (lo is not None and lo <= 0) or (hi is not None and hi <= 0) or (lo and hi and lo > hi):
        fail(f"need 0 < min_pixels <= max_pixels, got {lo} and {hi} (null: the checkpoint's own)")
    if isinstance(recipe, GRPOStageConfig):
        _check_grpo(recipe, fail)
    return recipe


def _check_grpo(recipe: GRPOStageConfig, fail: Any) -> None:
    """``trl:`` keys must be ``GRPOConfig`` fields of the right type and not owned by the recipe."""
    if isinstance(recipe.model, SmallModel):
        fail("grpo starts from a trained model; point model at an SFT output folder (e.g. model: sft)")
    from trl import GRPOConfig  # the field list is TRL's own; loaded only for grpo recipes

    fields = {f.name for f in dataclasses.fields(GRPOConfig)}
    hints = typing.get_type_hints(GRPOConfig)
    for key, value in recipe.trl.items():
        if key in OWNED_BY_RECIPE:
            fail(f"trl.{key} is set by the recipe's {OWNED_BY_RECIPE[key]}; set it there instead")
        if key not in fields:
            close = difflib.get_close_matches(key, sorted(fields), n=3)
            fail(f"trl.{key} is not a field of trl.GRPOConfig" + (f"; did you mean {', '.join(close)}?" if close else ""))
        try:
            recipe.trl[key] = _coerce(value, hints.get(key, Any), f"trl.{key}")
        except RecipeError as e:
            fail(str(e))
    generations = recipe.trl.get("num_generations", 8)
    if generations is not None and generations < 2:
        fail("trl.num_generations must be >= 2 (advantages are relative within a group)")
    for key in ("epsilon", "epsilon_high"):
        if recipe.trl.get(key) is not None and not 0 <= recipe.trl[key] <= 1:
            fail(f"trl.{key} must lie in [0, 1], got {recipe.trl[key]}")
