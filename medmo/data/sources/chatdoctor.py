"""ChatDoctor (Li et al., Cureus 2023): patient questions answered by doctors, HealthCareMagic and iCliniq.

``chatdoctor_healthcaremagic``: ``lavita/ChatDoctor-HealthCareMagic-100k`` (112,165 rows; also the
``chatdoctor_healthcaremagic`` config folder of ``lavita/medical-qa-datasets``), fields
``instruction, input, output``; worded as MedMO's loader does, ``##Instruction: {instruction}`` +
``\\n\\n##Context: {input}`` -> ``output``.

``chatdoctor_icliniq``: ``lavita/ChatDoctor-iCliniq`` (7,321 rows, published as one ``test`` split; the
``chatdoctor-icliniq`` config folder), fields ``input, answer_icliniq, answer_chatgpt, answer_chatdoctor``;
worded ``##Instruction: If you are a doctor, please answer the medical questions based on the patient's
description.`` + ``\\n\\n##Patient Query: {input}``, the answer from ``answer`` (MedMO: ``answer_chatdoctor``).

Neither ships a training split: like MedMO (95 / 5), the last ``holdout`` rows are ``validation``.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

from medmo.data.sources._base import Context, SourceInfo, text
from medmo.data.sources._tables import count_rows, emit_table, table_files
from medmo.records import RecordError, Sample

SOURCES = (
    SourceInfo(
        name="chatdoctor_healthcaremagic",
        tasks=("text_qa",),
        modality="other",
        splits=("train", "validation"),
        layout="<root>/*.parquet or *.json (lavita/ChatDoctor-HealthCareMagic-100k, or the "
        "chatdoctor_healthcaremagic folder of lavita/medical-qa-datasets): {instruction, input, output}",
        hub_id="lavita/ChatDoctor-HealthCareMagic-100k",
        licence="not stated on the card (ChatDoctor code: Apache-2.0); HealthCareMagic conversations",
        aliases=("healthcaremagic",),
    ),
    SourceInfo(
        name="chatdoctor_icliniq",
        tasks=("text_qa",),
        modality="other",
        splits=("train", "validation"),
        layout="<root>/*.parquet or *.json (lavita/ChatDoctor-iCliniq, or the chatdoctor-icliniq folder of "
        "lavita/medical-qa-datasets): {input, answer_icliniq, answer_chatgpt, answer_chatdoctor}",
        hub_id="lavita/ChatDoctor-iCliniq",
        licence="not stated on the card (ChatDoctor code: Apache-2.0); iCliniq conversations",
        aliases=("icliniq",),
    ),
)
ICLINIQ_INSTRUCTION = "If you are a doctor, please answer the medical questions based on the patient's description."
ANSWERS = ("answer_chatdoctor", "answer_icliniq", "answer_chatgpt")


def _make(ctx: Context, r: dict[str, Any], split: str, index: int, answer: str) -> Sample:
    if ctx.source == "chatdoctor_icliniq":
        query, out = text(r["input"]), text(r[answer])
        question = f"##Instruction: {ICLINIQ_INSTRUCTION}\n\n##Patient Query: {query}"
    else:
        query, out = text(r["input"]), text(r["output"])
        question = f"##Instruction: {text(r['instruction'])}" + (f"\n\n##Context: {query}" if query else "")
    if not query or not out:
        raise RecordError("empty question or answer")
    return ctx.sample(index, query, task="text_qa", split=split, question=question, answer=out)


def load(root: Path, split: str | None, ctx: Context, *, answer: str = "answer_chatdoctor",
         holdout_fraction: float = 0.05) -> Iterator[Sample]:  # fmt: skip
    """Yield one ``text_qa`` record per conversation; the last ``holdout_fraction`` are ``validation``."""
    if answer not in ANSWERS:
        raise ValueError(f"answer must be one of {', '.join(ANSWERS)}, got {answer!r}")
    if not 0 <= holdout_fraction < 1:
        raise ValueError(f"holdout_fraction must be in [0, 1), got {holdout_fraction}")
    files = table_files(root, what="ChatDoctor parquet or JSON")
    n = round(holdout_fraction * sum(count_rows(f) for f in files))
    yield from emit_table(ctx, files, split, n, lambda r, s, i: _make(ctx, r, s, i, answer))
