"""Do the shipped FSDP2 and ZeRO-3 configs train like one process on this machine? One command:

    python bench/scale_check.py                # a GPU machine (NCCL, bf16): all its GPUs; on one GPU, see below
    python bench/scale_check.py --dry-run      # anywhere: validate the configs, print every check and command
    python bench/scale_check.py --cpu          # 2 gloo CPU processes in fp32 only (about 2 minutes on 2 cores)

For each of ``accelerate/fsdp2`` and ``accelerate/zero3`` it trains a tiny Qwen3-VL (``medmo.model.build_small``)
on the nano records for a few packed ``sft`` steps on N processes, and once on one process accumulating N
micro-batches (the same global batch), then checks: per-step losses agree (fp32 on CPU: 5e-5; bf16 on GPU:
2e-2), token counts agree exactly, the checkpoint was written by the sharding engine asked for (FSDP's
distributed-checkpoint shards, DeepSpeed's per-rank ZeRO partitions, one set per process), it resumes to the
same last loss, and the output is one standard Qwen3-VL folder that ``medmo.model.load`` reads with no FSDP or
DeepSpeed. Then the same for a few GRPO steps (:func:`grpo_checks`). On a machine with one GPU, sharding over one process still runs each engine's GPU path (NCCL,
bf16, DeepSpeed's CUDA accelerator, the gather on save) against the plain run, and the 2-process comparison
follows on CPU. Prints one line per check and a JSON summary; exits 1 if any check fails.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = ("accelerate/fsdp2", "accelerate/zero3")


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def launch_cmd(config: str, processes: int, args: list[str], precision: str) -> list[str]:
    from medmo import recipes

    return [sys.executable, "-m", "accelerate.commands.launch", "--config_file", str(recipes.path(config)),
            "--num_processes", str(processes), "--mixed_precision", precision, "--main_process_port", str(_port()),
            "-m", "medmo.cli", "train", *args]  # fmt: skip


def validate_configs() -> list[str]:
    """What can be checked without launching: the configs parse, the DeepSpeed JSON resolves and parses."""
    from accelerate.commands.config.config_args import ClusterConfig

    from medmo import recipes
    from medmo.train.distributed import DEEPSPEED_CONFIG_ENV, resolve_deepspeed_config

    lines = []
    for name in CONFIGS:
        config = ClusterConfig.from_yaml_file(str(recipes.path(name)))
        lines.append(f"ok   {name}: {config.distributed_type}, {config.num_processes} processes per node")
        named = (config.deepspeed_config or {}).get("deepspeed_config_file")
        if named:
            os.environ[DEEPSPEED_CONFIG_ENV] = named
            path = resolve_deepspeed_config()
            del os.environ[DEEPSPEED_CONFIG_ENV]  # the runs below get it from their launch config
            settings = json.loads(path.read_text())
            stage = settings["zero_optimization"]["stage"]
            gather = settings["zero_optimization"]["stage3_gather_16bit_weights_on_model_save"]
            lines.append(f"ok   {named} -> {path}: ZeRO stage {stage}, 16-bit gather on save {gather}")
            try:
                from deepspeed.runtime.config import DeepSpeedConfig
            except ImportError:
                lines.append("skip DeepSpeed's own parser: deepspeed is not installed (pip install -e '.[gpu]')")
            else:
                filled = {**settings, "gradient_accumulation_steps": 1, "gradient_clipping": 1.0,
                          "train_micro_batch_size_per_gpu": 1, "train_batch_size": 1}  # the "auto" values filled
                DeepSpeedConfig(filled)
                lines.append("ok   DeepSpeed's DeepSpeedConfig accepts it")
    return lines


# How each engine lays out a checkpoint's training_state/ (accelerate 1.16's save_state): one file per process.
ENGINE_FILES = {"fsdp2": ("fsdp", "pytorch_model_fsdp_0/__{rank}_0.distcp"),
                "zero3": ("deepspeed-zero3", "pytorch_model/zero_pp_rank_{rank}_mp_rank_00_model_states.pt")}  # fmt: skip


def cpu_env(config: str | None) -> dict[str, str]:
    """Environment for CPU processes, also on a GPU machine: no GPU visible; FSDP asks accelerate for CPU
    (gloo), DeepSpeed is given its CPU accelerator. ``ACCELERATE_USE_CPU`` must not reach a DeepSpeed launch:
    accelerate then trains with plain DDP instead."""
    env = {"CUDA_VISIBLE_DEVICES": "", "DS_ACCELERATOR": "cpu"}
    return {**env, "ACCELERATE_USE_CPU": "true"} if config and "fsdp" in config else env


def run_checks(work: Path, processes: int, cpu: bool, steps: int) -> dict:
    from medmo.data.synth import build_nano
    from medmo.model import build_small, load
    from medmo.train.logging import read_metrics

    precision, tol = ("no", 5e-5) if cpu else ("bf16", 2e-2)
    model = build_small(work / "tiny")
    train = build_nano(work / "data", n_train=4, n_val=1, n_test=1, image_size=64)["train"]
    common = [f"model={model}", f"data.train=[{train}]", "data.validation=[]", "data.max_samples=32",
              "min_pixels=1024", "max_pixels=4096", "max_tokens=128", "batch_size=1", f"max_steps={steps}",
              "optim.lr=2e-3", "packing=true", "logging.every=1", "logging.progress=false",
              "logging.tensorboard=false", "save_dtype=float32", f"mixed_precision='{precision}'",
              "attn_implementation=sdpa"]  # fmt: skip
    base = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    results: dict = {"processes": processes, "device": "cpu" if cpu else "cuda", "precision": precision,
                     "tolerance": tol, "checks": {}}  # fmt: skip
    one = work / "one"
    _run([sys.executable, "-m", "medmo.cli", "train", "nano/sft", f"output_dir={one}", f"grad_accum={processes}",
          *common], {**base, **(cpu_env(None) if cpu else {})})  # fmt: skip
    ref = read_metrics(one)
    for config in CONFIGS:
        name = config.split("/")[1]
        env = {**base, **(cpu_env(config) if cpu else {})}
        out, resumed = work / name, work / f"{name}-resumed"
        t = time.perf_counter()
        _run(launch_cmd(config, processes, ["nano/sft", f"output_dir={out}", f"save_every={steps - 1}", *common],
                        precision), env)  # fmt: skip
        seconds = time.perf_counter() - t
        got = read_metrics(out)
        diff = max(abs(a["loss"] - b["loss"]) for a, b in zip(ref, got))
        same_tokens = [r["targets"] for r in ref] == [r["targets"] for r in got]
        ckpt = sorted((out / "checkpoints").glob("step-*"))[-1]
        layout, pattern = ENGINE_FILES[name]
        saved = json.loads((ckpt / "training_state" / "trainer_state.json").read_text()).get("layout")
        files = [ckpt / "training_state" / pattern.format(rank=r) for r in range(processes)]
        _run(launch_cmd(config, processes, ["nano/sft", f"output_dir={resumed}", f"resume={ckpt}", *common],
                        precision), env)  # fmt: skip
        last = read_metrics(resumed)[-1]["loss"]
        loaded = type(load(out)[0]).__name__
        results["checks"][name] = {
            "max_loss_diff": diff, "losses_match": diff <= tol, "targets_match": same_tokens,
            "engine_checkpoint": saved == layout and all(f.is_file() for f in files), "layout": saved,
            "resume_diff": abs(last - got[-1]["loss"]), "resume_matches": abs(last - got[-1]["loss"]) <= tol,
            "loads_as": loaded, "seconds": round(seconds, 1),
        }  # fmt: skip
        print(f"{results['device']} x{processes} {name}: {json.dumps(results['checks'][name])}", flush=True)
    results["grpo"] = grpo_checks(work, processes, cpu, model, base)
    return results


def grpo_checks(work: Path, processes: int, cpu: bool, model: Path, base: dict) -> dict:
    """GRPO (transformers.Trainer + TRL) under each config: 3 steps on N processes x 1 prompt against 1 process
    x N prompts, from a tiny model warmed up on boxes (GRPO refuses a random one). fp32 on both devices, so
    the seeded samples agree; the rewards must match (CPU: 1e-6, GPU: 5e-2), the losses and gradient norms
    (1e-4 / 5e-2), and the step-2 checkpoint must be the engine's (on CPU the fsdp2 launch trains GRPO with
    DDP: transformers.Trainer turns FSDP on only on GPUs)."""
    from medmo.data.synth import build_nano
    from medmo.model import load
    from medmo.train.logging import read_metrics

    data = build_nano(work / "grpo-data", n_train=24, n_val=2, n_test=2, seed=1)["train"]
    warm, recipe = work / "grpo-warm", work / "grpo.yaml"
    recipe.write_text("stage: grpo\n")
    quiet = ["logging.progress=false", "logging.tensorboard=false", "save_dtype=float32", "mixed_precision='no'"]
    _run([sys.executable, "-m", "medmo.cli", "train", "nano/grounding", f"model={model}", f"output_dir={warm}",
          f"data.train=[{data}]", "data.validation=[]", "data.tasks=[grounding]", "max_steps=40", "batch_size=8",
          "packing=false", "optim.lr=3e-3", "optim.warmup_steps=0", "optim.scheduler=constant",
          "attn_implementation=sdpa", *quiet], {**base, **(cpu_env(None) if cpu else {})})  # fmt: skip
    grpo = [f"model={warm}", f"data.train=[{data}]", "data.tasks=[grounding]", f"data.max_samples={2 * processes}",
            "trl.num_generations=4", "trl.max_completion_length=24", "optim.lr=0.002", "optim.warmup_steps=0",
            "optim.scheduler=constant", "rewards.box=1.0", "rewards.format=0.2", "max_steps=3", "logging.every=1",
            *quiet]  # fmt: skip
    one = work / "grpo-one"
    _run([sys.executable, "-m", "medmo.cli", "train", str(recipe), f"output_dir={one}", f"batch_size={processes}",
          *grpo, "save_every=0"], {**base, **(cpu_env(None) if cpu else {})})  # fmt: skip
    ref = read_metrics(one)
    reward_tol, loss_tol = (1e-6, 1e-4) if cpu else (5e-2, 5e-2)
    checks = {}
    for config in CONFIGS:
        name = config.split("/")[1]
        out = work / f"grpo-{name}"
        _run(launch_cmd(config, processes, [str(recipe), f"output_dir={out}", "batch_size=1", *grpo, "save_every=2"],
                        "no"), {**base, **(cpu_env(config) if cpu else {})})  # fmt: skip
        got = read_metrics(out)
        state = out / "checkpoints" / "checkpoint-2" / "training_state"
        engine = ("deepspeed" if any(state.glob("global_step*")) else
                  "fsdp" if any(state.glob("pytorch_model_fsdp*")) else "ddp")  # fmt: skip
        expected = "ddp" if cpu and name == "fsdp2" else {"fsdp2": "fsdp", "zero3": "deepspeed"}[name]
        reward = max(abs(a["reward"] - b["reward"]) for a, b in zip(ref, got))
        loss = max(abs(a[k] - b[k]) / max(1.0, abs(a[k])) for a, b in zip(ref, got) for k in ("loss", "grad_norm"))
        checks[name] = {"steps": [r["step"] for r in got], "max_reward_diff": reward, "max_loss_diff": loss,
                        "engine": engine, "matches": len(got) == 3 and reward <= reward_tol and loss <= loss_tol
                        and engine == expected,
                        "loads_as": type(load(out)[0]).__name__}  # fmt: skip
        print(f"{'cpu' if cpu else 'cuda'} x{processes} grpo {name}: {json.dumps(checks[name])}", flush=True)
    return checks


def passed(results: dict) -> bool:
    keys = ("losses_match", "targets_match", "engine_checkpoint", "resume_matches")
    sft = all(all(check[k] for k in keys) for check in results["checks"].values())
    return sft and all(check["matches"] for check in results["grpo"].values())


def plan(gpus: int, cpu: bool, processes: int) -> list[tuple[int, bool]]:
    """The runs to make, as (processes, on CPU): every GPU; one GPU and then 2 CPU processes; or CPU only."""
    if cpu or gpus == 0:
        return [(processes or 2, True)]
    if gpus == 1 and processes in (0, 1):
        return [(1, False), (2, True)]
    return [(processes or gpus, False)]


def _run(cmd: list[str], env: dict) -> None:
    done = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        sys.stderr.write(done.stdout[-3000:] + done.stderr[-6000:])
        raise SystemExit(f"failed: {' '.join(cmd)}")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--dry-run", "--quick", action="store_true", help="validate configs and print the plan only")
    p.add_argument("--cpu", action="store_true", help="only 2 gloo CPU processes in fp32, even on a GPU machine")
    p.add_argument("--processes", type=int, default=0, help="processes (default: the GPUs, or 2 with --cpu)")
    p.add_argument("--steps", type=int, default=4)
    p.add_argument("--work", help="keep the runs in this folder (default: a temporary one)")
    args = p.parse_args()
    for line in validate_configs():
        print(line)
    import torch

    gpus = torch.cuda.device_count() if torch.cuda.is_available() else 0
    runs = plan(gpus, args.cpu, args.processes)
    for processes, cpu in runs:
        what = "CPU, gloo / fp32" if cpu else "GPU, NCCL / bf16"
        print(f"plan: {processes} processes ({what}); for each of {', '.join(CONFIGS)}: {args.steps} packed sft "
              f"steps vs 1 process x grad_accum {processes} (losses, token counts), the engine's checkpoint files, "
              "resume from the last checkpoint, load the output with medmo.model.load; then 3 GRPO steps the same "
              "way (rewards, losses, the engine's checkpoint)")  # fmt: skip
        for config in CONFIGS:
            env = " ".join(f"{k}={v!r}" for k, v in cpu_env(config).items()) + " " if cpu else ""
            cmd = launch_cmd(config, processes, ["nano/sft", "output_dir=RUN", "..."], "no" if cpu else "bf16")
            print("  " + env + " ".join(cmd))
    if args.dry_run:
        return 0
    summary = []
    with tempfile.TemporaryDirectory() as tmp:
        for processes, cpu in runs:
            work = Path(args.work or tmp) / f"{'cpu' if cpu else 'gpu'}-{processes}"
            summary.append(run_checks(work, processes, cpu, args.steps))
    ok = all(passed(r) for r in summary)
    print(json.dumps({"runs": summary, "ok": ok}, indent=1))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
