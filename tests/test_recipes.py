"""Every shipped recipe loads and validates; the schema rejects unknown keys and wrong types."""

from __future__ import annotations

import json

import pytest

from medmo import recipes
from medmo.train.recipe import GRPOStageConfig, RecipeError, SmallModel, SupervisedConfig, load_recipe

STAGES = ("align", "grounding", "sft", "grpo")
TRAINING = [n for n in recipes.names() if n.split("/")[0] in ("nano", "medmo-4b", "medmo-8b") and n.split("/")[1] in STAGES]
ACCELERATE = [n for n in recipes.names() if n.startswith("accelerate/")]


def test_recipes_ship_in_the_package_with_four_stages():
    for size in ("nano", "medmo-4b", "medmo-8b"):
        assert {f"{size}/{stage}" for stage in STAGES} <= set(TRAINING)
    assert {"accelerate/ddp", "accelerate/zero3", "accelerate/fsdp2", "nano/mixture", "nano/speedrun"} <= set(
        recipes.names())
    assert recipes.is_shipped(recipes.path("nano/sft")) and recipes.path("nano/sft.yaml") == recipes.path("nano/sft")


def test_unknown_recipe_names_the_closest():
    with pytest.raises(FileNotFoundError, match="nano/sft"):
        recipes.path("nano/sfft")


@pytest.mark.parametrize("name", TRAINING + ACCELERATE)
def test_recipe_opens_with_its_command(name):
    first = recipes.path(name).read_text().splitlines()[0]
    assert first.startswith("# ") and ("medmo train" in first or "medmo.cli train" in first), first
    if not name.startswith("accelerate/"):
        assert first.rstrip().endswith(f"train {name}"), first


@pytest.mark.parametrize("name", TRAINING)
def test_recipe_loads(name):
    recipe = load_recipe(name)
    size, stage = name.split("/")
    assert recipe.stage == stage
    assert isinstance(recipe, GRPOStageConfig if stage == "grpo" else SupervisedConfig)
    assert recipe.data.train and recipe.output_dir.endswith(stage)


def test_stages_chain_in_order():
    for size in ("nano", "medmo-4b", "medmo-8b"):
        loaded = [load_recipe(f"{size}/{s}") for s in STAGES]
        for before, after in zip(loaded, loaded[1:]):
            assert after.model == before.output_dir, (size, after.stage)


@pytest.mark.parametrize("size", ["medmo-4b", "medmo-8b"])
def test_gpu_recipes_follow_medmo(size):
    align, grounding, sft, grpo = (load_recipe(f"{size}/{s}") for s in STAGES)
    base = "Qwen/Qwen3-VL-4B-Instruct" if size == "medmo-4b" else "Qwen/Qwen3-VL-8B-Instruct"
    assert align.model == base
    assert (align.max_pixels, grounding.max_pixels, sft.max_pixels) == (768 * 768, 1280 * 1280, 1280 * 1280)
    assert (align.optim.lr, sft.optim.lr, grpo.optim.lr) == (1e-5, 8e-6, 5e-6)
    assert (grpo.trl["num_generations"], grpo.trl["epsilon"], grpo.trl["epsilon_high"]) == (8, 0.15, 0.25)
    assert grpo.vllm == "server" and grpo.vllm_server.startswith("http://")
    assert sft.packing and sft.mixed_precision == "bf16" and sft.attn_implementation == "flash_attention_2"
    assert sft.save_dtype == "bfloat16"


@pytest.mark.parametrize("name", ACCELERATE)
def test_accelerate_configs_load(name):
    from accelerate.commands.config.config_args import ClusterConfig

    config = ClusterConfig.from_yaml_file(str(recipes.path(name)))  # rejects unknown keys
    assert config.num_processes >= 2
    if config.deepspeed_config and "deepspeed_config_file" in config.deepspeed_config:
        ds = recipes.path("deepspeed/zero3")
        settings = json.loads(ds.read_text())
        assert settings["zero_optimization"]["stage"] == 3
    if config.fsdp_config:
        assert config.fsdp_config["fsdp_version"] == 2


def test_overrides_are_typed():
    recipe = load_recipe("nano/sft", ["optim.lr=3e-4", "max_steps=7", "data.tasks=closed_vqa", "resume=runs/x",
                                      "packing=false"])  # fmt: skip
    assert recipe.optim.lr == 3e-4 and recipe.max_steps == 7 and recipe.packing is False
    assert recipe.data.tasks == ["closed_vqa"] and recipe.resume == "runs/x"
    assert load_recipe("nano/sft", ["resume=true"]).resume is True
    assert load_recipe("nano/sft", ["optim.lr=1"]).optim.lr == 1.0  # int -> float


