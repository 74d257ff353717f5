"""MedMCQA (Pal et al., CHIL 2022): Indian medical entrance exam questions (AIIMS / NEET PG), text only.

The correct option ``cop`` is **1-based** (1-4) in the GitHub JSON Lines files and **0-based** (0-3) on
the hub (``openlifescienceai/medmcqa``) and in its parquet files; an off-by-one silently gives ~25%
accuracy. The base follows the file type (``.json`` -> 1, parquet / hub -> 0) unless ``cop_base`` is
given. The test split's answers are withheld (``cop`` missing or -1): those rows are skipped with a reason.
The labelled evaluation set is GitHub ``dev.json`` = hub ``validation`` (4,183 questions).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from medmo.data.sources._base import (
    Context,
    LayoutError,
    SourceInfo,
    hub_split,
    jsonl_rows,
    list_rows,
    parquet_rows,
    text,
)
from medmo.records import RecordError, Sample

SOURCE = SourceInfo(
    name="medmcqa",
    tasks=("mcq",),
    modality="other",
    splits=("train", "validation", "test"),
    layout="<root>/{train,dev,test}.json (GitHub JSON Lines, cop 1-4)\n"
           "or <root>/data/{train,validation,test}-*.parquet (HF, cop 0-3)",
    hub_id="openlifescienceai/medmcqa",
    licence="MIT (GitHub) / Apache-2.0 (HF card)",
)

LETTERS = "ABCD"
JSON_FILES = {"train": "train.json", "validation": "dev.json", "test": "test.json"}


def _sample(ctx: Context, r: dict[str, Any], split: str, cop_base: int) -> Sample:
    cop = r.get("cop")
    if cop is None or text(cop) == "" or int(cop) < 0:
        raise RecordError(f"{r.get('id')}: no answer (MedMCQA test answers are withheld)")
    idx = int(cop) - cop_base
    if not 0 <= idx < 4:
        raise RecordError(f"cop {cop} out of range for {cop_base}-based options")
    return ctx.sample(
        r["id"],
        task="mcq",
        split=split,
        question=text(r["question"]),
        answer=LETTERS[idx],
        options={k: text(r[f"op{k.lower()}"]) for k in LETTERS},
        meta={
            "medmcqa_id": r["id"],
            "subject": text(r.get("subject_name")),
            "topic": text(r.get("topic_name")) or None,
            "choice_type": text(r.get("choice_type")),
        },
    )


def load(root: Path, split: str | None, ctx: Context, *, cop_base: int | None = None) -> Iterator[Sample]:
    """Yield MedMCQA samples from GitHub JSON Lines files or HF parquet files under ``root``."""
    found = False
    for name, fname in JSON_FILES.items():
        if split not in (None, name):
            continue
        path = next((p for p in (root / fname, root / "data" / fname) if p.is_file()), None)
        parquet = sorted(root.glob(f"**/{name}-*.parquet"))
        if path is not None:
            found = True
            base = 1 if cop_base is None else cop_base
            yield from ctx.emit(jsonl_rows(path), lambda r, n=name, b=base: _sample(ctx, r, n, b), json.loads)
        elif parquet:
            found = True
            base = 0 if cop_base is None else cop_base
            for p in parquet:
                yield from ctx.emit(parquet_rows(p), lambda r, n=name, b=base: _sample(ctx, r, n, b))
    if not found:
        raise LayoutError(f"no MedMCQA {', '.join(JSON_FILES.values())} or <split>-*.parquet files in {root}")


def load_hub(hub_id: str, split: str | None, ctx: Context, *, cop_base: int = 0) -> Iterator[Sample]:
    """Yield hub rows (``cop`` 0-based)."""
    for name in [split] if split else ["train", "validation", "test"]:
        rows = list_rows(f"{hub_id}[{name}]", hub_split(hub_id, None, name))
        yield from ctx.emit(rows, lambda r, n=name: _sample(ctx, r, n, cop_base))
