"""CMB (Wang et al., NAACL 2024): the Chinese Medical Benchmark, exam questions (CMB-Exam) and clinical cases (CMB-Clin).

``cmb``: CMB-Exam as MedEvalKit scores it, the ``test`` split of ``FreedomIntelligence/CMB`` (config
``CMB-Exam``) with ``question, option, answer, question_type, exam_type, exam_class, exam_subject``;
``option`` is a list of ``{key, value}`` (or a letter -> text dict). Only single-choice questions
(``question_type`` 单项选择题) are kept by default, as MedEvalKit does (``single_choice=False`` keeps all;
a multiple-answer question then has a gold answer like ``ACD`` and becomes ``text_qa``). Local files: a JSON
list or JSON lines of such rows (e.g. ``CMB-Exam/CMB-test/CMB-test-choice-question-merge.json``).

``cmb_clin``: ``CMB-Clin-qa.json``, 74 case records ``{id, title, description, QA_pairs: [{question,
answer}]}``: one ``text_qa`` record per QA pair, asked with the case title and description before it.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

from medmo.data.sources._base import Context, LayoutError, SourceInfo, hub_split, list_rows, text
from medmo.data.sources._tables import json_records, parse_options, record, table_files, table_rows
from medmo.records import RecordError, Sample

SOURCES = (
    SourceInfo(
        name="cmb",
        tasks=("mcq", "text_qa"),
        modality="other",
        splits=("test",),
        layout="<root>/*.json or *.jsonl (CMB-Exam test rows: {question, option [{key, value}] or {A: ...}, answer, "
        "question_type, exam_type, exam_class, exam_subject})",
        hub_id="FreedomIntelligence/CMB",
        licence="Apache-2.0 (GitHub FreedomIntelligence/CMB; not re-read)",
        aliases=("cmb_exam",),
    ),
    SourceInfo(
        name="cmb_clin",
        tasks=("text_qa",),
        modality="other",
        splits=("test",),
        layout="<root>/CMB-Clin-qa.json: [{id, title, description, QA_pairs: [{question, answer}]}]",
        hub_id=None,
        licence="Apache-2.0 (GitHub FreedomIntelligence/CMB; not re-read)",
    ),
)
SINGLE = "单项选择题"


def _exam(ctx: Context, r: dict[str, Any], index: int, single_choice: bool) -> Sample | None:
    if single_choice and text(r.get("question_type")) not in ("", SINGLE):
        return None
    options, answer = parse_options(r["option"]), text(r["answer"]).upper()
    meta = {k: text(r.get(k)) for k in ("question_type", "exam_type", "exam_class", "exam_subject") if text(r.get(k))}
    fields: dict[str, Any] = {"split": "test", "question": text(r["question"]), "language": "zh", "meta": meta}
    if answer in options:
        return ctx.sample(text(r.get("id")) or index, text(r["question"]), task="mcq", options=options, answer=answer, **fields)
    if not answer:
        raise RecordError("empty answer")
    lines = "\n".join(f"{k}. {v}" for k, v in options.items())
    fields["question"] = f"{fields['question']}\n{lines}".strip()
    return ctx.sample(text(r.get("id")) or index, text(r["question"]), task="text_qa", answer=answer, **fields)


def _clin(ctx: Context, case: dict[str, Any]) -> list[Sample]:
    head = f"{text(case.get('title'))}\n{text(case.get('description'))}".strip()
    pairs = case["QA_pairs"]
    if not pairs:
        raise RecordError("case has no QA_pairs")
    return [ctx.sample(text(case.get("id")), j, task="text_qa", split="test", question=f"{head}\n\n问题：{text(qa['question'])}",
                       answer=text(qa["answer"]), language="zh") for j, qa in enumerate(pairs)]  # fmt: skip


def load(root: Path, split: str | None, ctx: Context, *, single_choice: bool = True) -> Iterator[Sample]:
    """Yield CMB-Exam questions (``cmb``) or CMB-Clin QA pairs (``cmb_clin``)."""
    if split not in (None, "test"):
        return
    if ctx.source == "cmb_clin":
        path = root if root.is_file() else root / "CMB-Clin-qa.json"
        if not path.is_file():
            raise LayoutError(f"CMB-Clin-qa.json not found in {root}")
        yield from ctx.emit(list_rows(str(path), json_records(path)), lambda c: _clin(ctx, c))
        return
    for f in table_files(root, ("*.jsonl", "*.json", "**/*test*.json", "*.parquet"), "CMB-Exam test file"):
        yield from ctx.emit(((file, line, (line, r)) for file, line, r in table_rows(f)),
                            lambda it: _exam(ctx, record(it[1]), it[0], single_choice))  # fmt: skip


def load_hub(hub_id: str, split: str | None, ctx: Context, *, single_choice: bool = True) -> Iterator[Sample]:
    """CMB-Exam's ``test`` split from the hub (config ``CMB-Exam``)."""
    if split not in (None, "test"):
        return
    rows = list_rows(f"{hub_id}/CMB-Exam[test]", hub_split(hub_id, "CMB-Exam", "test"))
    yield from ctx.emit(((f, i, (i, r)) for f, i, r in rows), lambda it: _exam(ctx, it[1], it[0], single_choice))
