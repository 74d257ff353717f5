"""Does GRPO raise the held-out box reward? A nano grounding run on CPU, before/after.

    .venv/bin/python bench/grpo_nano.py [--size tiny|nano] [--sft-steps 300] [--grpo-steps 40]

1. builds the nano synthetic dataset (``medmo.data.synth``) and keeps its grounding records;
2. warm-starts a random tiny/nano Qwen3-VL with a short supervised run (plain AdamW over
   ``medmo.train.collate``'s encoder, assistant tokens only) so the policy already answers with boxes;
3. scores greedy answers on held-out test images with the box reward (Hungarian-matched GIoU,
   ``medmo.train.rewards.box_reward``) and mean IoU;
4. runs the ``grpo`` stage (``medmo.train.grpo.run``: TRL GRPOTrainer, box + format rewards, DAPO clip
   0.15/0.25) from the warm start and scores the same held-out images again.

Prints one line per phase and a final JSON summary.

Measured on a shared 2-core CPU (60 held-out grounding prompts, 400 training images, GRPO: 4 prompts x 8
samples per step, lr 2e-4 constant, box + 0.2 x format reward):

========  ==========  =====================  =====================  ==========================
model     SFT steps   held-out box reward    held-out mean IoU      GRPO time (40 steps)
========  ==========  =====================  =====================  ==========================
tiny      300         0.243 -> 0.262         0.038 -> 0.040         11 s
nano      400         0.133 -> 0.498         0.018 -> 0.063         39 s
========  ==========  =====================  =====================  ==========================

The training-batch box reward of the nano run rose from 0.19 (first 10 steps) to 0.43 (last 10), and
its numbers repeat exactly on a second run (same seeds). The short warm start leaves boxes far from
their targets (negative GIoU); GRPO moves them towards the right place and size, which GIoU rewards
before the boxes overlap (IoU).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "2")


def warm_start(model_dir: Path, train_jsonl: Path, out: Path, steps: int, lr: float, seed: int) -> Path:
    """Supervised warm start on grounding records; saves a ``medmo.model.load``-able folder."""
    import torch

    from medmo.data.io import read_records
    from medmo.model import load, save
    from medmo.train.collate import PaddingCollator, SampleEncoder, rope_index_of

    model, processor = load(model_dir, dtype="float32")
    records = [r for r in read_records(train_jsonl) if r.task == "grounding"]
    encode = SampleEncoder(processor, rope_index_of(model), max_length=512)
    items = [encode(r) for r in records]
    collate = PaddingCollator(processor.tokenizer.pad_token_id)
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=lr)
    gen = torch.Generator().manual_seed(seed)
    model.train()
    for step in range(steps):
        idx = torch.randint(len(items), (16,), generator=gen).tolist()
        batch = collate([items[i] for i in idx])
        batch.pop("seq_ids", None)
        loss = model(**batch).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        opt.zero_grad()
    return save(model.eval(), processor, out)


def held_out(model_dir: Path, test_jsonl: Path, n: int) -> dict[str, float]:
    """Greedy answers on ``n`` held-out grounding prompts: mean box reward, mean IoU, format rate."""
    from medmo.answers import parse_boxes
    from medmo.boxes import match_boxes
    from medmo.data.images import load_image
    from medmo.data.io import read_records
    from medmo.model import load
    from medmo.model.generate import generate
    from medmo.prompts import messages
    from medmo.train.rewards import box_reward, format_reward, gold_for

    model, processor = load(model_dir, dtype="float32")
    test = [r for r in read_records(test_jsonl) if r.task == "grounding"][:n]
    outs = generate(model, processor, [messages(s, with_answer=False) for s in test],
                    [[load_image(s.images[0].path)] for s in test], max_new_tokens=48, batch_size=16)  # fmt: skip
    golds = [gold_for(s)["boxes"] for s in test]
    box = [box_reward(o, g) for o, g in zip(outs, golds)]
    ious = []
    for o, g in zip(outs, golds):
        m = match_boxes([p.box for p in parse_boxes(o)], g, metric="iou")
        ious.append(sum(m.scores) / max(len(g), len(m.pairs) + m.unmatched_pred, 1))
    fmt = [format_reward("grounding", o) for o in outs]
    n = len(test)
    return {"box_reward": sum(box) / n, "iou": sum(ious) / n, "format": sum(fmt) / n, "n": n}


def grpo(model_dir: Path, train_jsonl: Path, out: Path, steps: int, lr: float, seed: int) -> Path:
    from medmo.train import grpo as grpo_stage
    from medmo.train.recipe import load_recipe

    recipe = load_recipe(None, [
        "stage=grpo", f"model={model_dir}", f"output_dir={out}", f"data.train=[{train_jsonl}]",
        "data.tasks=[grounding]", f"max_steps={steps}", "batch_size=4", "grpo.num_generations=8",
        "grpo.max_completion_length=40", f"optim.lr={lr!r}", "optim.warmup_steps=0", "optim.scheduler=constant",
        "grpo.reward_weights={box: 1.0, format: 0.2}", "logging.progress=false", "logging.tensorboard=false",
        f"seed={seed}",
    ])  # fmt: skip
    return grpo_stage.run(recipe)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--size", choices=("tiny", "nano"), default="tiny")
    p.add_argument("--train-images", type=int, default=400)
    p.add_argument("--test-prompts", type=int, default=64)
    p.add_argument("--sft-steps", type=int, default=300)
    p.add_argument("--sft-lr", type=float, default=3e-3)
    p.add_argument("--grpo-steps", type=int, default=40)
    p.add_argument("--grpo-lr", type=float, default=2e-4)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--work", type=Path, default=None, help="work folder (default: a temporary one)")
    args = p.parse_args(argv)

    from medmo.data.synth import build_nano
    from medmo.model import build_tiny

    work = args.work or Path(tempfile.mkdtemp(prefix="grpo_nano_"))
    t0 = time.perf_counter()
    paths = build_nano(work / "data", n_train=args.train_images, n_val=2, n_test=max(2, args.test_prompts * 3 // 2),
                       seed=args.seed)  # fmt: skip
    base = build_tiny(work / "init", size=args.size, seed=args.seed)
    sft = warm_start(base, paths["train"], work / "sft", args.sft_steps, args.sft_lr, args.seed)
    t_sft = time.perf_counter() - t0
    before = held_out(sft, paths["test"], args.test_prompts)
    print(f"after SFT warm start ({args.sft_steps} steps, {t_sft:.0f} s): {before}", flush=True)
    t1 = time.perf_counter()
    rl = grpo(sft, paths["train"], work / "grpo", args.grpo_steps, args.grpo_lr, args.seed)
    t_rl = time.perf_counter() - t1
    after = held_out(rl, paths["test"], args.test_prompts)
    print(f"after GRPO ({args.grpo_steps} steps, {t_rl:.0f} s): {after}", flush=True)
    curve = [json.loads(line) for line in (rl / "metrics.jsonl").read_text().splitlines()]
    first, last = curve[: max(1, len(curve) // 4)], curve[-max(1, len(curve) // 4) :]

    def mean(rows: list[dict]) -> float:
        return sum(r.get("reward/box") or 0.0 for r in rows) / len(rows)

    print(json.dumps({
        "size": args.size, "sft_steps": args.sft_steps, "grpo_steps": args.grpo_steps,
        "held_out_before": before, "held_out_after": after,
        "train_box_reward_first_quarter": mean(first), "train_box_reward_last_quarter": mean(last),
        "sft_seconds": round(t_sft, 1), "grpo_seconds": round(t_rl, 1),
    }, indent=1))  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
