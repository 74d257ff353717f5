"""The grpo stage: TRL dataset layout, config mapping, and an end-to-end CPU run on a tiny model.

The "GRPO raises the held-out box reward" demonstration needs minutes of CPU, so it lives in
``bench/grpo_nano.py``; here a short run checks the plumbing: rewards logged per step, only the language
model updated, the output folder loadable by ``medmo.model.load``.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from medmo.train import grpo
from medmo.train.recipe import load_recipe


@pytest.fixture(scope="module")
def nano_data(tmp_path_factory):
    from medmo.data.synth import build_nano

    return build_nano(tmp_path_factory.mktemp("nano"), n_train=24, n_val=2, n_test=2, seed=1)


def _recipe(model, data, out, *extra):
    return load_recipe(None, [
        "stage=grpo", f"model={model}", f"output_dir={out}", f"data.train=[{data['train']}]",
        "logging.progress=false", "logging.tensorboard=false", "save_dtype=float32", *extra,
    ])  # fmt: skip


def test_dataset_has_trl_columns_and_loads_images_lazily(nano_data):
    recipe = _recipe("unused", nano_data, "unused", "data.tasks=[grounding, mcq]", "data.max_samples=6")
    samples = grpo.load_samples(recipe)
    assert len(samples) == 6 and {s.task for s in samples} <= {"grounding", "mcq"}
    ds = grpo.build_dataset(samples, think=True)
    row = ds[0]
    assert {"prompt", "images", "task", "gold"} <= set(row)
    assert row["prompt"][0]["role"] == "user" and row["prompt"][0]["content"][0]["type"] == "image"
    assert "<think>" in row["prompt"][0]["content"][-1]["text"]
    assert row["images"][0].size == (128, 128)  # a PIL image, loaded on access
    gold = json.loads(row["gold"])
    assert gold["task"] == row["task"] and gold["think"] is True


def test_load_samples_explains_an_empty_selection(nano_data):
    with pytest.raises(ValueError, match="no training records"):
        grpo.load_samples(_recipe("x", nano_data, "x", "data.sources=[nowhere]"))


def test_reward_setup_keeps_weighted_rewards_that_apply():
    funcs, weights = grpo.reward_setup({"giou": 2.0, "format": 0.5, "accuracy": 0.0}, {"grounding", "closed_vqa"})
    assert [f.__name__ for f in funcs] == ["box_reward", "format_reward"]
    assert weights == [2.0, 0.5]
    with pytest.raises(ValueError, match="no reward"):
        grpo.reward_setup({"box": 0.0, "format": 0.0}, {"grounding"})


def test_config_maps_the_recipe(nano_data, tmp_path):
    recipe = _recipe("m", nano_data, tmp_path, "batch_size=3", "trl.num_generations=4", "max_steps=7",
                     "trl.epsilon=0.15", "trl.epsilon_high=0.25")
    cfg = grpo.grpo_config(recipe, [1.0, 0.5])
    assert cfg.per_device_train_batch_size == 12 and cfg.num_generations == 4
    assert (cfg.epsilon, cfg.epsilon_high) == (0.15, 0.25)  # DAPO clip-higher, passed by name
    assert cfg.max_steps == 7 and cfg.reward_weights == [1.0, 0.5] and not cfg.use_vllm
    assert cfg.output_dir == str(tmp_path / "checkpoints")
    assert cfg.scale_rewards == "group" and cfg.num_iterations == 1
    tuned = grpo.grpo_config(_recipe("m", nano_data, tmp_path, "trl.scale_rewards=none", "trl.num_iterations=2"),
                             [1.0])
    assert tuned.scale_rewards == "none" and tuned.num_iterations == 2


def test_refuses_a_random_starting_model(nano_data, tmp_path):
    from medmo.train.recipe import RecipeError

    with pytest.raises(RecipeError, match="trained model"):
        _recipe("{size: nano}", nano_data, tmp_path)


def test_vllm_is_checked_before_any_model_loads(nano_data, tmp_path, monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "vllm" else real(name, *a))
    for mode in ("server", "colocate"):
        with pytest.raises(ValueError, match="vLLM is not installed here.*trl vllm-serve.*vllm=off"):
            grpo.run(_recipe(str(tmp_path / "no-model-here"), nano_data, tmp_path, f"vllm={mode}"))
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: object() if name == "vllm" else real(name, *a))
    with pytest.raises(ValueError, match="no trl vllm-serve answers at http://127.0.0.1:9"):
        grpo.check_vllm(_recipe("m", nano_data, tmp_path, "vllm=server", "vllm_server=http://127.0.0.1:9"),
                        timeout_s=2)
    cfg = grpo.grpo_config(_recipe("m", nano_data, tmp_path, "vllm=server", "vllm_server=http://gen:8000"), [1.0])
    assert cfg.use_vllm and cfg.vllm_mode == "server" and cfg.vllm_server_base_url == "http://gen:8000"


def test_resume_picks_newest_checkpoint_and_trims_the_curve(nano_data, tmp_path):
    for step in (2, 10, 4):
        (tmp_path / "checkpoints" / f"checkpoint-{step}").mkdir(parents=True)
    metrics = tmp_path / "metrics.jsonl"
    metrics.write_text("".join(json.dumps({"step": i, "reward": 0.1 * i}) + "\n" for i in range(1, 13)))
    recipe = _recipe("m", nano_data, tmp_path, "resume=true")
    resume = grpo._resume_arg(recipe)
    assert resume == str(tmp_path / "checkpoints" / "checkpoint-10")
    grpo._trim_metrics(metrics, resume)
    assert [json.loads(x)["step"] for x in metrics.read_text().splitlines()] == list(range(1, 11))
    grpo._trim_metrics(metrics, grpo._resume_arg(_recipe("m", nano_data, tmp_path)))  # a fresh run
    assert metrics.read_text() == ""


def _warm_start(model_dir, train_jsonl, out, steps=40):
    """A few supervised grounding steps (the project's own loop) so sampled answers carry boxes."""
    from medmo.train.sft import run

    return run(load_recipe(None, [
        "stage=grounding", f"model={model_dir}", f"output_dir={out}", f"data.train=[{train_jsonl}]",
        "data.tasks=[grounding]", f"max_steps={steps}", "batch_size=8", "packing=false", "optim.lr=3e-3",
        "optim.warmup_steps=0", "optim.scheduler=constant", "train_vision=true", "save_dtype=float32",
        "logging.progress=false", "logging.tensorboard=false",
    ]))  # fmt: skip


@pytest.fixture(scope="module")
def warm_start(tiny_model_dir, nano_data, tmp_path_factory):
    return _warm_start(tiny_model_dir, nano_data["train"], tmp_path_factory.mktemp("warm") / "sft")


@pytest.mark.slow
def test_grpo_run_logs_rewards_updates_llm_only_and_saves(warm_start, nano_data, tmp_path):
    import torch

    from medmo.model import load

    start = warm_start
    recipe = _recipe(
        start, nano_data, tmp_path / "grpo", "data.tasks=[grounding]", "max_steps=2", "batch_size=2",
        "trl.num_generations=4", "trl.max_completion_length=24", "optim.lr=0.01", "optim.warmup_steps=0",
        "optim.scheduler=constant", "rewards={box: 1.0, format: 0.2}",
    )  # fmt: skip
    out = grpo.run(recipe)

    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [1, 2]
    for r in rows:
        assert 0.0 <= r["reward/box"] <= 1.0 and 0.0 <= r["reward/format"] <= 1.0
        assert r["reward"] == pytest.approx(r["reward/box"] + 0.2 * r["reward/format"], abs=1e-4)
        assert r["lr"] == pytest.approx(0.01)
    assert any(r["reward_std"] > 0 for r in rows)  # groups disagreed, so there was a policy gradient

    before, _ = load(start, dtype="float32")
    after, processor = load(out, dtype="float32")
    assert processor.tokenizer.padding_side == "right"  # saved as loaded, not as trained
    old, new = dict(before.named_parameters()), dict(after.named_parameters())
    llm = [n for n in new if ".language_model." in n and "embed" not in n]
    vision = [n for n in new if ".visual." in n]
    assert llm and vision
    assert any(not torch.equal(old[n], new[n]) for n in llm)
    assert all(torch.equal(old[n], new[n]) for n in vision)  # the rl stage freezes the vision side


@pytest.mark.slow
def test_a_step_is_the_same_with_and_without_the_shared_prefix(warm_start, nano_data, tmp_path):
    """Same seed, same completions; scoring each prompt once must give TRL's loss and gradient."""
    rows = {}
    for flag in ("true", "false"):
        recipe = _recipe(
            warm_start, nano_data, tmp_path / flag, "data.tasks=[grounding]", "max_steps=1", "batch_size=4",
            "trl.num_generations=4", "trl.max_completion_length=24", "save_every=0", f"shared_prefix={flag}",
        )  # fmt: skip
        out = grpo.run(recipe)
        rows[flag] = json.loads((out / "metrics.jsonl").read_text().splitlines()[0])
    on, off = rows["true"], rows["false"]
    assert on["reward"] == off["reward"] and on["completion_length"] == off["completion_length"]
    assert on["reward_std"] > 0 and on["grad_norm"] > 0  # there was a gradient to compare
    assert on["grad_norm"] == pytest.approx(off["grad_norm"], rel=1e-3)
    assert on["entropy"] == pytest.approx(off["entropy"], rel=1e-3)


@pytest.mark.slow
def test_grpo_from_a_bf16_checkpoint_trains_fp32_master_weights(warm_start, nano_data, tmp_path):
    """A small step changes nearly every weight of fp32 masters; bf16 weights would absorb most of it."""

    from medmo.model import load, save

    model, processor = load(warm_start, dtype="float32")
    start = save(model, processor, tmp_path / "bf16", dtype="bfloat16")
    recipe = _recipe(start, nano_data, tmp_path / "grpo", "data.tasks=[grounding]", "max_steps=1", "batch_size=4",
                     "trl.num_generations=4", "trl.max_completion_length=24", "optim.lr=5e-6",
                     "optim.warmup_steps=0", "save_every=0", "optim.scheduler=constant")  # fmt: skip
    out = grpo.run(recipe)
    before, _ = load(start, dtype="float32")
    after, _ = load(out, dtype="float32")
    new = dict(after.named_parameters())
    llm = [(n, p) for n, p in before.named_parameters() if ".language_model.layers." in n and p.ndim == 2]
    changed = sum(int((p != new[n]).sum()) for n, p in llm) / sum(p.numel() for _, p in llm)
    assert changed > 0.5, changed


# ------------------------------------------------------------------ processes, checkpoints, resume


def _dist_recipe(start, nano_data, out, *extra):
    """4 prompts (an epoch of 2 steps at 2 prompts per step), 4 completions each, a learning signal."""
    return [f"model={start}", f"output_dir={out}", f"data.train=[{nano_data['train']}]", "data.tasks=[grounding]",
            "data.max_samples=4", "trl.num_generations=4", "trl.max_completion_length=24", "optim.lr=0.002",
            "optim.warmup_steps=0", "optim.scheduler=constant", "rewards.box=1.0", "rewards.format=0.2",
            "max_steps=3", "logging.every=1", "logging.progress=false", "logging.tensorboard=false", *extra]


def _rows(out):
    return [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]


@pytest.mark.slow
def test_two_processes_equal_one_and_checkpoints_resume_exactly_at_an_epoch_boundary(warm_start, nano_data,
                                                                                     tmp_path):  # fmt: skip
    """2 gloo processes x 1 prompt = 1 process x 2 prompts, under DDP and under DeepSpeed ZeRO-3: same
    completions (seeded per row), rewards and group advantages across ranks, same update. The 1-process run's checkpoints are standard folders in
    save_dtype, pruned to keep_checkpoints, and resuming at the epoch boundary (step 2) replays step 3."""
    import os
    import subprocess
    import sys

    from safetensors.torch import load_file

    from medmo.model import load

    one = grpo.run(load_recipe(None, ["stage=grpo", *_dist_recipe(warm_start, nano_data, tmp_path / "one",
                   "batch_size=2", "save_every=1", "keep_checkpoints=2", "save_dtype=bfloat16")]))  # fmt: skip
    recipe = tmp_path / "grpo.yaml"
    recipe.write_text("stage: grpo\n")
    a = _rows(one)
    assert any(r["reward_std"] > 0 for r in a)  # a policy gradient
    masters = tmp_path / "one" / "checkpoints" / "checkpoint-3" / "training_state" / "model.safetensors"
    wa = load_file(str(masters))
    # DDP (gloo), and DeepSpeed ZeRO-3 through the shipped config (its CPU accelerator; no ACCELERATE_USE_CPU,
    # which would turn it into DDP): transformers.Trainer fills the JSON's "auto" micro-batch with the
    # per-device batch of prompts x generations
    for config, cpu in (("accelerate/ddp", {"ACCELERATE_USE_CPU": "true"}), ("accelerate/zero3", {})):
        out = tmp_path / config.split("/")[1]
        cmd = [sys.executable, "-m", "accelerate.commands.launch", "--config_file", str(recipes_path(config)),
               "--num_processes", "2", "--mixed_precision", "no", "--main_process_port", str(_free_port()), "-m",
               "medmo.cli", "train", str(recipe), "batch_size=1", "save_every=0", "save_dtype=float32",
               *_dist_recipe(warm_start, nano_data, out)]  # fmt: skip
        env = {**os.environ, **cpu, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(Path(__file__).parents[1])}
        done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=240, cwd=tmp_path)
        assert done.returncode == 0, done.stderr[-4000:]
        b = _rows(out)
        assert [r["step"] for r in b] == [1, 2, 3], config
        for key in ("reward", "reward_std", "completion_length"):
            assert [r[key] for r in b] == pytest.approx([r[key] for r in a], abs=1e-6), (config, key)
        for key in ("loss", "grad_norm", "entropy"):
            assert [r[key] for r in b] == pytest.approx([r[key] for r in a], rel=1e-4, abs=1e-5), (config, key)
        wb = load_file(str(out / "model.safetensors"))  # float32 both; ZeRO-3's gathered from its partitions
        # Adam moves an element by up to lr per step whatever its gradient's size, so where a gradient is near
        # zero the reduction order of 2 processes shows in the weights: equal to 1 % of one step (lr 0.002)
        assert set(wa) == set(wb) and all(torch.allclose(wa[k], wb[k], atol=0.01 * 0.002) for k in wa), config

    ckpts = sorted(p.name for p in (tmp_path / "one" / "checkpoints").glob("checkpoint-*"))
    assert ckpts == ["checkpoint-2", "checkpoint-3"]  # keep_checkpoints=2 of 3 saves
    ckpt = tmp_path / "one" / "checkpoints" / "checkpoint-2"
    assert json.loads((ckpt / "config.json").read_text())["dtype"] == "bfloat16"
    assert {str(v.dtype) for v in load_file(str(ckpt / "model.safetensors")).values()} == {"torch.bfloat16"}
    state = ckpt / "training_state"
    assert {str(v.dtype) for v in load_file(str(state / "model.safetensors")).values()} == {"torch.float32"}
    assert {"optimizer.pt", "scheduler.pt", "trainer_state.json"} <= {p.name for p in state.iterdir()}
    load(ckpt)  # a standard folder: evaluate or serve any checkpoint

    resumed = grpo.run(load_recipe(None, ["stage=grpo", *_dist_recipe(warm_start, nano_data, tmp_path / "one",
                       "batch_size=2", f"resume={ckpt}", "save_every=0", "save_dtype=bfloat16")]))  # fmt: skip
    c = _rows(resumed)
    assert [r["step"] for r in c] == [1, 2, 3]  # the curve continues the checkpoint's
    for key in ("reward", "completion_length", "entropy", "loss", "grad_norm"):
        assert c[2][key] == pytest.approx(a[2][key], rel=1e-5, abs=1e-7), key


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def recipes_path(name):
    from medmo import recipes

    return recipes.path(name)


