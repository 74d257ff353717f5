"""The three kinds of VQA sample every scoring preset distinguishes, and how a sample's kind is inferred."""

from __future__ import annotations

from medmo.answers import normalize_text

KINDS = ("closed", "open", "mcq")


def infer_kind(gold: str, options: dict[str, str] | None = None) -> str:
    """``mcq`` if options are given, ``closed`` for a yes/no gold, else ``open``."""
    if options:
        return "mcq"
    return "closed" if normalize_text(gold) in ("yes", "no") else "open"