def test_model_is_a_path_a_hub_id_or_a_typed_small_model():
    assert load_recipe("nano/sft").model == "grounding"
    fresh = load_recipe("nano/sft", ["model={size: tiny, vocab_size: 400, text: {num_hidden_layers: 1}}"])
    assert fresh.model == SmallModel(size="tiny", vocab_size=400, text={"num_hidden_layers": 1})
    with pytest.raises(RecipeError, match="model.size must be one of nano, tiny"):
        load_recipe("nano/sft", ["model={size: huge}"])
    with pytest.raises(RecipeError, match="grpo starts from a trained model"):
        load_recipe("nano/grpo", ["model={size: nano}"])


def test_lora_is_a_recipe_key():
    recipe = load_recipe("nano/sft", ["lora={r: 4, alpha: 8}"])
    assert (recipe.lora.r, recipe.lora.alpha, recipe.lora.target_modules) == (4, 8, [])
    assert load_recipe("nano/sft").lora is None


def test_grpo_settings_pass_to_trl_by_name():
    recipe = load_recipe("nano/grpo", ["trl.top_p=0.9", "trl.num_iterations=2"])
    assert recipe.trl["top_p"] == 0.9 and recipe.trl["num_iterations"] == 2
    with pytest.raises(RecipeError, match="trl.max_prompt_lenght is not a field of trl.GRPOConfig"):
        load_recipe("nano/grpo", ["trl.max_prompt_lenght=10"])
    with pytest.raises(RecipeError, match="trl.learning_rate is set by the recipe's optim.lr"):
        load_recipe("nano/grpo", ["trl.learning_rate=1e-5"])
    with pytest.raises(RecipeError, match="trl.temperature must be float"):
        load_recipe("nano/grpo", ["trl.temperature=hot"])
    with pytest.raises(RecipeError, match="num_generations must be >= 2"):
        load_recipe("nano/grpo", ["trl.num_generations=1"])
    assert load_recipe("nano/grpo", ["vllm=off"]).vllm == "off"  # YAML reads off as false


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("optim.lrr=1", "valid keys under optim: lr, lr_vision"),
        ("bogus=1", "valid keys: stage, model"),
        ("batch_size=abc", "batch_size must be int"),
        ("stage=pretrain", "stage must be one of align, grounding, sft, grpo"),
        ("optim.scheduler=cosin", "optim.scheduler must be one of linear, cosine"),
        ("save_dtype=int8", "save_dtype must be one of bfloat16, float16, float32"),
        ("batch_size=0", "batch_size must be >= 1"),
        ("min_pixels=99999999", "min_pixels <= max_pixels"),
        ("optim.lr=nan", "optim.lr must be a finite number"),
        ("optim.lr=.inf", "optim.lr must be a finite number"),
        ("logging.every=0", "logging.every must be >= 1"),
        ("data.max_samples=0", "data.max_samples must be >= 1"),
        ("max_tokens=0", "max_tokens must be >= 1"),
        ("optim.warmup_ratio=1.5", "warmup_ratio must be < 1"),
        ("lr", "must look like key=value"),
    ],
)
def test_bad_recipes_say_what_to_fix(override, message):
    with pytest.raises(RecipeError, match=message.replace("(", r"\(")):
        load_recipe("nano/sft", [override])


def test_missing_recipe_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="medmo recipes"):
        load_recipe(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("- a list\n")
    with pytest.raises(RecipeError, match="mapping"):
        load_recipe(bad)


def test_a_dumped_recipe_loads_back_the_same(tmp_path):
    from medmo.train.recipe import dump_recipe

    for name in ("nano/sft", "nano/grpo"):
        recipe = load_recipe(name, ["lora={r: 2}"] if name == "nano/sft" else [])
        dump_recipe(recipe, tmp_path / "r.yaml")
        assert load_recipe(tmp_path / "r.yaml") == recipe


def test_cli_parses_train():
    from medmo.cli import build_parser

    args = build_parser().parse_args(["train", "nano/sft", "optim.lr=1e-4", "--resume"])
    assert args.recipe == "nano/sft" and args.overrides == ["optim.lr=1e-4"] and args.resume


def test_mixed_precision_auto_is_bf16_only_where_the_device_computes_it_natively(monkeypatch):
    import torch

    from medmo.train.distributed import resolve_precision

    assert [resolve_precision(p) for p in ("no", "bf16", "fp16")] == ["no", "bf16", "fp16"]
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    for avx, amx, expected in ((True, False, "bf16"), (False, True, "bf16"), (False, False, "no")):
        monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda v=avx: v, raising=False)
        monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda v=amx: v, raising=False)
        assert resolve_precision("auto") == expected
    # the nano supervised stages ask for it; GRPO keeps fp32 (bf16 autocast does not speed its sampling)
    assert {load_recipe(f"nano/{s}").mixed_precision for s in ("align", "grounding", "sft")} == {"auto"}
    assert load_recipe("nano/grpo").mixed_precision == "no"