def test_each_epoch_has_its_own_seeded_prompt_order():
    """Epoch e's order depends only on seed + e (a resumed run rebuilds it), epoch 0 is TRL's own."""
    from trl.trainer.utils import RepeatSampler

    from medmo.train.grpo_trainer import epoch_sampler

    def order(epoch):
        s = epoch_sampler(RepeatSampler(list(range(10)), mini_repeat_count=2, batch_size=5, seed=7))
        s.set_epoch(epoch)
        return list(s)

    trl_first = list(RepeatSampler(list(range(10)), mini_repeat_count=2, batch_size=5, seed=7))
    assert order(0) == trl_first and order(1) == order(1) and order(1) != order(0)
    unset = epoch_sampler(RepeatSampler(list(range(10)), mini_repeat_count=2, batch_size=5, seed=7))
    with pytest.raises(RuntimeError, match="set_epoch"):
        list(unset)


def test_seeded_sampling_does_not_depend_on_the_batch_split():
    """Rows sampled together or apart draw the same tokens; the draw follows the warped distribution."""
    from transformers import GenerationConfig

    from medmo.train.grpo_trainer import GumbelSampling, row_seed

    torch.manual_seed(0)
    scores = torch.randn(4, 50)
    config = GenerationConfig(do_sample=True, temperature=0.7, top_k=20, top_p=0.95)
    seeds = [row_seed(3, 5, r) for r in range(4)]
    together = [GumbelSampling(config, seeds, "cpu")(None, scores).argmax(-1) for _ in range(1)][0]
    apart = torch.cat([GumbelSampling(config, seeds[:2], "cpu")(None, scores[:2]).argmax(-1),
                       GumbelSampling(config, seeds[2:], "cpu")(None, scores[2:]).argmax(-1)])
    assert torch.equal(together, apart)
    out = GumbelSampling(config, seeds, "cpu")(None, scores)
    assert ((out == 0).sum(-1) == 1).all() and torch.isinf(out).sum() == 4 * 49  # a one-hot per row
    # many draws of one row match softmax(top-k/top-p(scores / T)) (Gumbel-max is exact)
    row = scores[:1].repeat(4000, 1)
    draws = GumbelSampling(config, [row_seed(1, 0, r) for r in range(4000)], "cpu")(None, row).argmax(-1)
    warped = row[:1]
    for warp in GumbelSampling(config, [0], "cpu").warpers:
        warped = warp(None, warped)
    expected = torch.softmax(warped[0], -1)
    freq = torch.bincount(draws, minlength=50).float() / 4000
    assert (freq - expected).abs().max() < 0.03
    assert float(freq[expected == 0].sum()) == 0.0  # nothing outside top-k / top-p


def test_a_changed_trl_method_fails_loudly(monkeypatch):
    import trl

    from medmo.train.grpo_trainer import check_trainer

    check_trainer()  # the installed versions are the ones written for
    monkeypatch.setattr(trl.GRPOTrainer, "_get_train_sampler", lambda self, data=None, extra=None: None)
    with pytest.raises(RuntimeError, match="_get_train_sampler.*trl 1.16"):
        check_trainer()
