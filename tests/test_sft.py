"""The supervised loop on the tiny model: outputs, freezing, loss normalisation, logs, CLI, dispatch, bad values."""

from __future__ import annotations

import sys
import types

import pytest
import torch

from medmo.train.logging import read_metrics
from medmo.train.recipe import load_recipe


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    from medmo.data.synth import build_nano

    return build_nano(tmp_path_factory.mktemp("nano"), n_train=2, n_val=1, n_test=1, image_size=64)


def make_recipe(model_dir, data, out, *overrides):
    base = [f"model={model_dir}", f"output_dir={out}", f"data.train=[{data['train']}]", "min_pixels=1024",
            "max_pixels=4096", "max_tokens=256", "batch_size=2", "optim.lr=2e-3", "optim.warmup_steps=1",
            "logging.progress=false", "seed=0", "save_dtype=float32"]
    return load_recipe(None, base + list(overrides))


def weights(path):
    from safetensors.torch import load_file

    return load_file(str(path / "model.safetensors"))


def test_sft_writes_a_loadable_model_and_logs(tiny_model_dir, data, tmp_path):
    from medmo.model import load
    from medmo.train.sft import run

    recipe = make_recipe(tiny_model_dir, data, tmp_path / "run", "max_steps=6", "eval_every=3",
                         f"data.validation=[{data['validation']}]", "data.max_eval_samples=2")
    out = run(recipe)
    model, processor = load(out)  # the final folder is a model + processor
    assert processor.image_token_id is not None and model.config.text_config.hidden_size == 64
    rows = read_metrics(out)
    assert [r["step"] for r in rows] == list(range(1, 7))
    assert all({"loss", "lr", "tokens_per_s", "grad_norm"} <= set(r) for r in rows)
    assert [r["step"] for r in rows if "eval_loss" in r] == [3, 6]
    assert sum(r["loss"] for r in rows[-3:]) / 3 < rows[0]["loss"]  # it learns
    assert list((out / "tensorboard").glob("events.out.tfevents.*"))
    assert (out / "recipe.yaml").is_file()
    before, after = weights(tiny_model_dir), weights(out)
    changed = {k for k in before if not torch.equal(before[k], after[k])}
    assert any("language_model" in k for k in changed) and any("visual.merger" in k for k in changed)
    assert not any(k.startswith("model.visual.blocks") for k in changed)  # sft keeps the vision tower


def test_align_trains_only_the_mergers(tiny_model_dir, data, tmp_path):
    from medmo.train.sft import run

    out = run(make_recipe(tiny_model_dir, data, tmp_path / "align", "stage=align", "max_steps=2",
                          "logging.tensorboard=false"))
    before, after = weights(tiny_model_dir), weights(out)
    changed = {k for k in before if not torch.equal(before[k], after[k])}
    assert changed and all("merger" in k for k in changed)
    assert any("deepstack_merger_list" in k for k in changed)


def test_accumulation_equals_a_bigger_batch(tiny_model_dir, data, tmp_path):
    """Loss is a token mean over the accumulation window, so 2 x 1 samples == 1 x 2 samples."""
    from medmo.train.sft import run

    common = ("packing=false", "max_steps=2", "logging.tensorboard=false")
    a = run(make_recipe(tiny_model_dir, data, tmp_path / "a", "batch_size=2", "grad_accum=1", *common))
    b = run(make_recipe(tiny_model_dir, data, tmp_path / "b", "batch_size=1", "grad_accum=2", *common))
    la, lb = [r["loss"] for r in read_metrics(a)], [r["loss"] for r in read_metrics(b)]
    assert la == pytest.approx(lb, abs=1e-5)
    wa, wb = weights(a), weights(b)
    assert all(torch.allclose(wa[k], wb[k], atol=1e-5) for k in wa)


def test_small_model_spec_builds_a_fresh_model(data, tmp_path):
    from medmo.train.sft import run

    recipe = make_recipe("{size: tiny, vocab_size: 400, text: {num_hidden_layers: 1}}", data, tmp_path / "fresh",
                         "max_steps=1", "logging.tensorboard=false")
    out = run(recipe)
    from transformers import AutoConfig

    config = AutoConfig.from_pretrained(out)
    assert 400 <= config.text_config.vocab_size <= 410  # + the text-like special tokens
    assert config.text_config.num_hidden_layers == 1
    assert (out / "init" / "config.json").is_file()


def test_cli_runs_a_recipe(tiny_model_dir, data, tmp_path, capsys):
    from medmo.cli import main

    path = tmp_path / "r.yaml"
    path.write_text(f"stage: sft\nmodel: {tiny_model_dir}\noutput_dir: {tmp_path / 'cli'}\n"
                    f"data:\n  train: [{data['train']}]\nmax_tokens: 256\nmin_pixels: 1024\nmax_pixels: 4096\n")
    assert main(["train", str(path), "max_steps=1", "logging.progress=false", "logging.tensorboard=false"]) == 0
    assert str(tmp_path / "cli") in capsys.readouterr().out
    assert main(["train", str(path), "optim.lrr=1"]) == 2
    assert "valid keys under optim" in capsys.readouterr().err


