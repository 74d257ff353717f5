"""MedFrameQA (Yu et al., arXiv 2505.16964): 2,851 multi-image questions over frames of 3,420 medical videos.

Reads the hub release ``SuhaoYu1020/MedFrameQA`` (a local snapshot's ``**/test-*.parquet``, or the hub id), the
layout MedEvalKit scores: ``question``, ``options`` (list), ``correct_answer`` (letter) and ``image_1`` ..
``image_5`` (embedded images, None when a question has fewer frames), with ``video_id`` and other metadata.
Embedded frames are written under ``image_dir`` (content-hashed names). Evaluation only: one ``test`` split.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

from medmo.data.sources._base import Context, LayoutError, SourceInfo, hub_split, list_rows, parquet_rows, text
from medmo.data.sources._tables import parse_options
from medmo.records import RecordError, Sample

SOURCE = SourceInfo(
    name="medframeqa",
    tasks=("mcq",),
    modality="other",
    splits=("test",),
    layout="<root>/**/test-*.parquet (HF snapshot of SuhaoYu1020/MedFrameQA): question, options, correct_answer, "
    "image_1..image_5",
    hub_id="SuhaoYu1020/MedFrameQA",
    licence="not stated on the card (frames from YouTube videos)",
)
META = ("video_id", "system", "organ", "keyword", "modality")


def _sample(ctx: Context, r: dict[str, Any], index: int) -> Sample:
    frames = [r.get(f"image_{i}") for i in range(1, 6)]
    images = [ctx.embedded(f) for f in frames if f is not None]
    if not images:
        raise RecordError("question has no frames (image_1..image_5 are all empty)")
    options, answer = parse_options(r["options"]), text(r["correct_answer"]).upper()
    if answer not in options:
        raise RecordError(f"correct_answer {answer!r} is not among options {sorted(options)}")
    meta = {k: text(r.get(k)) for k in META if text(r.get(k))}
    return ctx.sample(text(r.get("question_id")) or index, text(r["question"]), task="mcq", split="test",
                      question=text(r["question"]), options=options, answer=answer, images=images, meta=meta)  # fmt: skip


def load(root: Path, split: str | None, ctx: Context) -> Iterator[Sample]:
    """Yield the benchmark's questions from a local snapshot."""
    if split not in (None, "test"):
        return
    files = [root] if root.is_file() else sorted(root.glob("**/test-*.parquet"))
    if not files:
        raise LayoutError(f"no test-*.parquet under {root}")
    for f in files:
        yield from ctx.emit(((p, i, (i, r)) for p, i, r in parquet_rows(f)), lambda it: _sample(ctx, it[1], it[0]))


def load_hub(hub_id: str, split: str | None, ctx: Context) -> Iterator[Sample]:
    """The same from the hub (``test`` split)."""
    if split not in (None, "test"):
        return
    rows = list_rows(f"{hub_id}[test]", hub_split(hub_id, None, "test"))
    yield from ctx.emit(((f, i, (i, r)) for f, i, r in rows), lambda it: _sample(ctx, it[1], it[0]))
