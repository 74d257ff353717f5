"""Sharded training on CPU through the shipped launch configs: FSDP2 and DeepSpeed ZeRO-3 runs of the
supervised loop equal one process with the same global batch, sharded checkpoints resume at the same and at
another process count, and the output is one standard Qwen3-VL folder.

The launches are the ones a GPU user types, with CPU overrides only: ``ACCELERATE_USE_CPU`` (gloo) for FSDP,
``--num_processes 2``, ``--mixed_precision no``.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from medmo import recipes
from medmo.train.logging import read_metrics
from medmo.train.recipe import load_recipe

ROOT = Path(__file__).parents[1]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def launch(config: str, processes: int, args: list[str], *, cwd: Path, env: dict | None = None) -> None:
    """``accelerate launch --config_file $(medmo recipes path CONFIG) -m medmo.cli train ...`` on CPU."""
    cmd = [sys.executable, "-m", "accelerate.commands.launch", "--config_file", str(recipes.path(config)),
           "--num_processes", str(processes), "--mixed_precision", "no", "--main_process_port", str(_free_port()),
           "-m", "medmo.cli", "train", *args]  # fmt: skip
    full_env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT), **(env or {})}
    done = subprocess.run(cmd, env=full_env, capture_output=True, text=True, timeout=240, cwd=cwd)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-4000:]


@pytest.fixture(scope="module")
def setup(tiny_model_dir, tmp_path_factory):
    """Records and settings shared by every run, and the one-process reference (global batch of 2)."""
    from medmo.data.synth import build_nano
    from medmo.train.sft import run

    root = tmp_path_factory.mktemp("dist")
    train = build_nano(root / "data", n_train=2, n_val=1, n_test=1, image_size=64)["train"]
    common = [f"model={tiny_model_dir}", f"data.train=[{train}]", "data.validation=[]", "data.max_samples=12",
              "min_pixels=1024", "max_pixels=4096", "max_tokens=128", "batch_size=1", "max_steps=4",
              "optim.lr=2e-3", "packing=true", "logging.every=1", "logging.progress=false",
              "logging.tensorboard=false", "save_dtype=float32", "mixed_precision=no"]  # fmt: skip
    one = run(load_recipe("nano/sft", [f"output_dir={root / 'one'}", "grad_accum=2", *common]))
    return {"root": root, "common": common, "one": one}


def _losses(out: Path) -> dict[int, float]:
    return {r["step"]: r["loss"] for r in read_metrics(out)}


def _weights(folder: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    return load_file(str(folder / "model.safetensors"))


@pytest.fixture(scope="module")
def fsdp_run(setup):
    """The sft run on 2 FSDP2 processes, with sharded checkpoints at steps 2 and 3."""
    root = setup["root"]
    launch("accelerate/fsdp2", 2, ["nano/sft", f"output_dir={root / 'fsdp'}", "save_every=1", *setup["common"]],
           cwd=root, env={"ACCELERATE_USE_CPU": "true"})
    return root / "fsdp"


@pytest.mark.slow
def test_fsdp2_sft_equals_one_process_and_a_sharded_checkpoint_resumes_on_one(setup, fsdp_run):
    from medmo.model import load

    root, common, one = setup["root"], setup["common"], setup["one"]
    ref, two = read_metrics(one), read_metrics(fsdp_run)
    assert [r["step"] for r in two] == [1, 2, 3, 4] and [r["targets"] for r in two] == [r["targets"] for r in ref]
    assert [r["loss"] for r in two] == pytest.approx([r["loss"] for r in ref], abs=1e-5)

    ckpt = fsdp_run / "checkpoints" / "step-0000002"
    shards = ckpt / "training_state" / "pytorch_model_fsdp_0"
    assert sorted(p.name for p in shards.iterdir() if p.suffix == ".distcp") == ["__0_0.distcp", "__1_0.distcp"]
    assert (ckpt / "training_state" / "optimizer_0").is_dir()  # sharded optimizer state
    assert (ckpt / "config.json").is_file() and (ckpt / "model.safetensors").is_file()  # and a standard folder
    state = json.loads((ckpt / "training_state" / "trainer_state.json").read_text())
    assert state["world_size"] == 2 and state["step_batches"] == 2 and state["layout"] == "fsdp"

    # the final model: one consolidated standard folder, same weights, loadable without FSDP
    a, b = _weights(one), _weights(fsdp_run)
    assert set(a) == set(b) and "lm_head.weight" not in b  # the tied head is saved once, as a release has it
    assert all(torch.allclose(a[k], b[k], atol=1e-5) for k in a)
    model, _ = load(fsdp_run)
    assert type(model).__name__ == "Qwen3VLForConditionalGeneration"
    assert json.loads((fsdp_run / "config.json").read_text())["architectures"] == [
        "Qwen3VLForConditionalGeneration"]

    # a run killed after the step-2 or step-3 save resumes exactly on 1 process accumulating 2 micro-batches
    # (after step 3, accelerate's restored micro-batch count, 3, is odd for grad_accum 2)
    for saved in (2, 3):
        out = root / f"resume-1-from-{saved}"
        launch("accelerate/fsdp2", 1, ["nano/sft", f"output_dir={out}", f"resume={fsdp_run / 'checkpoints'}/"
               f"step-{saved:07d}", "grad_accum=2", *common], cwd=root, env={"ACCELERATE_USE_CPU": "true"})  # fmt: skip
        _same_tail(out, one, first=saved + 1)


def _same_tail(resumed: Path, full: Path, first: int = 3) -> None:
    got, want = _losses(resumed), _losses(full)
    assert sorted(got) == list(range(first, 5))
    assert [got[s] for s in got] == pytest.approx([want[s] for s in got], abs=1e-5)
    a, c = _weights(full), _weights(resumed)
    assert all(torch.allclose(a[k], c[k], atol=1e-5) for k in a)


@pytest.mark.slow
def test_the_slurm_script_resumes_the_sharded_checkpoint_on_two_nodes(setup, fsdp_run, tmp_path):
    """scripts/slurm/train.sbatch with srun faked as two nodes on this machine: each node runs `accelerate
    launch --num_machines 2 --machine_rank $SLURM_NODEID --main_process_ip HEAD`, one process per node, the
    README's multi-node command; they resume the 2-process checkpoint at the same world size."""
    shims = tmp_path / "bin"
    shims.mkdir()
    _shim(shims / "scontrol", 'echo 127.0.0.1; echo 127.0.0.1')
    _shim(shims / "srun", 'shift; (SLURM_NODEID=0 "$@") & a=$!; (SLURM_NODEID=1 "$@") & b=$!; wait $a && wait $b')
    _shim(shims / "accelerate", f'shift; exec {sys.executable} -m accelerate.commands.launch "$@"')
    _shim(shims / "medmo", f'exec {sys.executable} -m medmo.cli "$@"')
    out = setup["root"] / "resume-2"
    env = {**os.environ, "PATH": f"{shims}:{os.environ['PATH']}", "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1",
           "ACCELERATE_USE_CPU": "true", "SLURM_NNODES": "2", "SLURM_GPUS_ON_NODE": "1",
           "SLURM_JOB_NODELIST": "node[1-2]", "MEDMO_ACCELERATE": "accelerate/fsdp2", "MEDMO_PORT": str(_free_port()),
           "MEDMO_LAUNCH_ARGS": "--mixed_precision no"}  # fmt: skip
    ckpt = fsdp_run / "checkpoints" / "step-0000002"
    done = subprocess.run(["bash", str(ROOT / "scripts" / "slurm" / "train.sbatch"), "nano/sft", f"output_dir={out}",
                           f"resume={ckpt}", *setup["common"]], env=env, capture_output=True, text=True, timeout=240,
                          cwd=setup["root"])  # fmt: skip
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-4000:]
    _same_tail(out, setup["one"])


