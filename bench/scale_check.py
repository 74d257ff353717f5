"""Do the shipped FSDP2 and ZeRO-3 configs train like one process on this machine? One command:

    python bench/scale_check.py                # a GPU machine (NCCL, bf16): all its GPUs; on one GPU, see below
    python bench/scale_check.py --dry-run      # anywhere: validate the configs, print every check and command
    python bench/scale_check.py --cpu          # 2 gloo CPU processes in fp32 only (about a minute)

For each of ``accelerate/fsdp2`` and ``accelerate/zero3`` it trains a tiny Qwen3-VL (``medmo.model.build_small``)
on the nano records for a few packed ``sft`` steps on N processes, and once on one process accumulating N
micro-batches (the same global batch), then checks: per-step losses agree (fp32 on CPU: 5e-5; bf16 on GPU:
2e-2), token counts agree exactly, the checkpoint was written by the sharding engine asked for (FSDP's
distributed-checkpoint shards, DeepSpeed's per-rank ZeRO partitions, one set per process), it resumes to the
same last loss, and the output is one standard Qwen3-VL folder that ``medmo.model.load`` reads with no FSDP or
DeepSpeed. On a machine with one GPU, sharding over one process still runs each engine's GPU path (NCCL,
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
    return results


def passed(results: dict) -> bool:
    keys = ("losses_match", "targets_match", "engine_checkpoint", "resume_matches")
    return all(all(check[k] for k in keys) for check in results["checks"].values())


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
              "resume from the last checkpoint, load the output with medmo.model.load")  # fmt: skip
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
