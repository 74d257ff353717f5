"""Training tokens/s: MedMO's packed SFT loop against TRL's SFTTrainer with padding.

Both train the same nano-size Qwen3-VL (random init) with assistant-only loss on the same records, a
mix MedMO's data looks like: many one-word VQA answers (short sequences) and some long reports. TRL
cannot pack vision-language data (its packing and padding-free modes refuse VLMs), so it pads every
batch to its longest sample; the MedMO loop packs samples best-fit-decreasing into rows of
``--max-tokens``. Throughput counts real (non-padding) tokens, prompt and image tokens included, and
excludes each trainer's first step (warm-up). Both run in this one process, one after the other, and
are reported per wall second and per CPU second (the latter stays meaningful on a shared machine).

    .venv/bin/python bench/packing_bench.py            # prints the figures; target: >= 1.5x
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import random
import tempfile
import time
from pathlib import Path

FINDINGS = [
    "The cardiomediastinal silhouette is within normal limits.", "There is no focal consolidation.",
    "No pleural effusion or pneumothorax is seen.", "Mild degenerative changes of the thoracic spine.",
    "A small nodular opacity projects over the right upper zone.", "The hila are unremarkable.",
    "Streaky atelectasis at the left lung base.", "Surgical clips in the right upper quadrant.",
    "The osseous structures are intact without acute fracture.", "Lung volumes are low with crowding.",
]


def make_records(folder: Path, n: int, long_fraction: float, seed: int = 0) -> Path:
    """Nano images with short closed-VQA answers, plus a share of long (~250-token) reports."""
    from medmo.data.io import read_records, write_jsonl
    from medmo.data.synth import build_nano

    rng = random.Random(seed)
    paths = build_nano(folder / "nano", n_train=max(4, n // 5), n_val=1, n_test=1, image_size=128)
    pool = list(read_records(paths["train"]))
    vqa = [s for s in pool if s.task == "closed_vqa"]
    reports = [s for s in pool if s.task == "report"]
    out = []
    for i in range(n):
        if rng.random() < long_fraction:
            s = reports[i % len(reports)]
            s.findings, s.answer = " ".join(rng.choice(FINDINGS) for _ in range(24)), ""
            s.impression = "No acute cardiopulmonary process."
        else:
            s = vqa[i % len(vqa)]
        out.append(dataclasses.replace(s, id=f"{s.id}-{i}"))
    return write_jsonl(out, folder / "bench.jsonl")


def bench_medmo(model_dir: Path, records: Path, out: Path, args: argparse.Namespace) -> dict:
    from medmo.train.logging import read_metrics
    from medmo.train.recipe import load_recipe
    from medmo.train.sft import run

    stamps: list[tuple[float, float]] = []
    recipe = load_recipe(None, [
        f"model={model_dir}", f"output_dir={out}", f"data.train=[{records}]", "stage=sft", "packing=true",
        f"max_tokens={args.max_tokens}", f"batch_size={args.rows}", "epochs=1", "optim.lr=1e-4",
        "optim.warmup_steps=0", "min_pixels=4096", "max_pixels=16384", "logging.progress=false",
        "logging.tensorboard=false", "attn_implementation=sdpa",
    ])
    run(recipe, on_step=lambda state, metrics: stamps.append((time.perf_counter(), time.process_time())))
    rows = read_metrics(out)
    return _figures(len(rows), rows[-1]["num_tokens"] - rows[0]["num_tokens"], stamps)


def _figures(steps: int, tokens: int, stamps: list[tuple[float, float]]) -> dict:
    """Tokens per wall second and per CPU second (all threads), from the end of step 1 to the last step.

    On a shared machine wall time swings with other people's load; CPU time measures the work done.
    """
    if len(stamps) < 2:
        raise SystemExit(f"only {len(stamps)} optimizer step(s) ran: figures need two or more; "
                         "raise --samples or lower --rows / --trl-batch")
    wall, cpu = stamps[-1][0] - stamps[0][0], stamps[-1][1] - stamps[0][1]
    return {"steps": steps, "tokens": tokens, "seconds": round(wall, 2), "cpu_seconds": round(cpu, 2),
            "tokens_per_s": round(tokens / wall, 1), "tokens_per_cpu_s": round(tokens / cpu, 1)}


def bench_trl(model_dir: Path, records: Path, out: Path, args: argparse.Namespace) -> dict:
    from datasets import Dataset
    from transformers import TrainerCallback
    from trl import SFTConfig, SFTTrainer

    from medmo.data.images import load_image
    from medmo.data.io import read_records
    from medmo.model import load
    from medmo.prompts import messages

    model, processor = load(model_dir, dtype="float32", attn_implementation="sdpa", min_pixels=4096,
                            max_pixels=16384)
    samples = list(read_records(records))
    ds = Dataset.from_list([{"messages": messages(s), "images": [load_image(r.path) for r in s.images]}
                            for s in samples])
    stamps: list[tuple[float, float]] = []

    class Clock(TrainerCallback):
        def on_step_end(self, *a, **k):
            stamps.append((time.perf_counter(), time.process_time()))

    config = SFTConfig(output_dir=str(out), per_device_train_batch_size=args.trl_batch, num_train_epochs=1,
                       learning_rate=1e-4, lr_scheduler_type="cosine", logging_steps=1, save_strategy="no",
                       report_to="none", use_cpu=True, assistant_only_loss=True, max_length=None, seed=0,
                       dataloader_num_workers=0, bf16=False, disable_tqdm=True)
    trainer = SFTTrainer(model=model, args=config, train_dataset=ds, processing_class=processor,
                         callbacks=[Clock()])
    trainer.train()
    counts = [h["num_tokens"] for h in trainer.state.log_history if "num_tokens" in h]
    return _figures(len(counts), int(counts[-1] - counts[0]), stamps)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--samples", type=int, default=96)
    p.add_argument("--long-fraction", type=float, default=0.25)
    p.add_argument("--max-tokens", type=int, default=1024, help="packed row budget (MedMO)")
    p.add_argument("--rows", type=int, default=3, help="packed rows per micro-batch (MedMO)")
    p.add_argument("--trl-batch", type=int, default=8, help="samples per padded batch (TRL)")
    p.add_argument("--quick", action="store_true", help="a seconds-long smoke run of the same code (CI); figures mean nothing")
    args = p.parse_args()
    if args.quick:
        args.samples, args.trl_batch, args.max_tokens, args.rows = 24, 4, 512, 1

    import torch

    from medmo.model import build_small

    torch.manual_seed(0)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        model_dir = build_small(tmp / "model", size="tiny" if args.quick else "nano")
        records = make_records(tmp, args.samples, args.long_fraction)
        trl = bench_trl(model_dir, records, tmp / "trl", args)
        ours = bench_medmo(model_dir, records, tmp / "medmo", args)
    result = {"threads": torch.get_num_threads(), "samples": args.samples, "long_fraction": args.long_fraction,
              "trl_padding": trl, "medmo_packing": ours}
    for key in ("tokens_per_s", "tokens_per_cpu_s"):
        result[f"speedup_{key}"] = round(ours[key] / trl[key], 2)
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
