"""PMC-VQA (Zhang et al., 2023, ``xmcmic/PMC-VQA``): multiple choice over PubMed Central figures.

Reads ``train.csv`` / ``test.csv`` / ``test_clean.csv`` (``version=2``: ``train_2.csv`` / ``test_2.csv``).
The answer column is spelled ``Answer`` or ``Anwser`` depending on the release; choices carry their
letter (``"A:Diffuse uptake"``, sometimes ``" A:..."``), which is stripped. The gold letter is
``Answer_label``, or the choice whose text equals the answer when that column is absent.
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


def _sample(ctx: Context, r: dict[str, Any], split: str, images: Path, version: int, line: int) -> Sample:
    options = {k: choice_text(r.get(f"Choice {k}"), k) for k in LETTERS if text(r.get(f"Choice {k}"))}
    answer_text = text(r.get("Answer", r.get("Anwser")))
    letter = text(r.get("Answer_label")).upper()
    if not letter:
        letter = next((k for k, v in options.items() if v.lower() == answer_text.lower()), "")
        if not letter:
            raise RecordError(f"answer {answer_text!r} matches no choice and Answer_label is missing")
    fig = text(r["Figure_path"])
    return ctx.sample(
        f"v{version}", split, fig, text(r["Question"]), line,
        task="mcq",
        split=split,
        question=text(r["Question"]),
        answer=letter,
        options=options,
        images=[ctx.image(images / fig)],
        meta={"figure": fig, "answer_text": answer_text, "version": version},
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
