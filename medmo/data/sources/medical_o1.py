"""HuatuoGPT-o1's data (Chen et al., arXiv 2412.18925): medical reasoning SFT and verifiable problems.

``medical_o1_sft``: ``FreedomIntelligence/medical-o1-reasoning-SFT``, JSON lists ``medical_o1_sft.json``
(English), ``medical_o1_sft_Chinese.json``, ``medical_o1_sft_mix.json`` and ``medical_o1_sft_mix_Chinese.json``
of ``{Question, Complex_CoT, Response}``. MedMO trains on ``medical_o1_sft_mix.json``, asked as
``##Question: ...`` and answered with the response alone (``reasoning="drop"``); ``reasoning="think"``
keeps the chain of thought as ``<think>...</think>`` before the response.

``medical_o1_verifiable``: ``FreedomIntelligence/medical-o1-verifiable-problem``,
``medical_o1_verifiable_problem.json`` of ``{"Open-ended Verifiable Question", "Ground-True Answer"}``.

Both are one ``train`` split; as in MedMO the last ``holdout`` (200) rows are ``validation``.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

from medmo.data.sources._base import Context, LayoutError, SourceInfo, text
from medmo.data.sources._tables import emit_table
from medmo.records import RecordError, Sample

SOURCES = (
    SourceInfo(
        name="medical_o1_sft",
        tasks=("text_qa",),
        modality="other",
        splits=("train", "validation"),
        layout="<root>/medical_o1_sft_mix.json (file=medical_o1_sft.json, *_Chinese.json for the others): "
        "JSON list of {Question, Complex_CoT, Response}",
        hub_id="FreedomIntelligence/medical-o1-reasoning-SFT",
        licence="Apache-2.0 (HF card)",
        aliases=("medical_o1_reasoning_sft",),
    ),
    SourceInfo(
        name="medical_o1_verifiable",
        tasks=("text_qa",),
        modality="other",
        splits=("train", "validation"),
        layout="<root>/medical_o1_verifiable_problem.json: JSON list of "
        "{'Open-ended Verifiable Question', 'Ground-True Answer'}",
        hub_id="FreedomIntelligence/medical-o1-verifiable-problem",
        licence="Apache-2.0 (HF card)",
        aliases=("medical_o1_verifiable_problem",),
    ),
)
DEFAULT_FILE = {"medical_o1_sft": "medical_o1_sft_mix.json", "medical_o1_verifiable": "medical_o1_verifiable_problem.json"}
KEYS = {
    "medical_o1_sft": ("Question", "Response"),
    "medical_o1_verifiable": ("Open-ended Verifiable Question", "Ground-True Answer"),
}
REASONING = ("drop", "think")


def _is_chinese(s: str) -> bool:
    return any("\u4e00" <= ch <= "\u9fff" for ch in s[:80])


def _make(ctx: Context, r: dict[str, Any], split: str, index: int, reasoning: str) -> Sample:
    qkey, akey = KEYS[ctx.source]
    question, answer = text(r[qkey]), text(r[akey])
    if not question or not answer:
        raise RecordError(f"empty {qkey!r} or {akey!r}")
    cot = text(r.get("Complex_CoT"))
    if reasoning == "think" and cot:
        answer = f"<think>\n{cot}\n</think>\n{answer}"
    return ctx.sample(index, question, task="text_qa", split=split, question=f"##Question: {question}",
                      answer=answer, language="zh" if _is_chinese(question) else "en")  # fmt: skip


def load(root: Path, split: str | None, ctx: Context, *, file: str | None = None, holdout: int = 200,
         reasoning: str = "drop") -> Iterator[Sample]:  # fmt: skip
    """Yield one ``text_qa`` record per question (``file`` picks one of the set's JSON files)."""
    if reasoning not in REASONING:
        raise ValueError(f"reasoning must be one of {', '.join(REASONING)}, got {reasoning!r}")
    path = root if root.is_file() else root / (file or DEFAULT_FILE[ctx.source])
    if not path.is_file():
        raise LayoutError(f"{path.name} not found in {root}")
    yield from emit_table(ctx, [path], split, holdout, lambda r, s, i: _make(ctx, r, s, i, reasoning))
