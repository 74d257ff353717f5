"""PMC-VQA (Zhang et al., 2023, ``xmcmic/PMC-VQA``): multiple choice over PubMed Central figures.

Reads ``train.csv`` / ``test.csv`` / ``test_clean.csv`` (``version=2``: ``train_2.csv`` / ``test_2.csv``).
The answer column is spelled ``Answer`` or ``Anwser`` depending on the release; choices carry their
letter (``"A:Diffuse uptake"``, sometimes ``" A:..."``), which is stripped. The gold letter is
``Answer_label``; else the ``Answer`` column when it is a letter (version 2); else the choice whose text
(or whole cell) equals the answer.

Version 2 (``test_2.csv``) is the file MedEvalKit evaluates (``utils/PMC_VQA/PMC_VQA.py`` at 9b12e3b reads
``test_2.csv`` and nothing else; the ``pmc_vqa`` benchmark switches to it under ``--preset medevalkit``).
Its records keep the cells MedEvalKit reads, unstripped: ``meta.options_raw`` (the four choice cells, which
are MedEvalKit's choice strings), ``meta.answer_raw`` (the ``Answer`` cell, its gold) and, when it differs
from the stripped question, ``meta.question_raw``.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from medmo.data.sources._base import Context, LayoutError, SourceInfo, csv_rows, text
from medmo.records import RecordError, Sample

SOURCE = SourceInfo(
    name="pmc_vqa",
    tasks=("mcq",),
    modality="other",
    splits=("train", "test", "test_clean"),
    layout="<root>/{train,test,test_clean}.csv (v2: *_2.csv, version=2) + images/<Figure_path>",
    hub_id="xmcmic/PMC-VQA",
    licence="not stated on the card",
    aliases=("pmcvqa",),
)

LETTERS = "ABCD"
_PREFIX = re.compile(r"^\s*([A-D])\s*[:.)]\s*")


def choice_text(raw: Any, letter: str) -> str:
    """``"A:Diffuse uptake"`` / ``" A: x"`` -> the option text (prefix removed only if it is this letter)."""
    s = text(raw)
    m = _PREFIX.match(s)
    return s[m.end() :].strip() if m and m.group(1) == letter else s


def _letter(r: dict[str, Any], options: dict[str, str], answer_text: str) -> str:
    letter = text(r.get("Answer_label")).upper()
    if letter:
        return letter
    if answer_text.upper() in options:  # version 2: the Answer column is the letter
        return answer_text.upper()
    for k, v in options.items():
        if answer_text.lower() in (v.lower(), text(r.get(f"Choice {k}")).lower()):
            return k
    raise RecordError(f"answer {answer_text!r} matches no choice and Answer_label is missing")


def _sample(ctx: Context, r: dict[str, Any], split: str, images: Path, version: int, line: int) -> Sample:
    options = {k: choice_text(r.get(f"Choice {k}"), k) for k in LETTERS if text(r.get(f"Choice {k}"))}
    raw_answer = r.get("Answer", r.get("Anwser"))
    answer_text = text(raw_answer)
    letter = _letter(r, options, answer_text)
    fig = text(r["Figure_path"])
    meta: dict[str, Any] = {"figure": fig, "answer_text": answer_text, "version": version}
    if version == 2:  # the cells MedEvalKit reads, as released
        meta["options_raw"] = {k: str(r.get(f"Choice {k}") or "") for k in LETTERS}
        meta["answer_raw"] = str(raw_answer or "")
        if str(r["Question"]) != text(r["Question"]):
            meta["question_raw"] = str(r["Question"])
    return ctx.sample(
        f"v{version}", split, fig, text(r["Question"]), line,
        task="mcq",
        split=split,
        question=text(r["Question"]),
        answer=letter,
        options=options,
        images=[ctx.image(images / fig)],
        meta=meta,
    )


def load(root: Path, split: str | None, ctx: Context, *, version: int = 1) -> Iterator[Sample]:
    """Yield PMC-VQA samples; ``split`` is ``train``, ``test`` or ``test_clean``."""
    suffix = "_2" if version == 2 else ""
    names = {"train": f"train{suffix}.csv", "test": f"test{suffix}.csv", "test_clean": "test_clean.csv"}
    if version == 2:
        names.pop("test_clean")
    found = {n: root / f for n, f in names.items() if (root / f).is_file()}
    if not found:
        raise LayoutError(f"none of {', '.join(names.values())} in {root}")
    img_dirs = [root / d for d in ((f"images{suffix}", "images", "figures") if suffix else ("images", "figures"))]
    images = next((d for d in img_dirs if d.is_dir()), root)
    for name, path in found.items():
        if split in (None, name):
            yield from ctx.emit(
                ((f, line, (line, r)) for f, line, r in csv_rows(path)),
                lambda lr, n=name: _sample(ctx, lr[1], n, images, version, lr[0]),
            )
