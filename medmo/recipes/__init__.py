"""The recipes shipped with MedMO: training stages, data mixtures, the speedrun chain, launcher configs.

A recipe is named by its path under this folder without the suffix (``nano/sft``, ``medmo-4b/grpo``,
``nano/mixture``, ``accelerate/zero3``); commands take a name or a file path. Paths inside shipped recipes
are relative to the working directory (the run folder), so one recipe serves any run; ``medmo recipes``
lists them and ``medmo recipes cp NAME DEST`` copies one to edit (torchtune's ``tune ls`` / ``tune cp``).
"""

from __future__ import annotations

import difflib
import importlib.resources
from pathlib import Path

SUFFIXES = (".yaml", ".json")


def _root() -> Path:
    return Path(str(importlib.resources.files(__name__)))


def names() -> list[str]:
    """Every shipped recipe's name, sorted (``accelerate/ddp``, ..., ``nano/sft``, ...)."""
    root = _root()
    return sorted(p.relative_to(root).with_suffix("").as_posix() for p in root.rglob("*") if p.suffix in SUFFIXES)


def is_shipped(path: str | Path) -> bool:
    """Whether ``path`` is a file of the shipped recipes (its relative paths then mean the working directory)."""
    try:
        Path(path).resolve().relative_to(_root().resolve())
    except ValueError:
        return False
    return True


def path(name_or_path: str | Path) -> Path:
    """A recipe file: an existing path as is, else a shipped recipe by name (``nano/sft`` or ``nano/sft.yaml``).

    Raises:
        FileNotFoundError: neither; the message lists the shipped names closest to it.
    """
    given = Path(name_or_path)
    if given.is_file():
        return given
    root = _root()
    for candidate in (str(name_or_path), *(f"{name_or_path}{s}" for s in SUFFIXES)):
        shipped = root / candidate
        if shipped.is_file() and shipped.suffix in SUFFIXES:
            return shipped
    close = difflib.get_close_matches(str(name_or_path), names(), n=4, cutoff=0.4)
    hint = f" Closest shipped recipes: {', '.join(close)}." if close else ""
    raise FileNotFoundError(f"no recipe file {name_or_path!r} and no shipped recipe of that name.{hint} "
                            "`medmo recipes` lists the shipped ones.")
