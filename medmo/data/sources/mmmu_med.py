"""MMMU "Health and Medicine" (Yue et al., CVPR 2024): college-level multimodal questions.

Reads the HF parquet files (``<Subject>/<split>-00000-of-00001.parquet``) or the hub id ``MMMU/MMMU``
(one config per subject). ``options`` is a Python-literal list *string*, parsed with
:func:`ast.literal_eval` (never ``eval``); letters follow list order as in the official
``mmmu/utils/data_utils.py``. Items with options and a letter answer become ``mcq`` records, including
the few "short-answer" items that have letter answers; other open items become ``open_vqa``.
Test answers are hidden, so test items are skipped with a reason. Images ``image_1..7`` are written to
``image_dir``; ``<image n>`` markers stay in the question.

Option order is the list order, A, B, C ... (MedEvalKit's ``utils/MMMU/data_utils.py`` at 9b12e3b builds
its choices the same way: ``eval`` of the string, letters in order, no shuffling). Options, answer and
question are stored stripped; where the release differs, ``meta`` keeps what MedEvalKit reads as is:
``options_raw`` (letter -> option as released), ``answer_raw`` and ``question_raw``. ``meta.question_type``
is kept too: MedEvalKit decides multiple choice vs open by it, not by the options.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from medmo.data.sources._base import (
    Context,
    LayoutError,
    SourceInfo,
    hub_split,
    list_rows,
    map_modality,
    parquet_rows,
    text,
)
from medmo.records import LETTERS, RecordError, Sample, options_from_list

SOURCE = SourceInfo(
    name="mmmu_med",
    tasks=("mcq", "open_vqa"),
    modality="other",
    splits=("dev", "validation", "test"),
    layout="<root>/<Subject>/{dev,validation,test}-00000-of-00001.parquet (HF snapshot of MMMU/MMMU)",
    hub_id="MMMU/MMMU",
    licence="Apache-2.0",
    aliases=("mmmu",),
)

SUBJECTS = (
    "Basic_Medical_Science",
    "Clinical_Medicine",
    "Diagnostics_and_Laboratory_Medicine",
    "Pharmacy",
    "Public_Health",
)
SPLITS = ("dev", "validation", "test")


def parse_options(raw: Any, *, strip: bool = True) -> list[str]:
    """``"['a', 'b']"`` -> ``['a', 'b']`` (a real list is returned as is); ``strip=False`` keeps the
    options' surrounding spaces."""
    if isinstance(raw, (list, tuple)):
        return [text(o) if strip else str(o) for o in raw]
    s = text(raw)
    if not s:
        return []
    try:
        value = ast.literal_eval(s)
    except (ValueError, SyntaxError) as e:
        raise RecordError(f"options is not a Python list literal: {e}") from None
    if not isinstance(value, (list, tuple)):
        raise RecordError(f"options literal is a {type(value).__name__}, expected a list")
    return [text(o) if strip else str(o) for o in value]


def _sample(ctx: Context, r: dict[str, Any], subject: str, split: str) -> Sample:
    answer = text(r.get("answer"))
    if not answer or answer == "?":
        raise RecordError(f"{r['id']}: answer hidden (MMMU test answers are not public)")
    raw_options = parse_options(r.get("options"), strip=False)
    options = options_from_list([text(o) for o in raw_options])
    qtype = text(r.get("question_type"))
    is_mcq = bool(options) and len(answer) == 1 and answer.upper() in LETTERS[: len(options)]
    images = [ctx.embedded(r[f"image_{i}"]) for i in range(1, 8) if r.get(f"image_{i}") is not None]
    meta: dict[str, Any] = {
        "mmmu_id": r["id"],
        "subject": subject,
        "question_type": qtype,
        "subfield": text(r.get("subfield")),
        "difficulty": text(r.get("topic_difficulty")),
        "open_options": [] if is_mcq else list(options.values()),
    }
    if raw_options != list(options.values()):
        meta["options_raw"] = dict(zip(options, raw_options))
    stored = answer.upper() if is_mcq else answer
    if str(r.get("answer")) != stored:
        meta["answer_raw"] = str(r.get("answer"))
    if str(r["question"]) != text(r["question"]):
        meta["question_raw"] = str(r["question"])
    return ctx.sample(
        r["id"],
        task="mcq" if is_mcq else "open_vqa",
        split=split,
        question=text(r["question"]),
        answer=stored,
        options=options if is_mcq else {},
        images=images,
        modality=map_modality(r.get("img_type")),
        meta=meta,
    )


def load(root: Path, split: str | None, ctx: Context, *, subjects: Sequence[str] = SUBJECTS) -> Iterator[Sample]:
    """Yield samples from a local snapshot of ``MMMU/MMMU`` (images written to ``image_dir``)."""
    if not any((root / s).is_dir() for s in subjects):
        raise LayoutError(f"none of the subject folders {', '.join(subjects)} in {root}")
    for subject in subjects:
        for name in SPLITS:
            if split not in (None, name):
                continue
            for path in sorted((root / subject).glob(f"{name}-*.parquet")):
                yield from ctx.emit(parquet_rows(path), lambda r, s=subject, n=name: _sample(ctx, r, s, n))


def load_hub(hub_id: str, split: str | None, ctx: Context, *, subjects: Sequence[str] = SUBJECTS) -> Iterator[Sample]:
    """Yield samples from the hub, one config per subject."""
    for subject in subjects:
        for name in [split] if split else ["dev", "validation"]:
            rows = list_rows(f"{hub_id}/{subject}[{name}]", hub_split(hub_id, subject, name))
            yield from ctx.emit(rows, lambda r, s=subject, n=name: _sample(ctx, r, s, n))