def _shim(path: Path, body: str) -> None:
    path.write_text(f"#!/bin/bash\n{body}\n")
    path.chmod(0o755)


@pytest.mark.slow
def test_fsdp2_align_equals_one_process(setup):
    """align trains only the mergers: frozen and trainable parameters share FSDP units."""
    from medmo.train.sft import run

    root, common = setup["root"], setup["common"]
    args = [*common, "max_steps=2"]
    launch("accelerate/fsdp2", 2, ["nano/align", f"output_dir={root / 'align2'}", *args], cwd=root,
           env={"ACCELERATE_USE_CPU": "true"})
    one = run(load_recipe("nano/align", [f"output_dir={root / 'align1'}", "grad_accum=2", *args]))
    assert [r["loss"] for r in read_metrics(root / "align2")] == pytest.approx(
        [r["loss"] for r in read_metrics(one)], abs=1e-5)
    a, b = _weights(one), _weights(root / "align2")
    assert all(torch.allclose(a[k], b[k], atol=1e-5) for k in a)


def test_text_only_micro_batches_get_a_vision_filler_that_changes_nothing(tiny_model):
    """Sharded runs need every process to run the vision tower; the filler adds no target and no gradient."""
    from medmo.train.collate import IGNORE_INDEX, SampleEncoder, rope_index_of
    from medmo.train.packing import PackingCollator
    from medmo.train.sft import token_losses

    model, processor = tiny_model
    encoder = SampleEncoder(processor, rope_index_of(model), max_length=256)
    filler = encoder.filler()
    assert filler.pixel_values is not None and (filler.labels == IGNORE_INDEX).all()
    text = _text_item(encoder)
    collate = PackingCollator(processor.tokenizer.pad_token_id)
    plain, padded = collate([[text]]), collate([[text, filler]])
    assert "pixel_values" not in plain and "pixel_values" in padded
    model.zero_grad()
    la, _ = token_losses(model, plain)
    la.sum().backward()
    ga = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
    model.zero_grad()
    lb, _ = token_losses(model, padded)
    lb.sum().backward()
    assert torch.allclose(la, lb, atol=1e-6)
    for n, p in model.named_parameters():
        if ".visual." in n:
            assert p.grad is None or torch.count_nonzero(p.grad) == 0, n  # ran, but learned nothing
        elif n in ga:
            assert torch.allclose(ga[n], p.grad, rtol=1e-4, atol=1e-5), n  # a wider row: float rounding only
    model.zero_grad()


