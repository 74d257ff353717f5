"""``medmo train RECIPE.yaml [key=value ...] [--resume]``: run one stage of a training recipe."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "train",
        help="run one training stage (align, sft or grpo) from a recipe YAML",
        description="Run one training stage from a recipe. Overrides use dotted keys, e.g. "
        "`medmo train recipes/nano/sft.yaml optim.lr=3e-4 max_steps=50`. Multi-GPU: "
        "`accelerate launch --config_file recipes/accelerate/zero3.yaml -m medmo.cli train RECIPE.yaml`.",
    )
    p.add_argument("recipe", help="recipe YAML (see recipes/)")
    p.add_argument("overrides", nargs="*", metavar="key=value", help="dotted overrides, values parsed as YAML")
    p.add_argument("--resume", action="store_true", help="continue from the newest checkpoint in output_dir")
    p.set_defaults(func=_train)


def _train(args: argparse.Namespace) -> int:
    from medmo.train import run
    from medmo.train.recipe import load_recipe

    overrides = list(args.overrides) + (["resume=true"] if args.resume else [])
    out = run(load_recipe(args.recipe, overrides))
    print(out)
    return 0
