"""SuperGPQA (M-A-P, 2025): graduate-level questions in 285 disciplines; here the ``Medicine`` discipline.

Reads ``SuperGPQA-all.jsonl`` (``uuid, question, options[4-10], answer, answer_letter, discipline, field,
subfield, difficulty, is_calculation``) or the hub id ``m-a-p/SuperGPQA``. Letters follow list order
(``chr(65 + i)`` in the official ``infer/data_loader.py``); the gold is ``answer_letter``. The release
has one split named ``train`` although it is an evaluation set; records are labelled ``test``.
``discipline=None`` keeps every discipline; ``fields=`` narrows to fields (e.g. ``["Clinical Medicine"]``).
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from medmo.data.sources._base import Context, SourceInfo, find, hub_split, jsonl_rows, list_rows, text
from medmo.records import RecordError, Sample, options_from_list

SOURCE = SourceInfo(
    name="supergpqa",
    tasks=("mcq",),
    modality="other",
    splits=("test",),
    layout="<root>/[data/]SuperGPQA-all.jsonl",
    hub_id="m-a-p/SuperGPQA",
    licence="ODC-BY (GitHub) vs MIT (HF card)",
)


def _keep(r: dict[str, Any], discipline: str | None, fields: Sequence[str] | None) -> bool:
    return (discipline is None or text(r.get("discipline")) == discipline) and (
        fields is None or text(r.get("field")) in fields
    )


def _sample(ctx: Context, r: dict[str, Any]) -> Sample:
    options = options_from_list([text(o) for o in r["options"]])
    letter = text(r["answer_letter"]).upper()
    if letter in options and text(r.get("answer")) and options[letter] != text(r["answer"]):
        raise RecordError(f"answer_letter {letter} is {options[letter]!r} but answer is {r['answer']!r}")
    return ctx.sample(
        r["uuid"],
        task="mcq",
        split="test",
        question=text(r["question"]),
        answer=letter,
        options=options,
        meta={
            "uuid": r["uuid"],
            "discipline": text(r.get("discipline")),
            "field": text(r.get("field")),
            "subfield": text(r.get("subfield")),
            "difficulty": text(r.get("difficulty")),
            "is_calculation": bool(r.get("is_calculation")),
        },
    )


def load(
    root: Path,
    split: str | None,
    ctx: Context,
    *,
    discipline: str | None = "Medicine",
    fields: Sequence[str] | None = None,
) -> Iterator[Sample]:
    """Yield SuperGPQA questions of one discipline (``Medicine`` by default)."""
    path = (
        root
        if root.is_file()
        else find(root, ["SuperGPQA-all.jsonl", "data/SuperGPQA-all.jsonl", "**/*.jsonl"], "SuperGPQA-all.jsonl")
    )
    yield from ctx.emit(jsonl_rows(path), lambda r: _sample(ctx, r) if _keep(r, discipline, fields) else None, json.loads)


def load_hub(
    hub_id: str,
    split: str | None,
    ctx: Context,
    *,
    discipline: str | None = "Medicine",
    fields: Sequence[str] | None = None,
) -> Iterator[Sample]:
    """Yield rows of the hub's single ``train`` split, filtered like :func:`load`."""
    rows = list_rows(f"{hub_id}[train]", hub_split(hub_id, None, "train"))
    yield from ctx.emit(rows, lambda r: _sample(ctx, r) if _keep(r, discipline, fields) else None)
