"""medalpaca's Medical Meadow (Han et al., arXiv 2304.08247): instruction / input / output sets.

Each set is a ``medalpaca/medical_meadow_*`` hub dataset (a JSON file of ``{instruction, input, output}``),
also mirrored as a config folder of ``lavita/medical-qa-datasets``
(``<config>/train-00000-of-00001-*.parquet``, same fields). Give the set's folder or its one file.

Records are worded as MedMO's loaders word them (``MAXNORM8650/MedMO`` ``medmo_loader_1.py``):
flashcards, wikidoc, wikidoc patient information and mediqa as ``##Instruction:  {instruction}``
``\\n\\nQuestion: {input}`` (``text_qa``); cord19 as ``{instruction}\\n\\n{input}``; pubmed_causal as a
4-option multiple choice over the fixed relation options; mmmlu and medqa as multiple choice with the
options parsed from ``input`` (``A: ... B: ...`` and ``{'A': ..., ...}``). A row whose answer matches no
option stays a ``text_qa`` record. No set has a split: the last ``holdout`` rows are ``validation``
(MedMO: 500; 300 for pubmed_causal; 200 for cord19 and mmmlu).
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from medmo.data.sources._base import Context, SourceInfo, text
from medmo.data.sources._tables import emit_table, table_files
from medmo.records import RecordError, Sample

SOURCES = (
    SourceInfo(
        name="medical_meadow_flashcards",
        tasks=("text_qa",),
        modality="other",
        splits=("train", "validation"),
        layout="<root>/medical_meadow_wikidoc_medical_flashcards.json (medalpaca) or "
        "<root>/train-*.parquet (lavita/medical-qa-datasets config): {instruction, input, output}",
        hub_id="medalpaca/medical_meadow_medical_flashcards",
        licence="card tag 'cc' (no version stated); Anki flashcards by medical students",
        aliases=("medical_meadow_medical_flashcards",),
    ),
    SourceInfo(
        name="medical_meadow_wikidoc",
        tasks=("text_qa",),
        modality="other",
        splits=("train", "validation"),
        layout="<root>/*.json (medalpaca) or <root>/train-*.parquet (lavita config): {instruction, input, output}",
        hub_id="medalpaca/medical_meadow_wikidoc",
        licence="WikiDoc content, CC BY-SA (per WikiDoc; not re-read on the card)",
    ),
    SourceInfo(
        name="medical_meadow_wikidoc_patient_information",
        tasks=("text_qa",),
        modality="other",
        splits=("train", "validation"),
        layout="<root>/*.json (medalpaca) or <root>/train-*.parquet (lavita config): {instruction, input, output}",
        hub_id="medalpaca/medical_meadow_wikidoc_patient_information",
        licence="WikiDoc content, CC BY-SA (per WikiDoc; not re-read on the card)",
    ),
    SourceInfo(
        name="medical_meadow_mediqa",
        tasks=("text_qa",),
        modality="other",
        splits=("train", "validation"),
        layout="<root>/*.json (medalpaca) or <root>/train-*.parquet (lavita config): {instruction, input, output}",
        hub_id="medalpaca/medical_meadow_mediqa",
        licence="not stated on the card (MEDIQA 2019 task data)",
    ),
    SourceInfo(
        name="medical_meadow_cord19",
        tasks=("text_qa",),
        modality="other",
        splits=("train", "validation"),
        layout="<root>/*.json (medalpaca) or <root>/train-*.parquet (lavita config): {instruction, input, output}",
        hub_id="medalpaca/medical_meadow_cord19",
        licence="CORD-19 terms (per article licences); not re-read on the card",
    ),
    SourceInfo(
        name="medical_meadow_pubmed_causal",
        tasks=("mcq", "text_qa"),
        modality="other",
        splits=("train", "validation"),
        layout="<root>/*.json (medalpaca) or <root>/train-*.parquet (lavita config): {instruction, input, output}",
        hub_id="medalpaca/medical_meadow_pubmed_causal",
        licence="not stated on the card",
    ),
    SourceInfo(
        name="medical_meadow_mmmlu",
        tasks=("mcq", "text_qa"),
        modality="other",
        splits=("train", "validation"),
        layout="<root>/*.json (medalpaca) or <root>/train-*.parquet (lavita config): {instruction, input, output} "
        "with the A-D options in input",
        hub_id="medalpaca/medical_meadow_mmmlu",
        licence="MMLU (MIT); built from MMLU questions: expect overlap with the MMLU benchmark",
    ),
    SourceInfo(
        name="medical_meadow_medqa",
        tasks=("mcq", "text_qa"),
        modality="other",
        splits=("train", "validation"),
        layout="<root>/*.json (medalpaca) or <root>/train-*.parquet (lavita config): {instruction, input, output} "
        "with a {'A': ..., ...} options dict in input",
        hub_id="medalpaca/medical_meadow_medqa",
        licence="MedQA (MIT); built from MedQA questions",
    ),
)
HOLDOUT = {"medical_meadow_pubmed_causal": 300, "medical_meadow_cord19": 200, "medical_meadow_mmmlu": 200}
CAUSAL_OPTIONS = {  # MedMO's fixed options (the fourth with its typo, as trained)
    "A": "This is a directly correlative relationship",
    "B": "This is a conditionally causative relationship",
    "C": "This is a causative relationship",
    "D": "This no relationship.",
}
_OPT = re.compile(r"(?:^|\s)([A-E])\s*[:.)]\s*(.*?)(?=\s[A-E]\s*[:.)]\s|$)", re.S)


def mmlu_options(blob: str) -> tuple[str, dict[str, str]]:
    """``"Question ... A: one B: two ..."`` -> ``(question, {"A": "one", ...})`` (the medalpaca mmmlu input)."""
    first = re.search(r"(?:^|\s)A\s*[:.)]\s", blob)
    if first is None:
        return blob.strip(), {}
    return blob[: first.start()].strip(), {k: v.strip() for k, v in _OPT.findall(blob[first.start() :])}


def dict_options(blob: str) -> tuple[str, dict[str, str]]:
    """``"Question ..., {'A': 'one', ...},"`` -> ``(question, options)`` (the medalpaca medqa input)."""
    m = re.search(r"(.*?)(\{.*\})", blob, re.S)
    if m is None:
        return blob.strip(), {}
    try:
        opts = ast.literal_eval(m.group(2))
    except (ValueError, SyntaxError):
        return blob.strip(), {}
    return m.group(1).strip().rstrip(","), {text(k): text(v) for k, v in opts.items()} if isinstance(opts, dict) else {}


def _letter(answer: str, options: dict[str, str]) -> str:
    key = answer.split(":")[0].split(".")[0].strip().upper()
    if key in options:
        return key
    return next((k for k, v in options.items() if v.strip().lower() == answer.strip().lower()), "")


def _make(ctx: Context, r: dict[str, Any], split: str, index: int) -> Sample:
    instruction, inp, out = text(r["instruction"]), text(r["input"]), text(r["output"])
    if not (inp or instruction) or not out:
        raise RecordError("empty input or output")
    name, options, question = ctx.source, {}, ""
    if name == "medical_meadow_pubmed_causal":
        options = dict(CAUSAL_OPTIONS)
        question = f"##Subject: {inp}\n\nQuestion: Is this describing a :"
    elif name in ("medical_meadow_mmmlu", "medical_meadow_medqa"):
        stem, options = (mmlu_options if name.endswith("mmmlu") else dict_options)(inp)
        question = f"{instruction}\n\nQuestion: {stem}" if instruction else stem
    elif name == "medical_meadow_cord19":
        question = f"{instruction}\n\n{inp}".strip()
    else:
        question = f"##Instruction:  {instruction}\n\nQuestion: {inp}"
    letter = _letter(out, options) if options else ""
    fields: dict[str, Any] = {"task": "text_qa", "split": split, "question": question, "answer": out}
    if letter:
        fields.update(task="mcq", answer=letter, options=options)
    return ctx.sample(index, inp or instruction, **fields)


def load(root: Path, split: str | None, ctx: Context, *, holdout: int | None = None) -> Iterator[Sample]:
    """Yield the set's records; the last ``holdout`` rows (default: MedMO's count) are ``validation``."""
    files = table_files(root, what=f"{ctx.source} JSON or parquet")
    n = HOLDOUT.get(ctx.source, 500) if holdout is None else holdout
    yield from emit_table(ctx, files, split, n, lambda r, s, i: _make(ctx, r, s, i))
