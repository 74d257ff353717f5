"""CMExam (Liu et al., NeurIPS 2023 D&B): 68k questions of the Chinese National Medical Licensing Examination.

Reads the GitHub release ``williamliujl/CMExam`` (``data/{train,val,test}.csv`` with ``Question, Options,
Answer, Explanation`` and annotation columns; ``Options`` is text with one ``A 选项`` per line), or the hub
copy ``fzkuji/CMExam`` that MedEvalKit scores (``Question``, ``Options`` as ``[{key, value}]``, ``Answer``),
also as local JSON / parquet files. A question with several gold letters (``Answer`` like ``BD``) is a
``text_qa`` record with its options in the question.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

from medmo.data.sources._base import Context, LayoutError, SourceInfo, canonical_split, hub_split, list_rows, text
from medmo.data.sources._tables import parse_options, record, table_rows
from medmo.records import RecordError, Sample

SOURCE = SourceInfo(
    name="cmexam",
    tasks=("mcq", "text_qa"),
    modality="other",
    splits=("train", "validation", "test"),
    layout="<root>/[data/]{train,val,test}.csv (williamliujl/CMExam: Question, Options, Answer, Explanation, ...) "
    "or {train,val,test}.json / *.parquet ({Question, Options [{key, value}], Answer})",
    hub_id="fzkuji/CMExam",
    licence="CC BY-NC-SA 4.0 (GitHub README; not re-read)",
)


def _sample(ctx: Context, r: dict[str, Any], split: str, index: int) -> Sample:
    question, options, answer = text(r["Question"]), parse_options(r["Options"]), text(r["Answer"]).upper()
    if not question or not answer:
        raise RecordError("empty Question or Answer")
    meta = {"explanation": text(r.get("Explanation"))[:2000]} if text(r.get("Explanation")) else {}
    key = (split, index, question)
    if answer in options:
        return ctx.sample(*key, task="mcq", split=split, question=question, options=options, answer=answer, language="zh", meta=meta)
    lines = "\n".join(f"{k}. {v}" for k, v in options.items())
    return ctx.sample(*key, task="text_qa", split=split, question=f"{question}\n{lines}".strip(), answer=answer,
                      language="zh", meta=meta)  # fmt: skip


def _files(root: Path) -> dict[str, Path]:
    if root.is_file():
        return {canonical_split(next((s for s in ("train", "val", "test") if s in root.stem), "test")) or "test": root}
    out = {}
    for stem in ("train", "val", "test"):
        hits = [p for suffix in (".csv", ".json", ".jsonl", ".parquet") for p in sorted(root.glob(f"**/{stem}*{suffix}"))]
        if hits:
            out[canonical_split(stem) or stem] = hits[0]
    return out


def load(root: Path, split: str | None, ctx: Context) -> Iterator[Sample]:
    """Yield CMExam questions of the train / val / test files."""
    files = _files(root)
    if not files:
        raise LayoutError(f"no CMExam {{train,val,test}} csv/json under {root}")
    for name, path in files.items():
        if split in (None, name):
            yield from ctx.emit(((f, ln, (ln, r)) for f, ln, r in table_rows(path)),
                                lambda it, n=name: _sample(ctx, record(it[1]), n, it[0]))  # fmt: skip


def load_hub(hub_id: str, split: str | None, ctx: Context) -> Iterator[Sample]:
    """The hub copy's splits (MedEvalKit scores ``test``)."""
    for name in [split] if split else ["test"]:
        rows = list_rows(f"{hub_id}[{name}]", hub_split(hub_id, None, name))
        yield from ctx.emit(((f, i, (i, r)) for f, i, r in rows), lambda it, n=name: _sample(ctx, it[1], n, it[0]))
