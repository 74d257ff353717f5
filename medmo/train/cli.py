"""``medmo train RECIPE [key=value ...] [--resume]``: run one stage of a training recipe.

``--headroom RECORDS`` measures instead what a ``grpo`` recipe would learn from: its model's greedy vs
sampled vs best-of-group reward on those records, sampled as the recipe samples.
"""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "train",
        help="run one training stage (align, grounding, sft or grpo) from a recipe",
        description="Run one training stage from a recipe: a shipped name (`medmo recipes` lists them) or a "
        "YAML file. Overrides use dotted keys, e.g. `medmo train nano/sft optim.lr=3e-4 max_steps=50`. "
        "Multi-GPU: `accelerate launch --config_file $(medmo recipes path accelerate/zero3) -m medmo.cli "
        "train medmo-8b/sft`.",
    )
    p.add_argument("recipe", help="recipe name (e.g. nano/sft) or YAML file")
    p.add_argument("overrides", nargs="*", metavar="key=value", help="dotted overrides, values parsed as YAML")
    p.add_argument("--resume", action="store_true", help="continue from the newest checkpoint in output_dir")
    p.add_argument("--headroom", metavar="RECORDS", help="grpo recipes: measure the sampling headroom of the "
                   "recipe's model on these records instead of training")
    p.add_argument("--limit", type=int, default=100, help="--headroom: how many prompts (default 100)")
    p.add_argument("--out", help="--headroom: write the figures to this JSON file")
    p.set_defaults(func=_train)


def _train(args: argparse.Namespace) -> int:
    from medmo.train import run
    from medmo.train.recipe import load_recipe

    overrides = list(args.overrides) + (["resume=true"] if args.resume else [])
    recipe = load_recipe(args.recipe, overrides)
    if args.headroom:
        return _headroom(recipe, args)
    print(run(recipe))
    _release_process_group()
    return 0


def _release_process_group() -> None:
    """Destroy the distributed process group on a normal exit, as PyTorch asks of every program that made one.

    Left to interpreter teardown, a finished rank of a two-process CPU ZeRO-3 run once aborted
    ("terminate called without an active exception") while its communication threads were torn down.
    """
    import sys

    dist = sys.modules.get("torch.distributed")
    if dist is not None and dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def _headroom(recipe, args: argparse.Namespace) -> int:  # noqa: ANN001 - a GRPOStageConfig
    import json
    from pathlib import Path

    from medmo.train.headroom import recipe_headroom

    if recipe.stage != "grpo":
        raise ValueError(f"--headroom measures what a grpo recipe learns from; {args.recipe} is a {recipe.stage} recipe")
    result = recipe_headroom(recipe, args.headroom, limit=args.limit)
    text = json.dumps(result, indent=2)
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(text + "\n")
    print(text)
    return 0
