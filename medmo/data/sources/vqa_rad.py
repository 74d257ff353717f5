"""VQA-RAD (Lau et al., Sci. Data 2018): radiology VQA on MedPix images.

Reads the MEVF split files (``data_RAD/trainset.json``, ``testset.json``: the split used by MEVF, PMC-VQA
and LLaVA-Med evaluations), the original OSF ``VQA_RAD Dataset Public.json``, or the hub copy
``flaviagiammarino/vqa-rad`` (lower-cased, no answer type). Yes/no answers are normalised (casing,
trailing spaces); closed vs open follows ``answer_type`` when present, else "answer is yes/no".
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from medmo.data.sources._base import (
    Context,
    LayoutError,
    SourceInfo,
    canonical_split,
    hub_split,
    list_rows,
    read_json,
    text,
    yes_no,
)
from medmo.records import Sample

SOURCE = SourceInfo(
    name="vqa_rad",
    tasks=("closed_vqa", "open_vqa"),
    modality="other",
    splits=("train", "test"),
    layout="MEVF split: <root>/[data_RAD/]{trainset,testset}.json + images/synpicNNNNN.jpg\n"
           "or OSF: <root>/VQA_RAD Dataset Public.json + 'VQA_RAD Image Folder/'",
    hub_id="flaviagiammarino/vqa-rad",
    licence="CC0-1.0 (HF card)",
    aliases=("vqarad",),
)

MEVF_FILES = {"train": "trainset.json", "test": "testset.json"}
OSF_FILE = "VQA_RAD Dataset Public.json"


def _task(answer: str, answer_type: str) -> str:
    kind = answer_type.strip().upper()
    if kind in ("CLOSED", "OPEN"):
        return "closed_vqa" if kind == "CLOSED" else "open_vqa"
    return "closed_vqa" if answer.lower() in ("yes", "no") else "open_vqa"


def _sample(ctx: Context, r: dict[str, Any], split: str, image_dir: Path) -> Sample:
    answer = yes_no(r["answer"])
    qtypes = [t.strip() for t in text(r.get("question_type")).split(",") if t.strip()]
    return ctx.sample(
        r["qid"],
        task=_task(answer, text(r.get("answer_type"))),
        split=split,
        question=text(r["question"]),
        answer=answer,
        images=[ctx.image(image_dir / text(r["image_name"]))],
        meta={
            "qid": r["qid"],
            "answer_type": text(r.get("answer_type")).upper() or None,
            "question_type": qtypes,
            "organ": text(r.get("image_organ")) or None,
            "phrase_type": text(r.get("phrase_type")) or None,
            "answer_raw": str(r["answer"]) if str(r["answer"]) != answer else None,  # MedEvalKit's prompt reads it
        },
    )


def load(root: Path, split: str | None, ctx: Context) -> Iterator[Sample]:
    """Yield VQA-RAD samples from a MEVF ``data_RAD`` folder or the OSF release folder."""
    for base in (root, root / "data_RAD"):
        if any((base / f).is_file() for f in MEVF_FILES.values()):
            images = next((d for d in (base / "images", root / "images") if d.is_dir()), base / "images")
            for name, fname in MEVF_FILES.items():
                if (split is None or split == name) and (base / fname).is_file():
                    rows = list_rows(str(base / fname), read_json(base / fname))
                    yield from ctx.emit(rows, lambda r, n=name, d=images: _sample(ctx, r, n, d))
            return
    osf = root / OSF_FILE
    if osf.is_file():
        images = root / "VQA_RAD Image Folder"

        def convert(r: dict[str, Any]) -> Sample | None:
            # Test questions carry phrase_type test_freeform / test_para in the OSF file.
            s = "test" if text(r.get("phrase_type")).startswith("test") else "train"
            return _sample(ctx, r, s, images) if split in (None, s) else None

        yield from ctx.emit(list_rows(str(osf), read_json(osf)), convert)
        return
    raise LayoutError(f"no trainset.json / testset.json / {OSF_FILE!r} in {root}")


def load_hub(hub_id: str, split: str | None, ctx: Context) -> Iterator[Sample]:
    """Yield samples of the hub copy (``image``, ``question``, ``answer``; images written to ``image_dir``)."""
    for name in [split] if split else ["train", "test"]:
        ds = hub_split(hub_id, None, name)

        def convert(r: dict[str, Any], name: str = name) -> Sample:
            ref = ctx.embedded(r["image"])
            answer = yes_no(r["answer"])
            key = hashlib.sha1(f"{Path(ref.path).name}\x1f{r['question']}\x1f{answer}".encode()).hexdigest()
            return ctx.sample(
                "hub", key,
                task=_task(answer, ""),
                split=canonical_split(name) or name,
                question=text(r["question"]),
                answer=answer,
                images=[ref],
                meta={"hub_id": hub_id, "answer_raw": str(r["answer"]) if str(r["answer"]) != answer else None},
            )

        yield from ctx.emit(list_rows(f"{hub_id}[{name}]", ds), convert)
