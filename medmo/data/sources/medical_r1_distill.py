"""Medical-R1-Distill-Data (FreedomIntelligence): DeepSeek-R1 answers to medical verifiable problems (22k).

Reads the JSON list ``medical_r1_distill_sft.json`` of the hub dataset
``FreedomIntelligence/Medical-R1-Distill-Data``; the keys are ``question``, ``reasoning (reasoning_content)``
and ``response (content)`` (the names MedMO's loader reads). Asked as ``##Question: ...`` and answered
with the response (``reasoning="think"`` prefixes R1's reasoning in ``<think>...</think>``). One ``train``
split; the last ``holdout`` (200) rows are ``validation``, as in MedMO.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

from medmo.data.sources._base import Context, SourceInfo, text
from medmo.data.sources._tables import emit_table, table_files
from medmo.records import RecordError, Sample

SOURCE = SourceInfo(
    name="medical_r1_distill",
    tasks=("text_qa",),
    modality="other",
    splits=("train", "validation"),
    layout="<root>/medical_r1_distill_sft.json: JSON list of {question, 'reasoning (reasoning_content)', "
    "'response (content)'}",
    hub_id="FreedomIntelligence/Medical-R1-Distill-Data",
    licence="not read on the card (the team's other medical-o1 sets are Apache-2.0)",
    aliases=("medical_r1_distill_data",),
)
QUESTION, REASONING_KEY, RESPONSE = "question", "reasoning (reasoning_content)", "response (content)"


def _make(ctx: Context, r: dict[str, Any], split: str, index: int, reasoning: str) -> Sample:
    question, answer = text(r[QUESTION]), text(r[RESPONSE])
    if not question or not answer:
        raise RecordError(f"empty {QUESTION!r} or {RESPONSE!r}")
    thought = text(r.get(REASONING_KEY))
    if reasoning == "think" and thought:
        answer = f"<think>\n{thought}\n</think>\n{answer}"
    return ctx.sample(index, question, task="text_qa", split=split, question=f"##Question: {question}", answer=answer)


def load(root: Path, split: str | None, ctx: Context, *, holdout: int = 200, reasoning: str = "drop") -> Iterator[Sample]:
    """Yield one ``text_qa`` record per question."""
    if reasoning not in ("drop", "think"):
        raise ValueError(f"reasoning must be 'drop' or 'think', got {reasoning!r}")
    files = table_files(root, ("medical_r1_distill_sft.json", "*.json", "*.parquet"), "Medical-R1-Distill JSON")
    yield from emit_table(ctx, files[:1], split, holdout, lambda r, s, i: _make(ctx, r, s, i, reasoning))