def test_grpo_stage_goes_to_the_grpo_module(monkeypatch, tmp_path):
    import medmo.train

    seen = []
    fake = types.ModuleType("medmo.train.grpo")
    fake.run = lambda recipe: seen.append(recipe) or tmp_path
    monkeypatch.setitem(sys.modules, "medmo.train.grpo", fake)
    recipe = load_recipe(None, ["stage=grpo", "data.train=[x.jsonl]"])
    assert medmo.train.run(recipe) == tmp_path and seen == [recipe]


def test_wandb_without_the_package_says_how_to_fix(tmp_path, monkeypatch):
    from medmo.train.logging import RunLogger
    from medmo.train.recipe import LoggingConfig

    monkeypatch.setitem(sys.modules, "wandb", None)  # import fails like a missing package
    with pytest.raises(ImportError, match="pip install wandb"):
        RunLogger(tmp_path, LoggingConfig(wandb=True, tensorboard=False, progress=False), total_steps=1)


def test_unreadable_images_cost_their_sample_not_the_run(tiny_model_dir, data, tmp_path):
    import dataclasses

    from medmo.model import load
    from medmo.train.collate import PaddingCollator, SampleEncoder, rope_index_of, select_records
    from medmo.train.sft import PlannedBatches

    model, processor = load(tiny_model_dir, min_pixels=1024, max_pixels=4096)
    good = [s for s in select_records([str(data["train"])]) if s.images][:2]
    bad = dataclasses.replace(good[0], id="broken",
                              images=[dataclasses.replace(good[0].images[0], path=str(tmp_path / "gone.png"))])
    encoder = SampleEncoder(processor, rope_index_of(model), max_length=256)
    batches = PlannedBatches([[[0], [1], [2]]], [good[0], bad, good[1]], encoder,
                             PaddingCollator(processor.tokenizer.pad_token_id), packing=False)
    batch = batches[0]
    assert batch["input_ids"].shape[0] == 2 and batch["image_grid_thw"].shape[0] == 2


def test_grounding_stage_trains_the_language_model_and_mergers(tiny_model_dir, data, tmp_path):
    from medmo.train.sft import run

    out = run(make_recipe(tiny_model_dir, data, tmp_path / "g", "stage=grounding", "max_steps=2",
                          "logging.tensorboard=false"))
    before, after = weights(tiny_model_dir), weights(out)
    changed = {k for k in before if not torch.equal(before[k], after[k])}
    assert any("language_model" in k for k in changed) and any("merger" in k for k in changed)
    assert not any(k.startswith("model.visual.blocks") for k in changed)


def test_a_one_step_smoke_run_takes_a_real_step(tiny_model_dir, data, tmp_path):
    # the default warmup ratio must not leave a 1-step run at learning rate 0
    from medmo.train.sft import run

    out = run(make_recipe(tiny_model_dir, data, tmp_path / "one", "max_steps=1", "optim.warmup_steps=0",
                          "optim.warmup_ratio=0.5", "logging.tensorboard=false"))
    assert read_metrics(out)[0]["lr"] == pytest.approx(2e-3)
    before, after = weights(tiny_model_dir), weights(out)
    assert any(not torch.equal(before[k], after[k]) for k in before)


def test_a_non_finite_loss_stops_the_run_naming_the_step(tiny_model_dir, data, tmp_path):
    from medmo.train.sft import NonFiniteLoss, run

    with pytest.raises(NonFiniteLoss, match="at step 1; the model was not updated"):
        run(make_recipe(tiny_model_dir, data, tmp_path / "nan", "max_steps=3", "optim.lr=1e30",
                        "optim.max_grad_norm=0", "optim.warmup_steps=0", "logging.tensorboard=false",
                        "model={size: tiny, text: {initializer_range: 1.0e+30}}"))


def test_max_tokens_that_leave_no_answer_token_are_refused(tiny_model_dir, data, tmp_path, caplog):
    from medmo.train.sft import run

    with pytest.raises(ValueError, match="no answer token within max_tokens=16"):
        run(make_recipe(tiny_model_dir, data, tmp_path / "short", "max_steps=1", "max_tokens=16"))


def test_the_final_model_is_saved_in_bfloat16_by_default(tiny_model_dir, data, tmp_path):
    import json

    from medmo.train.sft import run

    out = run(make_recipe(tiny_model_dir, data, tmp_path / "bf16", "max_steps=1", "save_dtype=bfloat16",
                          "logging.tensorboard=false"))
    assert {v.dtype for v in weights(out).values()} == {torch.bfloat16}
    assert json.loads((out / "config.json").read_text())["dtype"] == "bfloat16"
    assert load_recipe(None, ["data.train=[x]"]).save_dtype == "bfloat16"
