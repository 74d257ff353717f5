"""Training recipes: one typed dataclass tree per run, loaded from YAML plus ``key=value`` overrides.

The dataclass signatures below *are* the schema (litgpt style): every YAML key must name a field,
values are checked against the field's type, and an unknown key fails with the list of valid keys.
A recipe runs one stage: ``align`` (projector + DeepStack mergers), ``sft`` (multi-task instruction
tuning) or ``grpo`` (RL with verifiable rewards, :mod:`medmo.train.grpo`).

Example::

    recipe = load_recipe("recipes/nano/sft.yaml", ["optim.lr=3e-4", "max_steps=50"])
"""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

STAGES = ("align", "sft", "grpo")


class RecipeError(ValueError):
    """A recipe that cannot run; the message names the key and what to write instead."""


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
        warmup_ratio: fraction of the optimizer steps spent warming up (ignored if warmup_steps > 0).
        warmup_steps: explicit warmup length in optimizer steps.
        scheduler: a transformers scheduler name: ``cosine``, ``linear``, ``constant_with_warmup``, ...
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
    scheduler: str = "cosine"
    max_grad_norm: float = 1.0


@dataclass
class LoggingConfig:
    """Where progress goes: tqdm, ``metrics.jsonl`` (always), TensorBoard (default), wandb (opt-in)."""

    every: int = 1
    progress: bool = True
    tensorboard: bool = True
    wandb: bool = False
    wandb_project: str = "medmo"
    run_name: str | None = None


@dataclass
class GRPOConfig:
    """Group Relative Policy Optimization settings, read by :mod:`medmo.train.grpo`.

    The asymmetric clip (``epsilon_low`` < ``epsilon_high``) is DAPO's "clip-higher" (Yu et al. 2025,
    arXiv:2503.14476); MedMO samples 8 completions per prompt. ``scale_rewards`` is TRL's advantage
    scaling: ``group`` divides by each prompt's reward std (GRPO), ``batch`` by the batch's, ``none``
    only centres (Dr. GRPO, Liu et al. 2025, arXiv:2503.20783). ``num_iterations`` is PPO's reuse of
    each batch of completions for several updates (the clip keeps them within the trust region).
    ``shared_prefix`` samples and scores the completions of one prompt against a single run of that
    prompt (:mod:`medmo.train.shared_prefix`; same samples and log-probabilities, less compute).
    """

    num_generations: int = 8
    epsilon_low: float = 0.15
    epsilon_high: float = 0.25
    beta: float = 0.0
    temperature: float = 1.0
    max_prompt_length: int | None = None
    max_completion_length: int = 256
    reward_weights: dict[str, float] = field(
        default_factory=lambda: {"accuracy": 1.0, "giou": 1.0, "factuality": 1.0, "format": 0.5}
    )
    loss_type: str = "dapo"
    scale_rewards: str = "group"
    num_iterations: int = 1
    use_vllm: bool = False
    shared_prefix: bool = True


@dataclass
class Recipe:
    """One training stage from a starting model to an output folder loadable by :func:`medmo.model.load`.

    Attributes:
        stage: ``align``, ``sft`` or ``grpo``.
        model: a local folder, a hub id (``Qwen/Qwen3-VL-4B-Instruct``), or ``nano:`` / ``tiny:`` to build
            a fresh small model from :func:`medmo.model.nano_config` / ``tiny_config`` (``nano:key=v,...``).
        output_dir: the final model, ``checkpoints/``, ``metrics.jsonl`` and logs go here.
        max_steps: optimizer steps (0: derive from ``epochs``).
        epochs: passes over the data when ``max_steps`` is 0.
        batch_size: rows per micro-batch (samples when not packing, packed rows when packing).
        max_tokens: token budget of a packed row, image tokens included; also the truncation length.
        grad_accum: micro-batches per optimizer step.
        min_pixels / max_pixels: image resolution bounds given to the processor.
        packing: pack several samples per row (:mod:`medmo.train.packing`).
        train_vision: also train the vision tower (``freeze_for_stage(..., train_vision=True)``).
        mixed_precision: ``no``, ``bf16`` or ``fp16`` (accelerate).
        attn_implementation: ``sdpa``, ``eager``, ``flash_attention_2`` or ``null`` (model default).
        gradient_checkpointing: recompute activations to save memory.
        save_every: checkpoint every N optimizer steps (0: only at the end).
        keep_checkpoints: how many recent checkpoints to keep.
        eval_every: eval loss on ``data.validation`` every N steps (0: never).
        resume: continue from the newest checkpoint in ``output_dir`` (or from the given folder).
        seed: seeds model init (nano), data order and dropout.
    """

    stage: Literal["align", "sft", "grpo"] = "sft"
    model: str = "nano:"
    output_dir: str = "runs/sft"
    data: DataConfig = field(default_factory=DataConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    max_steps: int = 0
    epochs: float = 1.0
    batch_size: int = 4
    max_tokens: int = 2048
    grad_accum: int = 1
    min_pixels: int = 64 * 32 * 32
    max_pixels: int = 768 * 768
    packing: bool = True
    train_vision: bool = False
    mixed_precision: Literal["no", "bf16", "fp16"] = "no"
    attn_implementation: str | None = "sdpa"
    gradient_checkpointing: bool = False
    save_every: int = 0
    keep_checkpoints: int = 2
    eval_every: int = 0
    resume: bool | str = False
    seed: int = 0
    logging: LoggingConfig = field(default_factory=LoggingConfig)
    grpo: GRPOConfig = field(default_factory=GRPOConfig)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def load_recipe(path: str | Path | None = None, overrides: list[str] | tuple[str, ...] = ()) -> Recipe:
    """Read a recipe YAML, apply dotted ``key=value`` overrides, and validate it.

    Args:
        path: YAML file (``None``: all defaults).
        overrides: strings like ``optim.lr=1e-4`` or ``data.tasks=[closed_vqa]``; values parse as YAML.

    Raises:
        RecipeError: unknown key, wrong type, or an invalid combination; the message says what to fix.
    """
    import yaml

    raw: dict[str, Any] = {}
    if path is not None:
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"recipe {path} does not exist; shipped recipes live under recipes/")
        try:
            raw = yaml.safe_load(path.read_text()) or {}
        except yaml.YAMLError as e:
            raise RecipeError(f"recipe {path} is not valid YAML: {e}") from e
        if not isinstance(raw, dict):
            raise RecipeError(f"recipe {path} must be a mapping of keys to values, got {type(raw).__name__}")
    for item in overrides:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise RecipeError(f"override {item!r} must look like key=value (e.g. optim.lr=1e-4)")
        _set_dotted(raw, key.strip(), yaml.safe_load(value) if value.strip() else None)
    recipe = from_dict(Recipe, raw, where=str(path) if path else "recipe")
    return validate(recipe)


