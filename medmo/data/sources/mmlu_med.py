"""MMLU medical subsets (Hendrycks et al., ICLR 2021): the six subjects of the usual "MMLU-Medical" set.

Subjects as in MedXpertQA's ``prepare_med_bench.ipynb`` / Med-PaLM: anatomy, clinical_knowledge,
college_biology, college_medicine, medical_genetics, professional_medicine (``subjects=`` changes it).
Reads the original headerless CSVs (``{dev,val,test}/<subject>_<split>.csv``: question, A, B, C, D,
letter), JSON Lines with ``question, answer_a..d, correct_answer, topic`` (topic spelled with spaces),
or the hub id ``cais/mmlu`` (answer an int 0-3). Whitespace around questions and options is stripped.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from medmo.data.sources._base import Context, LayoutError, SourceInfo, hub_split, jsonl_rows, list_rows, text
from medmo.records import Sample

SOURCE = SourceInfo(
    name="mmlu_med",
    tasks=("mcq",),
    modality="other",
    splits=("dev", "validation", "test"),
    layout="<root>/{dev,val,test}/<subject>_{dev,val,test}.csv (hendrycks CSV, no header) or <root>/*.jsonl "
           "(question, answer_a..d, correct_answer, topic)",
    hub_id="cais/mmlu",
    licence="MIT",
    aliases=("mmlu_medical", "mmlu"),
)

SUBJECTS = (
    "anatomy",
    "clinical_knowledge",
    "college_biology",
    "college_medicine",
    "medical_genetics",
    "professional_medicine",
)
CSV_SPLITS = {"dev": "dev", "validation": "val", "test": "test"}
LETTERS = "ABCD"


def _sample(ctx: Context, subject: str, split: str, question: str, options: list[Any], letter: str) -> Sample:
    return ctx.sample(
        subject, split, text(question), *[text(o) for o in options],
        task="mcq",
        split=split,
        question=text(question),
        answer=text(letter).upper(),
        options={k: text(o) for k, o in zip(LETTERS, options, strict=False)},
        meta={"subject": subject},
    )


def _csv_rows(path: Path) -> Iterator[tuple[str, int, list[str]]]:
    with open(path, encoding="utf-8", newline="") as f:
        reader = csv.reader(f)
        for row in reader:
            yield str(path), reader.line_num, row


def load(root: Path, split: str | None, ctx: Context, *, subjects: Sequence[str] = SUBJECTS) -> Iterator[Sample]:
    """Yield MMLU medical questions from the CSV release (``data/``) or a JSON Lines dump."""
    base = next((b for b in (root, root / "data") if any((b / d).is_dir() for d in CSV_SPLITS.values())), None)
    if base is not None:
        for name, d in CSV_SPLITS.items():
            for subject in subjects if split in (None, name) else ():
                path = base / d / f"{subject}_{d}.csv"
                if path.is_file():
                    yield from ctx.emit(_csv_rows(path), lambda r, s=subject, n=name: _sample(ctx, s, n, r[0], r[1:5], r[5]))
        return
    files = sorted(root.glob("*.jsonl")) if root.is_dir() else [root]
    if not files:
        raise LayoutError(f"no dev/ val/ test/ CSV folders or *.jsonl files in {root}")
    wanted = {s.replace(" ", "_") for s in subjects}

    def convert(r: dict[str, Any]) -> Sample | None:
        subject = text(r["topic"]).replace(" ", "_")
        if subject not in wanted or split not in (None, "test"):
            return None
        return _sample(ctx, subject, "test", r["question"], [r[f"answer_{k}"] for k in "abcd"], r["correct_answer"])

    for path in files:  # the JSON Lines dump is the test split
        yield from ctx.emit(jsonl_rows(path), convert, json.loads)


def load_hub(hub_id: str, split: str | None, ctx: Context, *, subjects: Sequence[str] = SUBJECTS) -> Iterator[Sample]:
    """Yield ``cais/mmlu`` rows, one config per subject."""
    for subject in subjects:
        for name in [split] if split else ["dev", "validation", "test"]:
            rows = list_rows(f"{hub_id}/{subject}[{name}]", hub_split(hub_id, subject, name))
            yield from ctx.emit(
                rows,
                lambda r, s=subject, n=name: _sample(ctx, s, n, r["question"], list(r["choices"]), _letter(r["answer"])),
            )


def _letter(index: Any) -> str:
    i = int(index)
    if not 0 <= i < len(LETTERS):
        raise ValueError(f"answer index {index!r} is not in 0-3")
    return LETTERS[i]