def _text_item(encoder):
    from medmo.records import Sample

    sample = Sample.from_dict({"id": "t1", "source": "test", "split": "train", "task": "text_qa", "images": [],
                               "question": "Which imaging modality uses radio waves?", "answer": "MRI"})
    return encoder(sample)


def test_the_zero3_config_names_its_deepspeed_settings_from_any_directory(tmp_path, monkeypatch):
    """One copy of the DeepSpeed settings (deepspeed/zero3.json), found wherever the run starts."""
    from accelerate.commands.config.config_args import ClusterConfig
    from accelerate.utils import DeepSpeedPlugin

    from medmo.train.distributed import DEEPSPEED_CONFIG_ENV, resolve_deepspeed_config

    config = ClusterConfig.from_yaml_file(str(recipes.path("accelerate/zero3")))
    named = config.deepspeed_config["deepspeed_config_file"]
    assert not Path(named).is_absolute()
    monkeypatch.chdir(tmp_path)  # a run folder far from the package
    monkeypatch.setenv(DEEPSPEED_CONFIG_ENV, named)  # what `accelerate launch` hands each process
    assert resolve_deepspeed_config() == recipes.path("deepspeed/zero3").resolve()
    monkeypatch.setenv("ACCELERATE_GRADIENT_CLIPPING", "0.5")
    plugin = DeepSpeedPlugin()  # reads the environment, as in a launched process
    assert plugin.zero_stage == 3 and plugin.hf_ds_config.config["gradient_clipping"] == 0.5
    monkeypatch.setenv(DEEPSPEED_CONFIG_ENV, "deepspeed/zero33")
    with pytest.raises(FileNotFoundError, match="deepspeed/zero3"):
        resolve_deepspeed_config()


def test_deepspeed_accepts_the_zero3_config():
    """DeepSpeed's own parser reads the shipped JSON (its "auto" values filled as accelerate fills them)."""
    pytest.importorskip("deepspeed", reason="DeepSpeed is in the gpu and test extras")
    from deepspeed.runtime.config import DeepSpeedConfig

    settings = json.loads(recipes.path("deepspeed/zero3").read_text())
    # every batch size is "auto": the supervised loop fills the recipe's micro-batch, transformers.Trainer
    # (GRPO) its per-device batch of prompts x generations, which a fixed number would contradict
    assert settings["train_micro_batch_size_per_gpu"] == settings["train_batch_size"] == "auto"
    filled = {**settings, "bf16": {"enabled": True}, "fp16": {"enabled": False}, "gradient_accumulation_steps": 4,
              "gradient_clipping": 1.0, "train_micro_batch_size_per_gpu": 2, "train_batch_size": 4 * 2}
    parsed = DeepSpeedConfig(filled)  # one process: the batch sizes must agree for world size 1
    assert parsed.zero_optimization_stage == 3 and parsed.bfloat16_config.enabled
    assert parsed.zero_config.gather_16bit_weights_on_model_save  # the final save gathers a full 16-bit model
    assert parsed.gradient_accumulation_steps == 4


