"""The ``medmo`` command.

Each area of the toolkit registers its own subcommands from a small ``cli`` module that imports
nothing heavy at module level, so ``medmo --help`` stays instant; every handler is a few lines over a
library function.
"""

from __future__ import annotations

import argparse
import importlib
import sys

# (module, its one-line help) in the order `medmo --help` lists them.
AREAS = (
    "medmo.data.cli",
    "medmo.model.cli",
    "medmo.train.cli",
    "medmo.eval.cli",
    "medmo.infer.cli",
    "medmo.serve.cli",
    "medmo.speedrun",
)


def build_parser() -> argparse.ArgumentParser:
    from medmo import __version__

    parser = argparse.ArgumentParser(
        prog="medmo",
        description="MedMO: data, training, evaluation and serving for medical vision-language models. "
        "For research only; not for clinical decisions.",
    )
    parser.add_argument("--version", action="version", version=f"medmo {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in AREAS:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as e:
            if e.name != name:
                raise
            continue
        module.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 0 if args.command is None else 2
    try:
        result = args.func(args)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except (ValueError, FileNotFoundError) as e:
        # Library errors carry the input and the next step in their message; no traceback for users.
        print(f"medmo {args.command}: error: {e}", file=sys.stderr)
        return 2
    return int(result or 0)


if __name__ == "__main__":
    sys.exit(main())
