"""Which parameters train in each stage of MedMO's recipe, LoRA, and per-module learning rates.

MedMO (Deria et al., 2025) trains in stages: cross-modal alignment updates only the vision-language
projectors (Qwen3-VL's patch merger and its DeepStack mergers), instruction tuning updates the
language model and projectors, and RL updates the language model. Parameters are grouped by name,
so the same rules hold for a bare ``Qwen3VLForConditionalGeneration`` and a PEFT wrapper of it.
"""

from __future__ import annotations

from typing import Any

STAGES = ("align", "sft", "rl")
GROUPS = ("vision", "merger", "llm", "lora")
# The language model's linear layers, as a PEFT regex (matched against full module names).
LORA_TARGETS = r".*language_model.*\.(q_proj|k_proj|v_proj|o_proj|gate_proj|up_proj|down_proj)"


def group_of(name: str) -> str:
    """``vision`` (ViT), ``merger`` (patch merger + DeepStack mergers), ``llm`` (decoder + head) or ``lora``."""
    if "lora_" in name:
        return "lora"
    if "visual.merger." in name or "visual.deepstack_merger_list." in name:
        return "merger"
    if "visual." in name:
        return "vision"
    if "language_model." in name or "lm_head." in name:
        return "llm"
    raise ValueError(f"Parameter {name!r} is not part of a Qwen3-VL model (vision, merger or language model).")


def freeze_for_stage(model: Any, stage: str, train_vision: bool = False) -> list[str]:
    """Set ``requires_grad`` for a training stage and return the trainable parameter names.

    Args:
        model: A Qwen3-VL model, optionally wrapped by :func:`add_lora` (then the language model trains
            through its LoRA adapters only).
        stage: ``align`` (mergers only), ``sft`` (language model + mergers) or ``rl`` (language model).
        train_vision: Also train the vision tower (any stage).
    """
    if stage not in STAGES:
        raise ValueError(f"Unknown stage {stage!r}; choose one of {', '.join(STAGES)}.")
    names = dict(model.named_parameters())
    has_lora = any(group_of(n) == "lora" for n in names)
    train = {"align": {"merger"}, "sft": {"llm", "merger"}, "rl": {"llm"}}[stage]
    if has_lora and "llm" in train:
        train = (train - {"llm"}) | {"lora"}
    if train_vision:
        train = train | {"vision"}
    trainable = []
    for name, param in names.items():
        param.requires_grad_(group_of(name) in train)
        if param.requires_grad:
            trainable.append(name)
    return trainable


def add_lora(
    model: Any,
    r: int = 16,
    alpha: int = 32,
    dropout: float = 0.05,
    target_modules: str | list[str] | None = None,
) -> Any:
    """Wrap ``model`` with PEFT LoRA adapters on the language model's linear layers (Hu et al., 2021).

    Args:
        model: A Qwen3-VL model.
        r: Adapter rank.
        alpha: LoRA scaling numerator (scale = alpha / r).
        dropout: Dropout on the adapter input.
        target_modules: PEFT targets; default every attention and MLP projection of the language model
            (the vision tower keeps its full weights).

    Returns:
        The ``peft.PeftModel``; only adapter weights are trainable until :func:`freeze_for_stage` says otherwise.
    """
    from peft import LoraConfig, get_peft_model

    config = LoraConfig(r=r, lora_alpha=alpha, lora_dropout=dropout, target_modules=target_modules or LORA_TARGETS,
                        bias="none", task_type="CAUSAL_LM")
    training = model.training
    # get_peft_model switches to train mode; keep the caller's mode (an eval-mode model stays deterministic).
    return get_peft_model(model, config).train(training)


def param_groups(
    model: Any,
    lr_vision: float,
    lr_merger: float,
    lr_llm: float,
    weight_decay: float = 0.0,
) -> list[dict[str, Any]]:
    """Optimizer parameter groups with a learning rate per module, for ``torch.optim.AdamW``.

    Only trainable parameters are included. Biases and norm weights (1-D tensors) get no weight decay,
    as in most transformer recipes. LoRA adapters use ``lr_llm``. Each group carries a ``name``.
    """
    lrs = {"vision": lr_vision, "merger": lr_merger, "llm": lr_llm, "lora": lr_llm}
    buckets: dict[tuple[str, bool], list[Any]] = {}
    for name, param in model.named_parameters():
        if param.requires_grad:
            buckets.setdefault((group_of(name), param.ndim >= 2), []).append(param)
    groups = []
    for (group, decay), params in sorted(buckets.items()):
        groups.append({"name": f"{group}{'' if decay else '_no_decay'}", "params": params, "lr": lrs[group],
                       "weight_decay": weight_decay if decay else 0.0})
    return groups


def count_parameters(model: Any) -> dict[str, dict[str, int]]:
    """``{group: {"total": n, "trainable": n}}`` for vision, merger, llm (and lora), plus ``all``."""
    counts = {g: {"total": 0, "trainable": 0} for g in (*GROUPS, "all")}
    for name, param in model.named_parameters():
        for g in (group_of(name), "all"):
            counts[g]["total"] += param.numel()
            counts[g]["trainable"] += param.numel() if param.requires_grad else 0
    if not counts["lora"]["total"]:
        del counts["lora"]
    return counts


def trainable_parameters(model: Any) -> list[str]:
    """Names of the parameters that currently require gradients."""
    return [n for n, p in model.named_parameters() if p.requires_grad]
