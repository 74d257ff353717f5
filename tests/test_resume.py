"""A run killed after a checkpoint and resumed follows the same loss curve as an uninterrupted run."""

from __future__ import annotations

import json

import pytest
import torch

from medmo.train.logging import read_metrics
from medmo.train.recipe import load_recipe


class Killed(Exception):
    pass


def recipe(model_dir, train, out, *extra):
    return load_recipe(None, [
        f"model={model_dir}", f"output_dir={out}", f"data.train=[{train}]", "data.max_samples=10",
        "min_pixels=1024", "max_pixels=4096", "max_tokens=600", "batch_size=1", "max_steps=4",
        "optim.lr=2e-3", "optim.warmup_steps=2", "save_every=3", "keep_checkpoints=1",
        "logging.progress=false", "logging.tensorboard=false", *extra,
    ])


def test_resume_continues_the_same_curve(tiny_model_dir, tmp_path):
    from safetensors.torch import load_file

    from medmo.data.synth import build_nano
    from medmo.train.checkpoint import latest_checkpoint, list_checkpoints
    from medmo.train.sft import run

    train = build_nano(tmp_path / "data", n_train=2, n_val=1, n_test=1, image_size=64)["train"]
    full = run(recipe(tiny_model_dir, train, tmp_path / "full"))

    def kill_at_4(state, metrics):
        if state.step == 4:  # one step past the step-3 checkpoint: that step's work is lost
            raise Killed

    with pytest.raises(Killed):
        run(recipe(tiny_model_dir, train, tmp_path / "cut"), on_step=kill_at_4)
    ckpt = latest_checkpoint(tmp_path / "cut")
    assert ckpt.name == "step-0000003" and list_checkpoints(tmp_path / "cut") == [ckpt]
    for name in ("model.safetensors", "optimizer.bin", "random_states_0.pkl", "custom_checkpoint_0.pkl"):
        assert (ckpt / "training_state" / name).is_file(), name
    for name in ("config.json", "model.safetensors", "preprocessor_config.json", "chat_template.json"):
        assert (ckpt / name).is_file(), name  # the checkpoint is a standard model folder too
    state = json.loads((ckpt / "training_state" / "trainer_state.json").read_text())
    # 10 samples pack into 2 rows per epoch: after 3 steps the stream is 1 row into epoch 1
    assert (state["step"], state["epoch"], state["offset"]) == (3, 1, 1)
    assert state["layout"] == "full"  # whole-model files: any process count can resume them
    assert [r["step"] for r in read_metrics(tmp_path / "cut")] == [1, 2, 3, 4]

    resumed = run(recipe(tiny_model_dir, train, tmp_path / "cut", "resume=true"))
    a, b = read_metrics(full), read_metrics(resumed)
    assert [r["step"] for r in b] == list(range(1, 5))
    assert [r["loss"] for r in b] == pytest.approx([r["loss"] for r in a], abs=1e-6)
    assert [r["lr"] for r in b] == pytest.approx([r["lr"] for r in a], abs=1e-12)
    wa, wb = load_file(str(full / "model.safetensors")), load_file(str(resumed / "model.safetensors"))
    assert all(torch.allclose(wa[k], wb[k], atol=1e-6) for k in wa)


def test_resume_from_a_missing_checkpoint_is_clear(tmp_path):
    from medmo.train.checkpoint import resolve_resume

    assert resolve_resume(True, tmp_path) is None  # nothing yet: a fresh start
    with pytest.raises(FileNotFoundError, match="no checkpoint"):
        resolve_resume(str(tmp_path / "nope"), tmp_path)


def test_a_fresh_run_sets_old_checkpoints_aside(tmp_path):
    from medmo.train.checkpoint import latest_checkpoint, set_aside_stale

    old = tmp_path / "checkpoints" / "step-0000009"
    (old / "training_state").mkdir(parents=True)
    (old / "training_state" / "trainer_state.json").write_text("{}")
    assert latest_checkpoint(tmp_path) == old
    moved = set_aside_stale(tmp_path)
    assert moved.name == "checkpoints.stale-1" and (moved / "step-0000009").is_dir()
    assert latest_checkpoint(tmp_path) is None and set_aside_stale(tmp_path) is None


def test_a_resume_the_saved_state_cannot_serve_is_refused_before_loading():
    """FSDP shards, DeepSpeed partitions and whole files need their own loaders; ZeRO keeps its process count."""
    from medmo.train.checkpoint import TrainState, check_layout

    fsdp = TrainState(step=2, world_size=2, layout="fsdp")
    check_layout(fsdp, "fsdp", 1)  # distributed-checkpoint shards reshard on load
    with pytest.raises(ValueError, match=r"ckpt holds a fsdp training state and this run's is full.*accelerate/fsdp2"
                                         r".*model=ckpt"):  # fmt: skip
        check_layout(fsdp, "full", 1, where="ckpt")
    zero = TrainState(step=2, world_size=2, layout="deepspeed-zero3")
    check_layout(zero, "deepspeed-zero3", 2)
    with pytest.raises(ValueError, match=r"DeepSpeed on 2 processes and this run has 1.*--num_processes 2.*model="):
        check_layout(zero, "deepspeed-zero3", 1)
    with pytest.raises(ValueError, match="ZeRO stage 3"):
        check_layout(zero, "fsdp", 2)
    check_layout(TrainState(step=2, world_size=2), "deepspeed-zero3", 1)  # saved before layouts were recorded
