"""Qwen3-VL models for MedMO: loading checkpoints, building tiny/nano models, processor, tokenizers, freezing.

Names resolve lazily, so ``import medmo.model`` loads neither torch nor transformers. Batched
generation lives in :mod:`medmo.model.generate` (``generate``).
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "load": "checkpoint",
    "resolve_checkpoint": "checkpoint",
    "MedMOProcessor": "processor",
    "build_processor": "processor",
    "load_processor": "processor",
    "DEFAULT_MIN_PIXELS": "processor",
    "DEFAULT_MAX_PIXELS": "processor",
    "train_tokenizer": "tokenizer",
    "qwen3_tokenizer": "tokenizer",
    "CHAT_TEMPLATE": "tokenizer",
    "SPECIAL_TOKENS": "tokenizer",
    "tiny_config": "build",
    "nano_config": "build",
    "build_model": "build",
    "build_small": "build",
    "corpus_texts": "build",
    "save": "layout",
    "save_processor": "layout",
    "freeze_for_stage": "freeze",
    "add_lora": "freeze",
    "param_groups": "freeze",
    "trainable_parameters": "freeze",
    "count_parameters": "freeze",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'medmo.model' has no attribute {name!r}")
    return getattr(importlib.import_module(f"medmo.model.{module}"), name)


def __dir__() -> list[str]:
    return __all__
