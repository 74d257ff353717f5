"""AlpaCare MedInstruct-52k (Zhang et al., arXiv 2310.14558): GPT-4 medical instructions seeded by clinicians.

Reads the parquet (or JSON) of ``lavita/AlpaCare-MedInstruct-52k`` (originally ``xz97/AlpaCare-MedInstruct-52k``),
fields ``instruction, input, output``; ``input`` is ``<noinput>`` when there is none. Worded as MedMO's loader
does: ``##Instruction: {instruction}`` (+ ``\\n\\n##Input: {input}``). One ``train`` split; MedMO trains on the
first 50,000 rows, the rest are ``validation`` here (``train_rows``).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

from medmo.data.sources._base import Context, SourceInfo, text
from medmo.data.sources._tables import count_rows, emit_table, table_files
from medmo.records import RecordError, Sample

SOURCE = SourceInfo(
    name="alpacare",
    tasks=("text_qa",),
    modality="other",
    splits=("train", "validation"),
    layout="<root>/train-00000-of-00001-*.parquet (or *.json): {instruction, input, output}",
    hub_id="lavita/AlpaCare-MedInstruct-52k",
    licence="CC BY-NC 4.0 (AlpaCare GitHub; not re-read)",
    aliases=("alpacare_medinstruct", "alphacare"),
)


def _make(ctx: Context, r: dict[str, Any], split: str, index: int) -> Sample:
    instruction, inp, out = text(r["instruction"]), text(r.get("input")), text(r["output"])
    if not instruction or not out:
        raise RecordError("empty instruction or output")
    question = f"##Instruction: {instruction}" + (f"\n\n##Input: {inp}" if inp and inp != "<noinput>" else "")
    return ctx.sample(index, instruction, inp, task="text_qa", split=split, question=question, answer=out)


def load(root: Path, split: str | None, ctx: Context, *, train_rows: int = 50000) -> Iterator[Sample]:
    """Yield one ``text_qa`` record per instruction; rows after ``train_rows`` are ``validation``."""
    files = table_files(root, what="AlpaCare parquet or JSON")
    total = sum(count_rows(f) for f in files)
    yield from emit_table(ctx, files, split, max(total - train_rows, 0), lambda r, s, i: _make(ctx, r, s, i))
