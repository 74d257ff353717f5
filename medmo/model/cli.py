"""``medmo model build`` (a random tiny/nano Qwen3-VL + processor) and ``medmo model info`` (parameter counts)."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("model", help="build small Qwen3-VL models and inspect checkpoints")
    msub = p.add_subparsers(dest="model_command", metavar="ACTION")

    b = msub.add_parser("build", help="save a randomly initialized tiny or nano Qwen3-VL with its processor")
    b.add_argument("--size", choices=("nano", "tiny"), default="nano",
                   help="nano: ~4 M params, the CPU recipe; tiny: ~0.26 M, for tests (default nano)")
    b.add_argument("--out", required=True, help="output folder (created)")
    b.add_argument("--tokenizer", choices=("bpe", "qwen3"), default="bpe",
                   help="bpe: a small BPE trained on --corpus; qwen3: the real 151k Qwen3 tokenizer (default bpe)")
    b.add_argument("--corpus", default=None,
                   help="record file/folder (.jsonl/.parquet) whose prompts and answers train the BPE")
    b.add_argument("--vocab-size", type=int, default=1024, help="BPE vocabulary size (default 1024)")
    b.add_argument("--seed", type=int, default=0, help="weight-initialization seed (default 0)")
    b.set_defaults(func=_build)

    i = msub.add_parser("info", help="print a checkpoint's architecture and parameter counts per module")
    i.add_argument("path", help="checkpoint folder or hub id")
    i.add_argument("--json", action="store_true", help="print JSON")
    i.set_defaults(func=_info)
    p.set_defaults(func=lambda args: (p.print_help(), 2)[1])


def _quiet() -> None:
    """No per-file progress bars for a model of a few megabytes."""
    from transformers.utils import logging

    logging.disable_progress_bar()


def _build(args: argparse.Namespace) -> int:
    from medmo.model import build_small

    _quiet()
    path = build_small(args.out, size=args.size, corpus=args.corpus, vocab_size=args.vocab_size,
                       tokenizer=args.tokenizer, seed=args.seed)
    print(f"wrote a random {args.size} Qwen3-VL to {path}")
    return 0


def _info(args: argparse.Namespace) -> int:
    import json

    from medmo.model import count_parameters, load

    _quiet()
    model, processor = load(args.path)
    counts = count_parameters(model)
    text, vision = model.config.text_config, model.config.vision_config
    info = {
        "path": str(args.path),
        "text": f"{text.hidden_size} x {text.num_hidden_layers} layers, vocab {text.vocab_size}",
        "vision": f"{vision.hidden_size} x {vision.depth} layers, DeepStack at {list(vision.deepstack_visual_indexes)}",
        "pixels": list(processor.pixel_range),
        "dtype": str(model.dtype),
        "parameters": {group: c["total"] for group, c in counts.items()},
    }
    if args.json:
        print(json.dumps(info, indent=2))
        return 0
    for key in ("path", "text", "vision", "dtype"):
        print(f"{key:<11}{info[key]}")
    print(f"{'pixels':<11}{info['pixels'][0]} .. {info['pixels'][1]} per image")
    for group, n in info["parameters"].items():
        print(f"  {group:<9}{n:>15,}")
    return 0
