"""MedQA-MCMLE (Jin et al., 2021): the Chinese mainland medical licensing exam part of MedQA, 5 options.

Reads the original ``data_clean/questions/Mainland/{train,dev,test}.jsonl`` of ``jind11/MedQA`` (fields
``question, options {A..E}, answer, answer_idx, meta_info``), or the hub copy
``shuyuej/MedQA-MCMLE-Benchmark`` that MedEvalKit scores (the test questions, published as its ``train``
split; read here as ``test``). Text only; the gold letter is ``answer_idx``, checked against ``answer``.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

from medmo.data.sources._base import Context, LayoutError, SourceInfo, hub_split, list_rows, text
from medmo.data.sources._tables import parse_options, record, table_rows
from medmo.records import RecordError, Sample

SOURCE = SourceInfo(
    name="medqa_mcmle",
    tasks=("mcq",),
    modality="other",
    splits=("train", "validation", "test"),
    layout="<root>/[data_clean/questions/]Mainland/{train,dev,test}.jsonl (jind11/MedQA): "
    "{question, options, answer, answer_idx, meta_info}",
    hub_id="shuyuej/MedQA-MCMLE-Benchmark",
    licence="MIT (MedQA repository)",
    aliases=("mcmle", "medqa_mainland"),
)
FILE_SPLITS = {"train": "train", "validation": "dev", "test": "test"}


def _sample(ctx: Context, r: dict[str, Any], split: str) -> Sample:
    options = parse_options(r["options"])
    letter = text(r.get("answer_idx")).upper() or next((k for k, v in options.items() if v == text(r.get("answer"))), "")
    if letter in options and text(r.get("answer")) and options[letter] != text(r["answer"]):
        raise RecordError(f"answer_idx {letter} is {options[letter]!r} but answer is {text(r['answer'])!r}")
    return ctx.sample(split, text(r["question"]), task="mcq", split=split, question=text(r["question"]), options=options,
                      answer=letter, language="zh", meta={"meta_info": text(r.get("meta_info"))})  # fmt: skip


def load(root: Path, split: str | None, ctx: Context) -> Iterator[Sample]:
    """Yield MCMLE questions from the Mainland jsonl files (or one given file, read as ``test``)."""
    found = False
    for name, stem in FILE_SPLITS.items():
        if split not in (None, name):
            continue
        path = root if root.is_file() else next(
            (p for pat in (f"{stem}.jsonl", f"Mainland/{stem}.jsonl", f"**/Mainland/{stem}.jsonl") for p in sorted(root.glob(pat))), None
        )  # fmt: skip
        if path is None:
            continue
        found = True
        n = "test" if root.is_file() else name
        yield from ctx.emit(table_rows(path), lambda r, n=n: _sample(ctx, record(r), n))
        if root.is_file():
            return
    if not found:
        raise LayoutError(f"no Mainland/{{train,dev,test}}.jsonl for split {split or 'any'} under {root}")


def load_hub(hub_id: str, split: str | None, ctx: Context) -> Iterator[Sample]:
    """The hub copy: its one ``train`` split holds the test questions."""
    if split not in (None, "test"):
        return
    yield from ctx.emit(list_rows(f"{hub_id}[train]", hub_split(hub_id, None, "train")), lambda r: _sample(ctx, r, "test"))