def _set_dotted(tree: dict[str, Any], key: str, value: Any) -> None:
    parts = key.split(".")
    node = tree
    for part in parts[:-1]:
        child = node.get(part)
        if not isinstance(child, dict):
            child = node[part] = {}
        node = child
    node[parts[-1]] = value


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
        raise RecipeError(f"{where}: unknown key(s) {keys}; valid keys{' under ' + prefix.rstrip('.') if prefix else ''}: "
                          f"{', '.join(names)}")
    kwargs = {}
    for k, v in data.items():
        if dataclasses.is_dataclass(hints[k]):
            kwargs[k] = from_dict(hints[k], v or {}, where, f"{prefix}{k}.")
        else:
            try:
                kwargs[k] = _coerce(v, hints[k], prefix + k)
            except RecipeError as e:
                raise RecipeError(f"{where}: {e}") from None
    return cls(**kwargs)


def _coerce(value: Any, tp: Any, key: str) -> Any:
    """Check (and gently convert: int->float, scalar->list) ``value`` against type hint ``tp``."""
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in (a for a in args if a is not type(None)):
            try:
                return _coerce(value, arg, key)
            except RecipeError as e:
                errors.append(str(e))
        raise RecipeError(errors[0] if len(errors) == 1 else f"{key}: {value!r} matches none of {tp}")
    if origin is Literal:
        if value not in args:
            raise RecipeError(f"{key} must be one of {', '.join(map(str, args))}, got {value!r}")
        return value
    if origin is list:
        items = value if isinstance(value, list) else [value]
        return [_coerce(v, args[0], f"{key}[{i}]") for i, v in enumerate(items)] if args else items
    if origin is dict:
        if not isinstance(value, dict):
            raise RecipeError(f"{key} must be a mapping, got {value!r}")
        return {str(k): _coerce(v, args[1], f"{key}.{k}") for k, v in value.items()}
    if tp is bool:
        if isinstance(value, bool):
            return value
    elif tp is float:
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
    elif tp is Any:
        return value
    raise RecipeError(f"{key} must be {getattr(tp, '__name__', tp)}, got {value!r}")


def validate(recipe: Recipe) -> Recipe:
    """Check cross-field rules a type cannot express; return the recipe."""
    if recipe.stage != "grpo" and not recipe.data.train:
        raise RecipeError("data.train is empty: give record files, e.g. data.train=[runs/nano-data/train.jsonl]")
    positive = {"batch_size": recipe.batch_size, "max_tokens": recipe.max_tokens, "grad_accum": recipe.grad_accum}
    for key, value in positive.items():
        if value < 1:
            raise RecipeError(f"{key} must be >= 1, got {value}")
    if recipe.max_steps < 0 or recipe.epochs <= 0:
        raise RecipeError("max_steps must be >= 0 and epochs > 0")
    if not 0 < recipe.min_pixels <= recipe.max_pixels:
        raise RecipeError(f"need 0 < min_pixels <= max_pixels, got {recipe.min_pixels} and {recipe.max_pixels}")
    g = recipe.grpo
    if g.num_generations < 2:
        raise RecipeError("grpo.num_generations must be >= 2 (advantages are relative within a group)")
    if not 0 <= g.epsilon_low <= 1 or not 0 <= g.epsilon_high <= 1:
        raise RecipeError("grpo.epsilon_low and grpo.epsilon_high must lie in [0, 1]")
    if recipe.optim.lr <= 0 or recipe.optim.lr_vision < 0:
        raise RecipeError("optim.lr must be > 0 and optim.lr_vision >= 0")
    if len(recipe.optim.betas) != 2:
        raise RecipeError(f"optim.betas needs two numbers, got {recipe.optim.betas}")
    return recipe


def dump_recipe(recipe: Recipe, path: str | Path) -> None:
    """Write the resolved recipe (after overrides) beside a run, for provenance."""
    import yaml

    Path(path).write_text(yaml.safe_dump(recipe.to_dict(), sort_keys=False))
