"""PathVQA (He et al., 2020): pathology VQA from textbooks and PEIR.

Reads the official ``qas/{train,val,test}/*_qa.pkl`` (lists of ``{image, question, answer}``) with a
restricted unpickler that refuses every class or function (the files hold only builtin containers and
strings, so nothing executable is ever loaded), or the hub copy ``flaviagiammarino/path-vqa``.
Exact duplicate (image, question, answer) triplets, frequent in the raw files, are dropped by default as
in the hub processing script. Closed = answer is yes/no (the dataset has no answer-type field).
"""

from __future__ import annotations

import pickle
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
    text,
    yes_no,
)
from medmo.records import RecordError, Sample

SOURCE = SourceInfo(
    name="pathvqa",
    tasks=("closed_vqa", "open_vqa"),
    modality="pathology",
    splits=("train", "validation", "test"),
    layout="<root>/[pvqa/]qas/{train,val,test}/{train,val,test}_qa.pkl + images/{train,val,test}/<image>.jpg",
    hub_id="flaviagiammarino/path-vqa",
    licence="repo LICENSE; images (c) textbook publishers / PEIR",
    aliases=("path_vqa",),
)

SPLIT_DIRS = {"train": "train", "validation": "val", "test": "test"}


class _SafeUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        raise RecordError(f"refusing to load {module}.{name} from a PathVQA pickle (only plain data is expected)")


def _read_pkl(path: Path) -> list[dict[str, Any]]:
    with open(path, "rb") as f:
        data = _SafeUnpickler(f).load()
    if not isinstance(data, list):
        raise RecordError(f"{path}: expected a list of QA dicts, got {type(data).__name__}")
    return data


def _sample(ctx: Context, r: dict[str, Any], split: str, images: list[Any], key: str) -> Sample:
    answer = yes_no(r["answer"])
    return ctx.sample(
        split, key, text(r["question"]), answer,
        task="closed_vqa" if answer in ("yes", "no") else "open_vqa",
        split=split,
        question=text(r["question"]),
        answer=answer,
        images=images,
        modality="pathology",
        meta={"image": key},
    )


def load(root: Path, split: str | None, ctx: Context, *, dedupe: bool = True) -> Iterator[Sample]:
    """Yield PathVQA samples from the official ``pvqa`` folder."""
    base = next((b for b in (root, root / "pvqa") if (b / "qas").is_dir()), None)
    if base is None:
        raise LayoutError(f"no qas/ folder in {root}")
    seen: set[str] = set()
    for name, d in SPLIT_DIRS.items():
        pkl = base / "qas" / d / f"{d}_qa.pkl"
        if split not in (None, name) or not pkl.is_file():
            continue

        def convert(r: dict[str, Any], name: str = name, d: str = d) -> Sample | None:
            stem = text(r["image"])
            img = next((p for p in (base / "images" / d / f"{stem}{e}" for e in (".jpg", ".png")) if p.is_file()), None)
            s = _sample(ctx, r, name, [ctx.image(img or base / "images" / d / f"{stem}.jpg")], stem)
            if dedupe and s.id in seen:
                return None
            seen.add(s.id)
            return s

        yield from ctx.emit(list_rows(str(pkl), _read_pkl(pkl)), convert)


def load_hub(hub_id: str, split: str | None, ctx: Context) -> Iterator[Sample]:
    """Yield samples of the hub copy (lower-cased, de-duplicated; images written to ``image_dir``)."""
    for name in [split] if split else ["train", "validation", "test"]:
        rows = list_rows(f"{hub_id}[{name}]", hub_split(hub_id, None, name))

        def convert(r: dict[str, Any], name: str = name) -> Sample:
            ref = ctx.embedded(r["image"])
            return _sample(ctx, r, canonical_split(name) or name, [ref], Path(ref.path).stem)

        yield from ctx.emit(rows, convert)
