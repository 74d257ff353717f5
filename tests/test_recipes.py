"""Every shipped recipe loads and validates; the schema rejects unknown keys and wrong types."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from medmo.train.recipe import Recipe, RecipeError, load_recipe

ROOT = Path(__file__).resolve().parents[1]
RECIPES = sorted(p for d in ("nano", "medmo-4b", "medmo-8b") for p in (ROOT / "recipes" / d).glob("*.yaml"))
ACCELERATE = sorted((ROOT / "recipes" / "accelerate").glob("*.yaml"))


def test_recipes_are_shipped():
    names = {f"{p.parent.name}/{p.stem}" for p in RECIPES}
    for size in ("nano", "medmo-4b", "medmo-8b"):
        assert {f"{size}/align", f"{size}/sft", f"{size}/grpo"} <= names
    assert {p.stem for p in ACCELERATE} >= {"ddp", "zero3", "fsdp2"}


@pytest.mark.parametrize("path", RECIPES + ACCELERATE, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_recipe_opens_with_its_command(path):
    first = path.read_text().splitlines()[0]
    rel = path.relative_to(ROOT).as_posix()
    assert first.startswith("# ") and ("medmo train" in first or "medmo.cli train" in first)
    assert rel in first or path.parent.name == "accelerate"


@pytest.mark.parametrize("path", RECIPES, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_recipe_loads(path):
    recipe = load_recipe(path)
    assert isinstance(recipe, Recipe)
    assert recipe.stage == path.stem
    assert recipe.output_dir.endswith(f"{path.parent.name}/{path.stem}")
    assert recipe.data.train


@pytest.mark.parametrize("size", ["medmo-4b", "medmo-8b"])
def test_gpu_recipes_follow_medmo(size):
    align, sft, grpo = (load_recipe(ROOT / "recipes" / size / f"{s}.yaml") for s in ("align", "sft", "grpo"))
    base = "Qwen/Qwen3-VL-4B-Instruct" if size == "medmo-4b" else "Qwen/Qwen3-VL-8B-Instruct"
    assert align.model == base and sft.model.endswith("align") and grpo.model.endswith("sft")
    assert (align.max_pixels, sft.max_pixels) == (768 * 768, 1280 * 1280)  # stage resolutions
    assert (align.optim.lr, sft.optim.lr, grpo.optim.lr) == (1e-5, 8e-6, 5e-6)
    assert (grpo.grpo.num_generations, grpo.grpo.epsilon_low, grpo.grpo.epsilon_high) == (8, 0.15, 0.25)
    assert sft.packing and sft.mixed_precision == "bf16" and sft.attn_implementation == "flash_attention_2"


@pytest.mark.parametrize("path", ACCELERATE, ids=lambda p: p.name)
def test_accelerate_configs_load(path):
    from accelerate.commands.config.config_args import ClusterConfig

    config = ClusterConfig.from_yaml_file(str(path))  # rejects unknown keys
    assert config.num_processes >= 2
    if config.deepspeed_config:
        ds = ROOT / config.deepspeed_config["deepspeed_config_file"]
        settings = json.loads(ds.read_text())
        assert settings["zero_optimization"]["stage"] == 3
        assert isinstance(settings["train_micro_batch_size_per_gpu"], int)  # no dataloader reaches prepare()
    if config.fsdp_config:
        assert config.fsdp_config["fsdp_version"] == 2


def test_overrides_are_typed(tmp_path):
    recipe = load_recipe(ROOT / "recipes/nano/sft.yaml",
                         ["optim.lr=3e-4", "max_steps=7", "data.tasks=closed_vqa", "resume=runs/x", "packing=false"])
    assert recipe.optim.lr == 3e-4 and recipe.max_steps == 7 and recipe.packing is False
    assert recipe.data.tasks == ["closed_vqa"] and recipe.resume == "runs/x"
    assert load_recipe(ROOT / "recipes/nano/sft.yaml", ["resume=true"]).resume is True
    assert load_recipe(ROOT / "recipes/nano/sft.yaml", ["optim.lr=1"]).optim.lr == 1.0  # int -> float


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("optim.lrr=1", "valid keys under optim: lr, lr_vision"),
        ("bogus=1", "valid keys: stage, model"),
        ("batch_size=abc", "batch_size must be int"),
        ("stage=pretrain", "stage must be one of align, sft, grpo"),
        ("grpo.reward_weights.giou=high", "grpo.reward_weights.giou must be float"),
        ("batch_size=0", "batch_size must be >= 1"),
        ("min_pixels=99999999", "min_pixels <= max_pixels"),
        ("lr", "must look like key=value"),
    ],
)
def test_bad_recipes_say_what_to_fix(override, message):
    with pytest.raises(RecipeError, match=message.replace("(", r"\(")):
        load_recipe(ROOT / "recipes/nano/sft.yaml", [override])


def test_missing_recipe_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="recipes/"):
        load_recipe(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("- a list\n")
    with pytest.raises(RecipeError, match="mapping"):
        load_recipe(bad)


def test_cli_parses_train(tmp_path):
    from medmo.cli import build_parser

    args = build_parser().parse_args(["train", "recipes/nano/sft.yaml", "optim.lr=1e-4", "--resume"])
    assert args.recipe == "recipes/nano/sft.yaml" and args.overrides == ["optim.lr=1e-4"] and args.resume
