"""CMMLU (Li et al., ACL Findings 2024): Chinese multitask understanding, the medical subjects MedEvalKit scores.

Reads the GitHub / hub release ``haonan-li/cmmlu``: ``data/{dev,test}/<subject>.csv`` with columns
``,Question,A,B,C,D,Answer`` (a leading unnamed index column). ``subjects`` defaults to MedEvalKit's medical
list: anatomy, clinical_knowledge, college_medicine, genetics, traditional_chinese_medicine, nutrition,
virology. A merged file with ``task, question, A, B, C, D, answer`` (MedEvalKit's layout) is read too.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from medmo.data.sources._base import Context, LayoutError, SourceInfo, text
from medmo.data.sources._tables import record, table_rows
from medmo.records import RecordError, Sample

SOURCE = SourceInfo(
    name="cmmlu",
    tasks=("mcq",),
    modality="other",
    splits=("dev", "test"),
    layout="<root>/[data/]{dev,test}/<subject>.csv (haonan-li/cmmlu: ,Question,A,B,C,D,Answer) or one file with "
    "task, question, A..D, answer",
    hub_id="haonan-li/cmmlu",
    licence="CC BY-NC 4.0 (GitHub README; not re-read)",
)
SUBJECTS = ("anatomy", "clinical_knowledge", "college_medicine", "genetics", "traditional_chinese_medicine",
            "nutrition", "virology")  # fmt: skip


def _sample(ctx: Context, r: dict[str, Any], subject: str, split: str) -> Sample | None:
    subject = text(r.get("task")) or subject
    question = text(r.get("Question") or r.get("question"))
    answer = text(r.get("Answer") or r.get("answer")).upper()
    options = {k: text(r[k]) for k in "ABCD"}
    if answer not in options:
        raise RecordError(f"Answer {answer!r} is not A-D")
    return ctx.sample(subject, split, question, task="mcq", split=split, question=question, options=options,
                      answer=answer, language="zh", meta={"subject": subject})  # fmt: skip


def load(root: Path, split: str | None, ctx: Context, *, subjects: Sequence[str] = SUBJECTS) -> Iterator[Sample]:
    """Yield the questions of the chosen subjects (all subjects when ``subjects`` is empty)."""
    if root.is_file():
        keep = set(subjects)

        def merged(raw: Any) -> Sample | None:
            r = record(raw)
            return _sample(ctx, r, "", "test") if not keep or text(r.get("task")) in keep else None

        yield from ctx.emit(table_rows(root), merged)
        return
    found = False
    for name in ("dev", "test"):
        if split not in (None, name):
            continue
        folder = next((d for d in (root / name, root / "data" / name) if d.is_dir()), None)
        if folder is None:
            continue
        for path in sorted(folder.glob("*.csv")):
            if subjects and path.stem not in subjects:
                continue
            found = True
            yield from ctx.emit(table_rows(path), lambda r, s=path.stem, n=name: _sample(ctx, record(r), s, n))
    if not found:
        raise LayoutError(f"no CMMLU {{dev,test}}/<subject>.csv for {', '.join(subjects) or 'any subject'} under {root}")
