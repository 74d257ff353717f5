"""Two CPU processes (gloo) through accelerate train like one process accumulating their two batches."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from medmo.train.logging import read_metrics
from medmo.train.recipe import load_recipe


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_two_processes_match_one_with_accumulation(tiny_model_dir, tmp_path):
    from medmo.data.synth import build_nano
    from medmo.train.sft import run

    paths = build_nano(tmp_path / "data", n_train=2, n_val=1, n_test=1, image_size=64)
    # packed rows with the nano recipes' attention, and a validation pass (built on the wrapped model)
    common = [f"model={tiny_model_dir}", f"data.train=[{paths['train']}]", "data.max_samples=12",
              f"data.validation=[{paths['validation']}]", "eval_every=2", "packing=true",
              "attn_implementation=sdpa_packed", "min_pixels=1024", "max_pixels=4096", "max_tokens=128",
              "batch_size=1", "max_steps=2", "optim.lr=2e-3", "logging.progress=false", "logging.tensorboard=false"]
    path = tmp_path / "recipe.yaml"
    path.write_text("stage: sft\n")
    # torchrun is the launcher `accelerate launch --multi_gpu` uses; ACCELERATE_USE_CPU selects gloo on CPU.
    env = {**os.environ, "ACCELERATE_USE_CPU": "true", "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port",
           str(_free_port()), "-m", "medmo.cli", "train", str(path), f"output_dir={tmp_path / 'ddp'}", *common]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120, cwd=Path(__file__).parents[1])
    assert done.returncode == 0, done.stderr[-3000:]
    two = read_metrics(tmp_path / "ddp")

    # rank r takes micro-batches r, r+2, ...: step k of 2 processes = micro-batches 2k, 2k+1 of one
    one = read_metrics(run(load_recipe(path, [f"output_dir={tmp_path / 'one'}", "grad_accum=2", *common])))
    assert [r["step"] for r in two] == [1, 2]
    assert [r["targets"] for r in two] == [r["targets"] for r in one]
    assert [r["loss"] for r in two] == pytest.approx([r["loss"] for r in one], abs=1e-5)
    assert (tmp_path / "ddp" / "model.safetensors").is_file()
