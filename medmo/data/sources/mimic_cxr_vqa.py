"""MIMIC-CXR-VQA (Bae et al., NeurIPS 2023 D&B): 377K template questions on MIMIC-CXR-JPG chest X-rays.

Reads ``mimiccxrvqa/dataset/{train,valid,test}.json`` as written by the dataset's credentialed build script
(``baeseongsu/mimic-cxr-vqa``): JSON lists of ``{split, idx, image_id, question, content_type, semantic_type,
template, template_program, template_arguments, answer, subject_id, study_id, image_path}``, ``image_path``
relative to MIMIC-CXR-JPG's ``files/`` folder (``image_root``, default ``<root>/files`` or ``<root>/images``).
MedMO's cleaned copies (``train_clean_full.json``, ``valid_clean.json``, ``test_clean.json``, a list or
``{"data": [...]}``) are read too. ``answer`` lists are joined with ``", "`` (as MedMO does); ``verify``
questions are closed (yes / no), the others open. Patient and study ids are never copied into records.
PhysioNet credentialed data: only the layout is read here.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

from medmo.data.sources._base import Context, LayoutError, SourceInfo, text, yes_no
from medmo.data.sources._tables import json_records
from medmo.records import RecordError, Sample

SOURCE = SourceInfo(
    name="mimic_cxr_vqa",
    tasks=("closed_vqa", "open_vqa"),
    modality="x-ray",
    splits=("train", "validation", "test"),
    layout="<root>/[mimiccxrvqa/dataset/]{train,valid,test}.json (or MedMO's *_clean*.json) with image_path relative "
    "to image_root (MIMIC-CXR-JPG files/, default <root>/files)",
    licence="PhysioNet credentialed access (MIMIC-CXR-JPG, Chest ImaGenome DUAs); code MIT",
    aliases=("mimiccxr_vqa",),
)
FILES = {"train": ("train.json", "train_clean_full.json", "train_clean.json"),
         "validation": ("valid.json", "valid_clean.json"), "test": ("test.json", "test_clean.json")}  # fmt: skip
META = ("content_type", "semantic_type", "template", "template_program")


def _answer(value: Any) -> str:
    if isinstance(value, (list, tuple)):
        return ", ".join(text(v) for v in value)
    return text(value)


def _sample(ctx: Context, r: dict[str, Any], split: str, image_root: Path) -> Sample:
    question, answer = text(r["question"]).replace("<image>", "").strip(), _answer(r["answer"])
    if not question or not answer:
        raise RecordError("empty question or answer")
    closed = text(r.get("semantic_type")) == "verify" or answer.lower() in ("yes", "no")
    meta = {k: text(r.get(k)) for k in META if text(r.get(k))}
    ref = ctx.image(image_root / text(r["image_path"]))
    return ctx.sample(split, text(r.get("idx")) or text(r.get("id")), question, task="closed_vqa" if closed else "open_vqa",
                      split=split, question=question, answer=yes_no(answer) if closed else answer, images=[ref],
                      modality="x-ray", meta=meta)  # fmt: skip


def load(root: Path, split: str | None, ctx: Context, *, image_root: str | Path | None = None) -> Iterator[Sample]:
    """Yield one VQA record per question of the train / valid / test JSON files."""
    base = next((d for d in (root / "mimiccxrvqa" / "dataset", root / "dataset", root) if d.is_dir()), root)
    images = Path(image_root) if image_root else next((d for d in (root / "files", root / "images") if d.is_dir()), root)
    found = False
    for name, names in FILES.items():
        path = next((base / n for n in names if (base / n).is_file()), None)
        if path is None or split not in (None, name):
            continue
        found = True
        yield from ctx.emit(((str(path), i, r) for i, r in enumerate(json_records(path))),
                            lambda r, n=name: _sample(ctx, r, n, images))  # fmt: skip
    if not found:
        raise LayoutError(f"no {{train,valid,test}}.json for split {split or 'any'} under {base}")
