"""Training: recipes, collators and packing, the supervised loop, checkpoints, logging, GRPO.

``medmo.train.run(recipe)`` runs the recipe's stage: ``align``, ``grounding`` and ``sft`` in
:mod:`medmo.train.sft`, ``grpo`` in :mod:`medmo.train.grpo`. Names resolve lazily, so importing the package loads no torch.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

_EXPORTS = {
    "Recipe": "recipe",
    "SupervisedConfig": "recipe",
    "GRPOStageConfig": "recipe",
    "RecipeError": "recipe",
    "load_recipe": "recipe",
    "SampleEncoder": "collate",
    "PaddingCollator": "collate",
    "PackingCollator": "packing",
    "best_fit_decreasing": "packing",
    "read_metrics": "logging",
    "latest_checkpoint": "checkpoint",
}

__all__ = sorted([*_EXPORTS, "run"])


def run(recipe: Any) -> Path:
    """Run one training stage and return the output folder (a model loadable by ``medmo.model.load``).

    Args:
        recipe: a :class:`~medmo.train.recipe.Recipe`, or the path of a recipe YAML.
    """
    from medmo.train.recipe import StageConfig, load_recipe

    if not isinstance(recipe, StageConfig):
        recipe = load_recipe(recipe)
    if recipe.stage == "grpo":
        from medmo.train.grpo import run as run_grpo

        return run_grpo(recipe)
    from medmo.train.sft import run as run_sft

    return run_sft(recipe)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'medmo.train' has no attribute {name!r}")
    return getattr(importlib.import_module(f"medmo.train.{module}"), name)


def __dir__() -> list[str]:
    return __all__
