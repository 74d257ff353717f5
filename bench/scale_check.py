"""Do the shipped FSDP2 and ZeRO-3 configs train like one process on this machine's GPUs? One command:

    python bench/scale_check.py                # on a machine with >= 2 GPUs (NCCL, bf16)
    python bench/scale_check.py --dry-run      # anywhere: validate the configs, print every check and command
    python bench/scale_check.py --cpu          # the same checks over gloo on 2 CPU processes, fp32 (minutes)

For each of ``accelerate/fsdp2`` and ``accelerate/zero3`` it trains a tiny Qwen3-VL (``medmo.model.build_small``)
on the nano records for a few packed ``sft`` steps on N processes, and once on one process accumulating N
micro-batches (the same global batch), then checks: per-step losses agree (fp32 on CPU: 5e-5; bf16 on GPU:
2e-2), token counts agree exactly, the sharded run's checkpoint resumes to the same last loss, and the output
is one standard Qwen3-VL folder that ``medmo.model.load`` reads with no FSDP or DeepSpeed. Prints one line per
check and a JSON summary; exits 1 if any check fails.
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
                          "train_batch_size": settings["train_micro_batch_size_per_gpu"]}  # fmt: skip
                DeepSpeedConfig(filled)
                lines.append("ok   DeepSpeed's DeepSpeedConfig accepts it")
    return lines


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
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1", **({"ACCELERATE_USE_CPU": "true"} if cpu else {})}
    results: dict = {"processes": processes, "precision": precision, "tolerance": tol, "checks": {}}
    one = work / "one"
    _run([sys.executable, "-m", "medmo.cli", "train", "nano/sft", f"output_dir={one}", f"grad_accum={processes}",
          *common], env)  # fmt: skip
    ref = read_metrics(one)
    for config in CONFIGS:
        name = config.split("/")[1]
        out, resumed = work / name, work / f"{name}-resumed"
        t = time.perf_counter()
        _run(launch_cmd(config, processes, ["nano/sft", f"output_dir={out}", f"save_every={steps - 1}", *common],
                        precision), env)  # fmt: skip
        seconds = time.perf_counter() - t
        got = read_metrics(out)
        diff = max(abs(a["loss"] - b["loss"]) for a, b in zip(ref, got))
        same_tokens = [r["targets"] for r in ref] == [r["targets"] for r in got]
        ckpt = sorted((out / "checkpoints").glob("step-*"))[-1]
        _run(launch_cmd(config, processes, ["nano/sft", f"output_dir={resumed}", f"resume={ckpt}", *common],
                        precision), env)  # fmt: skip
        last = read_metrics(resumed)[-1]["loss"]
        loaded = type(load(out)[0]).__name__
        results["checks"][name] = {
            "max_loss_diff": diff, "losses_match": diff <= tol, "targets_match": same_tokens,
            "resume_diff": abs(last - got[-1]["loss"]), "resume_matches": abs(last - got[-1]["loss"]) <= tol,
            "loads_as": loaded, "seconds": round(seconds, 1),
        }  # fmt: skip
        print(f"{name}: {json.dumps(results['checks'][name])}", flush=True)
    return results


def _run(cmd: list[str], env: dict) -> None:
    done = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        sys.stderr.write(done.stdout[-3000:] + done.stderr[-6000:])
        raise SystemExit(f"failed: {' '.join(cmd)}")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--dry-run", "--quick", action="store_true", help="validate configs and print the plan only")
    p.add_argument("--cpu", action="store_true", help="2 gloo CPU processes in fp32 instead of the GPUs")
    p.add_argument("--processes", type=int, default=0, help="processes (default: the GPUs, or 2 with --cpu)")
    p.add_argument("--steps", type=int, default=4)
    p.add_argument("--work", help="keep the runs in this folder (default: a temporary one)")
    args = p.parse_args()
    for line in validate_configs():
        print(line)
    import torch

    processes = args.processes or (2 if args.cpu or not torch.cuda.is_available() else torch.cuda.device_count())
    print(f"plan: {processes} processes, {'gloo / fp32' if args.cpu else 'NCCL / bf16'}; for each of "
          f"{', '.join(CONFIGS)}: {args.steps} packed sft steps vs 1 process x grad_accum {processes} (losses, "
          "token counts), resume from the last sharded checkpoint, load the output with medmo.model.load")
    for config in CONFIGS:
        print("  " + " ".join(launch_cmd(config, processes, ["nano/sft", "output_dir=RUN", "..."],
                                         "no" if args.cpu else "bf16")))  # fmt: skip
    if args.dry_run:
        return 0
    if not args.cpu and (not torch.cuda.is_available() or torch.cuda.device_count() < 2):
        print("needs >= 2 GPUs (or --cpu)")
        return 1
    with tempfile.TemporaryDirectory() as tmp:
        results = run_checks(Path(args.work or tmp), processes, args.cpu, args.steps)
    ok = all(c["losses_match"] and c["targets_match"] and c["resume_matches"] for c in results["checks"].values())
    print(json.dumps({**results, "ok": ok}, indent=1))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
