"""MIMIC-IV-Ext-BHC (Aali et al., JAMIA 2024; PhysioNet, doi 10.13026/fh2q-4148): brief-hospital-course summaries.

Credentialed PhysioNet data: this loader only reads the published layout, ``mimic-iv-bhc.csv`` (about 2.5 GB,
270,033 rows) with columns ``note_id, input, target, input_tokens, target_tokens`` (``input``: the discharge
note without its BHC section; ``target``: the cleaned BHC). Worded as MedMO's loader does: ``##Instruction:
Please summarize the following medical document into a concise, clinically relevant summary.`` +
``\\n\\n##Input: {input}`` -> ``target``. ``note_id`` embeds the subject id, so it is never copied into a
record (ids hash the row number). No split: the last ``holdout`` (300) rows are ``validation``.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

from medmo.data.sources._base import Context, SourceInfo, text
from medmo.data.sources._tables import emit_table, table_files
from medmo.records import RecordError, Sample

SOURCE = SourceInfo(
    name="mimic_ext_bhc",
    tasks=("text_qa",),
    modality="other",
    splits=("train", "validation"),
    layout="<root>/mimic-iv-bhc.csv: note_id, input, target, input_tokens, target_tokens",
    licence="PhysioNet Credentialed Health Data License 1.5.0 (credentialed access; DUA)",
    aliases=("mimic_iv_ext_bhc", "mimic_iv_bhc"),
)
INSTRUCTION = "##Instruction: Please summarize the following medical document into a concise, clinically relevant summary."


def _make(ctx: Context, r: dict[str, Any], split: str, index: int) -> Sample:
    note, summary = text(r["input"]), text(r["target"])
    if not note or not summary:
        raise RecordError("empty input or target")
    return ctx.sample(index, task="text_qa", split=split, question=f"{INSTRUCTION}\n\n##Input: {note}", answer=summary,
                      meta={"input_tokens": text(r.get("input_tokens")), "target_tokens": text(r.get("target_tokens"))})


def load(root: Path, split: str | None, ctx: Context, *, n_holdout: int = 300) -> Iterator[Sample]:
    """Yield one summarization record per note."""
    files = table_files(root, ("mimic-iv-bhc.csv", "*.csv"), "mimic-iv-bhc.csv")
    yield from emit_table(ctx, files[:1], split, n_holdout, lambda r, s, i: _make(ctx, r, s, i))
