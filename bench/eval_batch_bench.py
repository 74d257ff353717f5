"""Evaluation throughput: batched generation against one sample at a time, same tiny model, same samples.

Run: ``.venv/bin/python bench/eval_batch_bench.py [--samples 48] [--batch-size 16] [--tokens 16]``

Builds a tiny random Qwen3-VL (``medmo.model.build_small``) and the nano test split, then evaluates the
nano closed-VQA benchmark through :func:`medmo.eval.runner.evaluate` with a fresh cache each time:
``batch_size=1`` and ``batch_size=B``, after a warm-up of both shapes, best of ``--repeats`` runs each
(the CPU is shared, so the best run is the least disturbed one). End tokens are switched off so every
sample generates exactly ``--tokens`` tokens in both modes: the comparison is like for like.
Prints samples/s and the speed-up (target: >= 3x).
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from dataclasses import replace
from pathlib import Path


def run(model, bench, data: Path, out: Path, batch_size: int, limit: int) -> tuple[float, float]:
    from medmo.eval.runner import evaluate

    t0 = time.perf_counter()
    res = evaluate(model, [bench], out_dir=out, data={"nano": data}, limit=limit, batch_size=batch_size,
                   model_name="tiny")
    wall = time.perf_counter() - t0
    entry = res["benchmarks"][bench.name]
    assert entry["n_generated"] == entry["n"] == limit, entry
    return entry["generation_samples_per_s"], limit / wall


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--samples", type=int, default=48)
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--tokens", type=int, default=16)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--quick", action="store_true", help="a seconds-long smoke run of the same code (CI); figures mean nothing")
    args = ap.parse_args()
    if args.quick:
        args.samples, args.batch_size, args.tokens, args.repeats = 4, 2, 2, 1
    os.environ.setdefault("OMP_NUM_THREADS", "2")

    import torch

    from medmo.data.synth import build_nano
    from medmo.eval.registry import get
    from medmo.model import build_small, load

    torch.manual_seed(0)
    tmp = Path(tempfile.mkdtemp(prefix="medmo-eval-bench-"))
    model = load(build_small(tmp / "model"))
    # A random model's answer lengths are noise (it hits an end token anywhere); without end tokens every
    # sample generates exactly --tokens tokens in both modes, as a trained model's full answers would.
    model[0].generation_config.eos_token_id = None
    build_nano(tmp / "nano", n_train=0, n_val=0, n_test=args.samples, image_size=64)
    bench = replace(get("nano_closed"), generation={"max_new_tokens": args.tokens, "greedy": True})
    for bs in (1, args.batch_size):  # first-call costs (lazy init, kernel selection per shape) out of the timing
        run(model, bench, tmp / "nano", tmp / f"warmup{bs}", bs, min(args.samples, args.batch_size))

    print(f"tiny Qwen3-VL, {args.samples} nano closed-VQA samples (64 px images), {args.tokens} new tokens "
          f"each, torch threads {torch.get_num_threads()}, best of {args.repeats}")

    def best(bs: int) -> tuple[float, float]:
        runs = [run(model, bench, tmp / "nano", tmp / f"bs{bs}-{i}", bs, args.samples) for i in range(args.repeats)]
        return max(runs)

    one_gen, one_wall = best(1)
    print(f"one at a time : {one_gen:7.2f} samples/s generation, {one_wall:7.2f} samples/s end to end")
    bat_gen, bat_wall = best(args.batch_size)
    print(f"batch size {args.batch_size:<3}: {bat_gen:7.2f} samples/s generation, {bat_wall:7.2f} samples/s end to end")
    print(f"speed-up      : {bat_gen / one_gen:.2f}x generation, {bat_wall / one_wall:.2f}x end to end (target >= 3x)")


if __name__ == "__main__":
    main()
