"""MedQA-USMLE (Jin et al., 2021, jind11/MedQA): US medical licensing exam questions, text only.

Reads ``data_clean/questions/US/{train,dev,test}.jsonl`` (``options=5``, A-E) or
``4_options/phrases_no_exclude_{train,dev,test}.jsonl`` (``options=4``, A-D, the usual benchmark), or
the hub copy ``GBaker/MedQA-USMLE-4-options`` (same keys). The two files letter the same question
differently, so the option count is part of the record id. Some options and answers are wrapped in
literal ``\"\"\"...\"\"\"`` (CSV escaping of quoted speech); both are unwrapped alike (``strip_quotes``).
The gold letter is ``answer_idx``, checked against the answer text.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from medmo.data.sources._base import (
    Context,
    LayoutError,
    SourceInfo,
    canonical_split,
    hub_split,
    jsonl_rows,
    list_rows,
    text,
)
from medmo.records import RecordError, Sample

SOURCE = SourceInfo(
    name="medqa",
    tasks=("mcq",),
    modality="other",
    splits=("train", "validation", "test"),
    layout="<root>/[data_clean/questions/US/]{train,dev,test}.jsonl (5 options) and "
           "4_options/phrases_no_exclude_{train,dev,test}.jsonl (4 options)",
    hub_id="GBaker/MedQA-USMLE-4-options",
    licence="not checked",
    aliases=("medqa_usmle",),
)

FILE_SPLITS = {"train": "train", "validation": "dev", "test": "test"}
_QUOTED = re.compile(r'^"{3}(.*)"{3}$', re.S)


def unquote(s: Any) -> str:
    """``'\"\"\"Have you ...?\"\"\"'`` -> ``'"Have you ...?"'`` (the speech keeps one pair of quotes)."""
    t = text(s)
    m = _QUOTED.match(t)
    return f'"{m.group(1).strip()}"' if m else t


def _sample(ctx: Context, r: dict[str, Any], split: str, n_opts: int, strip_quotes: bool) -> Sample:
    clean = unquote if strip_quotes else text
    options = {text(k).upper(): clean(v) for k, v in r["options"].items()}
    answer_text = clean(r.get("answer"))
    letter = text(r.get("answer_idx")).upper()
    if not letter:
        letter = next((k for k, v in options.items() if v == answer_text), "")
    if letter in options and answer_text and options[letter] != answer_text:
        raise RecordError(f"answer_idx {letter} is {options[letter]!r} but answer is {answer_text!r}")
    return ctx.sample(
        f"{n_opts}opt", split, text(r["question"]),  # the files have no id
        task="mcq",
        split=split,
        question=text(r["question"]),
        answer=letter,
        options=options,
        meta={"meta_info": text(r.get("meta_info")), "n_options": len(options)},
    )


def _find(root: Path, n_opts: int, file_split: str) -> Path | None:
    if root.is_file():
        return root
    if n_opts == 4:
        pats = [
            f"phrases_no_exclude_{file_split}.jsonl",
            f"4_options/phrases_no_exclude_{file_split}.jsonl",
            f"**/4_options/phrases_no_exclude_{file_split}.jsonl",
        ]
    else:
        pats = [f"{file_split}.jsonl", f"US/{file_split}.jsonl", f"**/questions/US/{file_split}.jsonl"]
    return next((h for p in pats for h in sorted(root.glob(p))), None)


def load(
    root: Path, split: str | None, ctx: Context, *, options: int = 4, strip_quotes: bool = True
) -> Iterator[Sample]:
    """Yield MedQA-USMLE samples from the 4-option (default) or 5-option files (or one given file)."""
    if options not in (4, 5):
        raise ValueError(f"options must be 4 or 5, got {options}")
    found = False
    for name, file_split in FILE_SPLITS.items():
        if split not in (None, name):
            continue
        path = _find(root, options, file_split)
        if path is None:
            continue
        found = True
        if root.is_file():  # a single file: its split comes from its name
            name = canonical_split(next((s for s in ("train", "dev", "test") if s in path.stem), "test")) or "test"
        yield from ctx.emit(jsonl_rows(path), lambda r, n=name: _sample(ctx, r, n, options, strip_quotes), json.loads)
        if root.is_file():
            break
    if not found:
        raise LayoutError(f"no {options}-option MedQA jsonl for split {split or 'any'} under {root}")


def load_hub(hub_id: str, split: str | None, ctx: Context, *, strip_quotes: bool = True) -> Iterator[Sample]:
    """Yield samples from ``GBaker/MedQA-USMLE-4-options`` (keys as in the jsonl files)."""
    for name in [split] if split else ["train", "validation", "test"]:
        rows = list_rows(f"{hub_id}[{name}]", hub_split(hub_id, None, name))
        yield from ctx.emit(rows, lambda r, n=name: _sample(ctx, r, n, len(r["options"]), strip_quotes))
