"""Command-line flags shared by every command that loads a checkpoint or generates, declared once.

``medmo ask``, ``ground``, ``report`` and ``serve`` (and any other command) call :func:`add_load_flags` /
:func:`add_sampling_flags` on their parser and pass :func:`load_kwargs` / :func:`sampling_kwargs` of the parsed
arguments on to :func:`medmo.model.load` and the generation call. Only argparse is imported at module level
(torch only when a device is chosen, just before a model loads), so ``medmo --help`` stays instant.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any


def add_load_flags(p: argparse.ArgumentParser) -> None:
    """``--dtype``, ``--device-map``, ``--min-pixels``, ``--max-pixels``, ``--max-pixels-cap`` and ``--chat-template``."""
    p.add_argument("--dtype", default="auto",
                   help="weight dtype: auto (the checkpoint's own, bf16 for released MedMO), bfloat16, float16, float32")
    p.add_argument("--device-map", default=None, metavar="cpu|cuda:N|auto",
                   help="where the weights go: cpu, one GPU (cuda:N), or auto (spread a model too large for one GPU "
                        "over all of them); default: this process's GPU when one is visible (cuda:LOCAL_RANK under "
                        "torchrun or accelerate launch, else cuda:0), otherwise the CPU")
    p.add_argument("--min-pixels", type=int, default=None,
                   help="smallest image size in pixels the processor resizes to (default: the checkpoint's own)")
    p.add_argument("--max-pixels", type=int, default=None,
                   help="largest image size in pixels (default: the checkpoint's own, capped at --max-pixels-cap)")
    p.add_argument("--max-pixels-cap", type=int, default=None,
                   help="memory cap on the checkpoint's own maximum (default 16777216 = 16,384 visual tokens, "
                        "Qwen3-VL's shipped maximum); 0: no cap")
    p.add_argument("--chat-template", default=None, metavar="medmo|checkpoint|FILE",
                   help="chat template: medmo (default, Qwen3-VL's template as MedMO trains with it), checkpoint "
                        "(the folder's own), or a Jinja file")


def load_kwargs(args: argparse.Namespace) -> dict[str, Any]:
    """The :func:`medmo.model.load` keyword arguments of :func:`add_load_flags`' flags (unset flags left out)."""
    out: dict[str, Any] = {"dtype": args.dtype}
    device = default_device() if args.device_map is None else args.device_map
    if device not in (None, "cpu"):
        out["device_map"] = device
    if args.min_pixels is not None:
        out["min_pixels"] = args.min_pixels
    if args.max_pixels is not None:
        out["max_pixels"] = args.max_pixels
    if args.max_pixels_cap is not None:
        out["max_pixels_cap"] = args.max_pixels_cap or None
    template = args.chat_template
    if template not in (None, "medmo"):
        if template != "checkpoint":
            path = Path(template).expanduser()
            if not path.is_file():
                raise ValueError(f"--chat-template: {template!r} is not 'medmo', 'checkpoint' or a Jinja file")
            template = path.read_text(encoding="utf-8")
        out["chat_template"] = template
    return out


def launch_slot() -> tuple[int, int, int]:
    """``(rank, world size, local rank)`` of this process as ``torchrun`` and ``accelerate launch`` set them
    (``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``); ``(0, 1, 0)`` for a process started alone."""
    import os

    def number(name: str, default: int) -> int:
        value = os.environ.get(name, "").strip()
        return int(value) if value.isdigit() else default

    return number("RANK", 0), number("WORLD_SIZE", 1), number("LOCAL_RANK", 0)


def default_device() -> str | None:
    """This process's GPU (``cuda:LOCAL_RANK``, so N launched processes take N GPUs) when one is visible, else
    ``None`` (the CPU). Imports torch: call it when a model is about to load, not at parser setup."""
    import torch

    if not torch.cuda.is_available():
        return None
    local = launch_slot()[2]
    return f"cuda:{local % torch.cuda.device_count()}"


def add_sampling_flags(p: argparse.ArgumentParser) -> None:
    """``--sample``, ``--temperature``, ``--top-p`` and ``--top-k`` (greedy decoding without them)."""
    p.add_argument("--sample", action="store_true",
                   help="sample instead of greedy decoding, with the checkpoint's generation_config settings")
    p.add_argument("--temperature", type=float, default=None,
                   help="sampling temperature (implies --sample; 0: greedy; default: the checkpoint's)")
    p.add_argument("--top-p", type=float, default=None, help="nucleus sampling (implies --sample; default: the checkpoint's)")
    p.add_argument("--top-k", type=int, default=None, help="top-k sampling, 0: off (implies --sample; default: the checkpoint's)")


def sampling_kwargs(args: argparse.Namespace) -> dict[str, Any]:
    """Generation keyword arguments of :func:`add_sampling_flags`' flags; unset values stay the checkpoint's."""
    if args.temperature == 0:
        return {"do_sample": False}
    given = {k: v for k, v in (("temperature", args.temperature), ("top_p", args.top_p), ("top_k", args.top_k))
             if v is not None}
    if not (args.sample or given):
        return {"do_sample": False}
    return {"do_sample": True, **given}
