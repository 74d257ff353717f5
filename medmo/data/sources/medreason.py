"""MedReason (Wu et al., arXiv 2504.00993): 32,682 medical QA pairs with knowledge-graph reasoning paths.

Reads ``ours_quality_33000.jsonl`` of ``UCSC-VLAA/MedReason`` (fields ``dataset_name, id_in_dataset,
question, options, answer, reasoning``); the questions come from MedQA, MedMCQA, PubMedQA, MMLU, MedXpertQA,
HuatuoGPT-o1 and HLE, so a mixture should decontaminate it against those benchmarks. As in MedMO's loader,
``options`` (``"A. ...\\nB. ..."``) is parsed and the answer (its text before ``Explanation:``) is matched to
an option: such rows are multiple choice, the rest ``text_qa`` with the answer as written.
``reasoning="think"`` keeps the reasoning in ``<think>...</think>`` (text_qa rows only). One ``train`` split.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from medmo.data.sources._base import Context, SourceInfo, text
from medmo.data.sources._tables import emit_table, table_files
from medmo.records import RecordError, Sample

SOURCE = SourceInfo(
    name="medreason",
    tasks=("mcq", "text_qa"),
    modality="other",
    splits=("train",),
    layout="<root>/ours_quality_33000.jsonl: {dataset_name, id_in_dataset, question, options, answer, reasoning}",
    hub_id="UCSC-VLAA/MedReason",
    licence="Apache-2.0 (HF card tag); questions from MedQA, MedMCQA, PubMedQA, MMLU, MedXpertQA, HuatuoGPT-o1, HLE",
)
_OPT = re.compile(r"(?:^|\n)\s*([A-J])\s*[.):]\s*(.+?)(?=\n\s*[A-J]\s*[.):]|\Z)", re.S)


def parse_options(blob: str) -> dict[str, str]:
    """``"A. one\\nB. two"`` -> ``{"A": "one", "B": "two"}`` (trailing periods dropped)."""
    return {k: v.strip().rstrip(".") for k, v in _OPT.findall(text(blob))}


def _letter(answer: str, options: dict[str, str]) -> str:
    main = answer.split("Explanation:", 1)[0].strip().rstrip(".")
    m = re.search(r"final decision is:\s*(yes|no|maybe)", main, re.I)
    main = m.group(1).lower() if m else main
    if not main:
        return ""
    return next((k for k, v in options.items() if v.strip().lower() == main.lower()), "") or next(
        (k for k, v in options.items() if main.lower() in v.lower()), ""
    )


def _make(ctx: Context, r: dict[str, Any], split: str, index: int, reasoning: str) -> Sample:
    question, answer = text(r["question"]), text(r["answer"])
    if not question or not answer:
        raise RecordError("empty question or answer")
    options = parse_options(r.get("options") or "")
    letter = _letter(answer, options) if len(options) >= 2 else ""
    key = (text(r.get("dataset_name")), text(r.get("id_in_dataset")), question)
    meta = {"dataset_name": text(r.get("dataset_name"))}
    if letter:
        return ctx.sample(*key, task="mcq", split=split, question=question, options=options, answer=letter, meta=meta)
    if reasoning == "think" and text(r.get("reasoning")):
        answer = f"<think>\n{text(r['reasoning'])}\n</think>\n{answer}"
    opts = "\n".join(f"{k}. {v}" for k, v in options.items())
    q = f"##Question: {question}" + (f"\n\n##Options:\n{opts}" if opts else "")
    return ctx.sample(*key, task="text_qa", split=split, question=q, answer=answer, meta=meta)


def load(root: Path, split: str | None, ctx: Context, *, reasoning: str = "drop") -> Iterator[Sample]:
    """Yield one record per question of ``ours_quality_33000.jsonl``."""
    if reasoning not in ("drop", "think"):
        raise ValueError(f"reasoning must be 'drop' or 'think', got {reasoning!r}")
    files = table_files(root, ("ours_quality_33000.jsonl", "*.jsonl", "*.parquet"), "MedReason jsonl")
    yield from emit_table(ctx, files[:1], split, 0, lambda r, s, i: _make(ctx, r, s, i, reasoning))
