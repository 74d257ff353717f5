"""MedXpertQA (Zuo et al., ICML 2025): expert-level medical exam questions, ``Text`` (10 options) and ``MM`` (5).

Reads the official GitHub eval inputs (``medxpertqa_{mm,text}_input.jsonl``: options as a list of
``{letter, content}``, ``label`` a one-letter list, ``images`` a list of ``{image_path}``), the HF
jsonl form (options dict, ``label`` a string, ``images`` a list of names) or the hub id
``TsinghuaC3I/MedXpertQA``. The question already ends with ``"\\nAnswer Choices: (A) ..."``; that tail
is cut (the prompt template lists the options itself), unless ``keep_choices=True``.
Image names keep their case (``.JPG`` exists).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from medmo.data.sources._base import Context, LayoutError, SourceInfo, hub_split, jsonl_rows, list_rows, text
from medmo.records import RecordError, Sample

SOURCE = SourceInfo(
    name="medxpertqa",
    tasks=("mcq",),
    modality="other",
    splits=("test", "dev"),
    layout="<root>/**/medxpertqa_{mm,text}_input.jsonl (GitHub eval) or <root>/{MM,Text}/*.jsonl;\n"
           "MM images in <root>/images/",
    hub_id="TsinghuaC3I/MedXpertQA",
    licence="MIT",
)

CHOICES_MARK = "\nAnswer Choices:"


def _options(raw: Any) -> dict[str, str]:
    if isinstance(raw, dict):
        return {text(k).upper(): text(v) for k, v in raw.items()}
    return {text(o["letter"]).upper(): text(o["content"]) for o in raw}


def _label(raw: Any) -> str:
    if isinstance(raw, (list, tuple)):
        if len(raw) != 1:
            raise RecordError(f"label {raw!r} should hold exactly one letter")
        raw = raw[0]
    return text(raw).upper()


def _image_names(raw: Any) -> list[str]:
    return [text(i["image_path"] if isinstance(i, dict) else i) for i in raw or []]


def _sample(ctx: Context, r: dict[str, Any], split: str, image_dirs: list[Path], keep_choices: bool) -> Sample:
    question = text(r["question"])
    if not keep_choices and CHOICES_MARK in question:
        question = question[: question.rindex(CHOICES_MARK)].strip()
    images = []
    for name in _image_names(r.get("images")):
        path = next((d / name for d in image_dirs if (d / name).is_file()), image_dirs[0] / name)
        images.append(ctx.image(path))
    rid = text(r["id"])
    return ctx.sample(
        rid,
        task="mcq",
        split=split,
        question=question,
        answer=_label(r["label"]),
        options=_options(r["options"]),
        images=images,
        meta={
            "medxpertqa_id": rid,
            "subset": "MM" if rid.startswith("MM") else "Text",
            "medical_task": text(r.get("medical_task")),
            "body_system": text(r.get("body_system")),
            "question_type": text(r.get("question_type")),
        },
    )


def _subsets(subset: str | None) -> tuple[str, ...]:
    """The subsets to read for the ``subset`` option: ``"mm"``, ``"text"`` (any case) or None for both."""
    if subset is None:
        return ("mm", "text")
    if subset.lower() not in ("mm", "text"):
        raise ValueError(f"medxpertqa: subset must be 'mm', 'text' or None (both), got {subset!r}")
    return (subset.lower(),)


def _image_dirs(images: str | Path | None, *search: Path) -> list[Path]:
    """Folders an image name is looked up in, in order: the ``images`` option first, then ``search``."""
    return [Path(images), *search] if images else list(search)


def _emit(
    ctx: Context, rows: Any, split: str, dirs: list[Path], keep_choices: bool, parse: Callable[[Any], Any] | None = None
) -> Iterator[Sample]:
    """The samples of one jsonl file or hub split (bad rows handled by ``ctx``'s policy)."""
    return ctx.emit(rows, lambda r: _sample(ctx, r, split, dirs, keep_choices), parse)


def _files(root: Path, subsets: tuple[str, ...]) -> list[tuple[Path, str, str]]:
    """``(file, subset, split)`` for every MedXpertQA jsonl under root (sampled subsets excluded)."""
    out = []
    for p in sorted(root.rglob("*.jsonl")) if root.is_dir() else [root]:
        name = p.name.lower()
        if "sampled" in str(p).lower():
            continue
        sub = (
            "mm"
            if ("_mm_" in name or p.parent.name.lower() == "mm")
            else "text"
            if ("_text_" in name or p.parent.name.lower() == "text")
            else None
        )
        if sub in subsets:
            out.append((p, sub, "dev" if "dev" in name else "test"))
    return out


def load(
    root: Path,
    split: str | None,
    ctx: Context,
    *,
    subset: str | None = None,
    keep_choices: bool = False,
    images: str | Path | None = None,
) -> Iterator[Sample]:
    """Yield MedXpertQA samples; ``subset`` is ``"mm"``, ``"text"`` or None (both)."""
    files = _files(root, _subsets(subset))
    if not files:
        raise LayoutError(f"no medxpertqa_{{mm,text}}_input.jsonl or {{MM,Text}}/*.jsonl under {root}")
    for path, _sub, name in files:
        if split not in (None, name):
            continue
        dirs = _image_dirs(images, root / "images", path.parent / "images", root / "MM" / "images", path.parent)
        yield from _emit(ctx, jsonl_rows(path), name, dirs, keep_choices, json.loads)


def load_hub(
    hub_id: str,
    split: str | None,
    ctx: Context,
    *,
    subset: str | None = None,
    keep_choices: bool = False,
    images: str | Path | None = None,
) -> Iterator[Sample]:
    """Yield samples from the hub configs ``MM`` / ``Text``; MM images are looked up in ``images``."""
    dirs = _image_dirs(images) or [Path(".")]
    name = split or "test"
    for config in [c for c in ("MM", "Text") if c.lower() in _subsets(subset)]:
        rows = list_rows(f"{hub_id}/{config}[{name}]", hub_split(hub_id, config, name))
        yield from _emit(ctx, rows, name, dirs, keep_choices)