@pytest.mark.slow
def test_zero3_on_cpu_equals_one_process_and_saves_a_full_model(setup):
    """DeepSpeed's CPU accelerator (gloo) runs ZeRO-3 here: parameters, gradients and optimizer states sharded
    over 2 processes, launched from a folder that is not the package's, and gathered into one folder."""
    pytest.importorskip("deepspeed", reason="DeepSpeed is in the gpu and test extras")
    from medmo.model import load

    root, common, one = setup["root"], setup["common"], setup["one"]
    elsewhere = root / "elsewhere"
    elsewhere.mkdir()
    launch("accelerate/zero3", 2, ["nano/sft", f"output_dir={root / 'zero3'}", *common], cwd=elsewhere)
    ref, two = read_metrics(one), read_metrics(root / "zero3")
    assert [r["targets"] for r in two] == [r["targets"] for r in ref]
    # DeepSpeed reduces and clips in its own order: equal to ~1e-5 (FSDP2: 1e-6)
    assert [r["loss"] for r in two] == pytest.approx([r["loss"] for r in ref], abs=5e-5)
    a, b = _weights(one), _weights(root / "zero3")
    assert set(a) == set(b)  # the release names (not renamed by a ZeRO-3 load) and the tied head once
    assert all(torch.allclose(a[k], b[k], atol=1e-4) for k in a)
    assert all(v.numel() > 0 for v in b.values())  # gathered: no empty ZeRO-3 placeholders
    model, _ = load(root / "zero3")
    assert sum(p.numel() for p in model.parameters()) == sum(v.numel() for v in a.values())


@pytest.mark.slow
def test_the_gpu_check_script_runs_its_checks_on_cpu(tmp_path):
    """bench/scale_check.py --cpu: the GPU check's own launches, comparisons and engine checks for the supervised
    loop and GRPO, over gloo (--dry-run runs in tests/test_bench.py)."""
    done = subprocess.run([sys.executable, str(ROOT / "bench" / "scale_check.py"), "--cpu", "--work", str(tmp_path)],
                          cwd=tmp_path, env={**os.environ, "PYTHONPATH": str(ROOT)}, capture_output=True, text=True,
                          timeout=600)  # fmt: skip
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    summary = json.loads(done.stdout[done.stdout.index("{\n"):])
    assert summary["ok"] and [r["processes"] for r in summary["runs"]] == [2]
    checks = summary["runs"][0]["checks"]
    assert checks["fsdp2"]["layout"] == "fsdp" and checks["zero3"]["layout"] == "deepspeed-zero3"
    assert all(c["engine_checkpoint"] and c["resume_diff"] <= 5e-5 for c in checks.values())
    assert (tmp_path / "cpu-2" / "zero3" / "checkpoints" / "step-0000003" / "training_state" / "pytorch_model").is_dir()
    grpo = summary["runs"][0]["grpo"]
    assert grpo["zero3"]["engine"] == "deepspeed" and grpo["fsdp2"]["engine"] == "ddp"  # Trainer: FSDP on GPUs only
    assert all(c["matches"] and c["steps"] == [1, 2, 3] for c in grpo.values())


def test_the_gpu_check_plans_a_one_gpu_machine_as_one_gpu_process_then_two_on_cpu():
    import importlib.util

    spec = importlib.util.spec_from_file_location("scale_check", ROOT / "bench" / "scale_check.py")
    scale_check = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(scale_check)
    assert scale_check.plan(gpus=1, cpu=False, processes=0) == [(1, False), (2, True)]
    assert scale_check.plan(gpus=8, cpu=False, processes=0) == [(8, False)]
    assert scale_check.plan(gpus=8, cpu=True, processes=0) == [(2, True)]
    assert scale_check.plan(gpus=0, cpu=False, processes=0) == [(2, True)]
    # a DeepSpeed launch must not see ACCELERATE_USE_CPU: accelerate would then train with plain DDP
    assert "ACCELERATE_USE_CPU" not in scale_check.cpu_env("accelerate/zero3")
    assert scale_check.cpu_env("accelerate/fsdp2")["ACCELERATE_USE_CPU"] == "true"
