"""Where a nano training step's time goes: data, vision tower, language model, backward, optimizer.

Run inside a speedrun folder (it needs ``data/`` and a model; ``medmo speedrun`` makes both), or let it
build a small one:

    .venv/bin/python bench/step_profile.py [--run runs/nano] [--recipe nano/sft] [--steps 40] \\
        [--precision no bf16] [--threads 2]
    .venv/bin/python bench/step_profile.py --quick      # CI smoke run: a fresh tiny folder, a few steps

For each precision (``no``: fp32; ``bf16``: autocast, as ``mixed_precision: bf16`` trains) it times the
recipe's own micro-batches through the recipe's own step (:func:`medmo.train.sft.train_step`) and splits
each step into: data (encode images and text, pack), vision forward (the ViT, its merger and DeepStack
mergers, timed by hooks), language-model forward (the rest of the forward, loss included), backward
(everything from ``backward()`` to clipping) and the optimizer update. Prints ms per step for each part,
steps/s and tokens/s, and the mean loss of the timed steps (both precisions see the same batches from the
same weights, so the losses show what bf16 changes numerically). The first ``--warmup`` steps are not timed.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SCRIPT = Path(__file__).resolve()


def prepare_run(folder: Path) -> Path:
    """A small speedrun-like folder: nano data, the nano mixtures every nano recipe reads, a random nano model."""
    from medmo.data.mixture import build_mixture
    from medmo.data.mixture_config import stage_names
    from medmo.data.synth import build_nano
    from medmo.model.build import build_small

    paths = build_nano(folder / "data", n_train=40, n_val=4, n_test=4, image_size=128)
    here = os.getcwd()
    os.chdir(folder)  # the shipped mixture's paths are relative to the run folder
    try:
        for stage in stage_names("nano/mixture"):
            build_mixture("nano/mixture", f"data/mixtures/{stage}", stage=stage)
    finally:
        os.chdir(here)
    build_small(folder / "init", size="nano", corpus=paths["train"], vocab_size=1024, seed=0)
    return folder


class Clock:
    """Accumulates wall seconds per named part (forward hooks bracket the vision tower)."""

    def __init__(self) -> None:
        self.parts: dict[str, float] = {}
        self._t0 = 0.0

    def add(self, name: str, seconds: float) -> None:
        self.parts[name] = self.parts.get(name, 0.0) + seconds

    def hook(self, model) -> None:  # noqa: ANN001 - a Qwen3-VL model
        visual = model.model.visual
        visual.register_forward_pre_hook(lambda *_: setattr(self, "_t0", time.perf_counter()))
        visual.register_forward_hook(lambda *_: self.add("vision_fwd", time.perf_counter() - self._t0))


def profile(recipe_name: str, overrides: list[str], steps: int, warmup: int, precision: str) -> dict:
    """Time ``steps`` optimizer steps of a supervised recipe under one precision."""
    import torch

    from medmo.train import sft
    from medmo.train.recipe import load_recipe

    recipe = load_recipe(recipe_name, [*overrides, f"mixed_precision={precision}", f"max_steps={steps + warmup}"])
    setup = sft.setup(recipe)  # the very objects `medmo train` trains with
    accelerator, model, optimizer, batches = setup.accelerator, setup.model, setup.optimizer, setup.batches
    clock = Clock()
    clock.hook(accelerator.unwrap_model(model))
    timed = {"forward": 0.0, "backward": 0.0, "optimizer": 0.0}
    # bracket forward / backward / optimizer inside the recipe's own step
    real_losses, real_backward, real_step = sft.token_losses, accelerator.backward, optimizer.step

    def losses(*a, **k):
        t = time.perf_counter()
        out = real_losses(*a, **k)
        timed["forward"] += time.perf_counter() - t
        return out

    def backward(loss, **k):
        t = time.perf_counter()
        real_backward(loss, **k)
        timed["backward"] += time.perf_counter() - t

    def step(*a, **k):
        t = time.perf_counter()
        out = real_step(*a, **k)
        timed["optimizer"] += time.perf_counter() - t
        return out

    sft.token_losses, accelerator.backward, optimizer.step = losses, backward, step
    stream = batches.stream(0, 0)
    model.train()
    loss_sum, tokens, wall = 0.0, 0, 0.0
    try:
        for i in range(warmup + steps):
            if i == warmup:
                clock.parts.clear()
                timed.update(forward=0.0, backward=0.0, optimizer=0.0)
                wall, loss_sum, tokens = 0.0, 0.0, 0
            t0 = time.perf_counter()
            window = [next(stream)[2] for _ in range(recipe.grad_accum)]
            clock.add("data", time.perf_counter() - t0)
            metrics = sft.train_step(model, window, accelerator, optimizer, recipe, step=i)
            wall += time.perf_counter() - t0
            loss_sum += metrics["loss"]
            tokens += int(metrics["tokens"])
    finally:
        sft.token_losses = real_losses
    vision = clock.parts.get("vision_fwd", 0.0)
    ms = {"data": clock.parts.get("data", 0.0), "vision_fwd": vision, "lm_fwd_and_loss": timed["forward"] - vision,
          "backward_and_clip": timed["backward"], "optimizer": timed["optimizer"]}
    ms = {k: round(1000 * v / steps, 1) for k, v in ms.items()}
    ms["other"] = round(1000 * wall / steps - sum(ms.values()), 1)
    return {"precision": precision, "threads": torch.get_num_threads(), "steps": steps, "ms_per_step": ms,
            "steps_per_s": round(steps / wall, 2), "tokens_per_s": round(tokens / wall),
            "mean_loss": round(loss_sum / steps, 4)}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--run", help="a speedrun folder (runs/nano); default: build a small one in a temp folder")
    ap.add_argument("--recipe", default="nano/grounding")
    ap.add_argument("--model", default=None, help="the model to start from (default: the recipe's)")
    ap.add_argument("--steps", type=int, default=40)
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--precision", nargs="+", default=["no", "bf16"], choices=["no", "bf16"])
    ap.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE", help="recipe overrides (data.num_workers=1)")
    ap.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's)")
    ap.add_argument("--quick", action="store_true", help="CI smoke run: a fresh tiny folder, 3 steps")
    ap.add_argument("--one", choices=["no", "bf16"], help=argparse.SUPPRESS)
    args = ap.parse_args()
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    if args.quick:
        args.steps, args.warmup, args.run = 3, 1, None
    tmp = tempfile.TemporaryDirectory() if args.run is None else None
    run = (Path(args.run) if args.run else prepare_run(Path(tmp.name))).resolve()
    overrides = [f"output_dir={tempfile.mkdtemp()}", *args.set] + ([f"model={args.model}"] if args.model else [])
    if (run / "init").is_dir() and not (run / "align").is_dir() and not args.model:
        overrides.append("model=init")  # a fresh folder: start from the random model
    os.chdir(run)
    if args.one:
        print(json.dumps(profile(args.recipe, overrides, args.steps, args.warmup, args.one)), flush=True)
        return 0
    print(f"{args.recipe} in {run}: {args.steps} timed steps after {args.warmup}; cpu capability "
          f"{torch.backends.cpu.get_cpu_capability()}", flush=True)
    for precision in args.precision:
        argv = [sys.executable, str(SCRIPT), "--one", precision, "--run", str(run), "--recipe", args.recipe,
                "--steps", str(args.steps), "--warmup", str(args.warmup)]
        argv += (["--model", args.model] if args.model else []) + (["--set", *args.set] if args.set else []) + (["--threads", str(args.threads)] if args.threads else [])
        subprocess.run(argv, check=True)  # one precision per process: accelerate's state is process-wide
    return 0


if __name__ == "__main__":
    sys.exit(main())
