"""Medbullets op4 / op5 (Chen et al., NAACL 2025, ``HanjieChen/ChallengeClinicalQA``): USMLE Step 2/3 cases.

Reads ``medbullets_op4`` (options A-D) and ``medbullets_op5`` (A-E) as CSV (CRLF, quoted multi-line
fields) or JSON (pandas' default column-oriented layout ``{"column": {"<row>": value}}``). The two files
hold the same questions in different row and option orders, so the option count is part of the id;
10 questions appear twice under different links and are kept (set ``dedupe=True`` to drop repeats).
Everything is one evaluation split, ``test``.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

from medmo.data.sources._base import Context, LayoutError, SourceInfo, csv_rows, list_rows, read_json, text
from medmo.records import RecordError, Sample

SOURCE = SourceInfo(
    name="medbullets",
    tasks=("mcq",),
    modality="other",
    splits=("test",),
    layout="<root>/[medbullets/]medbullets_op{4,5}.{csv,json} (JSON is pandas column-oriented)",
    licence="none stated (research use)",
)


def columns_to_rows(data: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """pandas ``to_json()`` column layout -> row dicts, ordered by the integer row key."""
    if not isinstance(data, dict) or not all(isinstance(v, dict) for v in data.values()):
        raise RecordError("expected a column-oriented JSON object {column: {row: value}}")
    keys = sorted({k for col in data.values() for k in col}, key=lambda k: int(k))
    return [{col: values.get(k) for col, values in data.items()} for k in keys]


def _sample(ctx: Context, r: dict[str, Any], n_opts: int, row: int) -> Sample:
    letters = "ABCDE"[:n_opts]
    options = {k: text(r[f"op{k.lower()}"]) for k in letters}
    letter = text(r["answer_idx"]).upper()
    if letter not in options:
        raise RecordError(f"answer_idx {letter!r} is not one of {letters}")
    if text(r.get("answer")) and text(r["answer"]) != options[letter]:
        raise RecordError(f"answer {r['answer']!r} differs from option {letter} {options[letter]!r}")
    return ctx.sample(
        f"op{n_opts}", row, text(r["question"]),
        task="mcq",
        split="test",
        question=text(r["question"]),
        answer=letter,
        options=options,
        meta={"link": text(r.get("link")), "n_options": n_opts},
    )


def _rows(path: Path) -> Iterator[tuple[str, int | None, tuple[int, dict[str, Any]]]]:
    if path.suffix == ".json":
        for f, i, r in list_rows(str(path), columns_to_rows(read_json(path))):
            yield f, i, (i, r)
    else:
        for i, (f, line, r) in enumerate(csv_rows(path)):
            yield f, line, (i, r)


def load(
    root: Path,
    split: str | None,
    ctx: Context,
    *,
    options: tuple[int, ...] | int = (4, 5),
    fmt: str = "csv",
    dedupe: bool = False,
) -> Iterator[Sample]:
    """Yield Medbullets questions from the op4 and/or op5 files (``fmt`` ``csv`` or ``json``)."""
    base = next((b for b in (root, root / "medbullets") if any(b.glob("medbullets_op*"))), None)
    if base is None:
        raise LayoutError(f"no medbullets_op4 / medbullets_op5 files in {root}")
    seen: set[tuple[int, str]] = set()
    for n in (options,) if isinstance(options, int) else options:
        path = next((p for p in (base / f"medbullets_op{n}.{e}" for e in (fmt, "json", "csv")) if p.is_file()), None)
        if path is None:
            continue

        def convert(ir: tuple[int, dict[str, Any]], n: int = n) -> Sample | None:
            key = (n, text(ir[1].get("question")))
            if dedupe and key in seen:
                return None
            seen.add(key)
            return _sample(ctx, ir[1], n, ir[0])

        yield from ctx.emit(_rows(path), convert)
