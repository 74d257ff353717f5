"""ROCOv2 (Rückert et al., Sci. Data 2024): 79,789 radiology figures from PMC with captions and UMLS concepts.

Reads the hub release ``eltorio/ROCOv2-radiology`` as a local snapshot (``data/{train,validation,test}-*.parquet``
with ``image`` (embedded), ``image_id``, ``caption``, ``cui``; 59,962 / 9,904 / 9,927 rows), or the Zenodo
layout: ``{train,valid,test}_captions.csv`` (``ID,Caption``) with the images in ``{train,valid,test}/<ID>.jpg``
and, optionally, ``*_concepts.csv`` (``ID,CUIs``). Captioning records asked with MedMO's caption prompts.
Embedded images are written under ``image_dir``.
"""

from __future__ import annotations

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
    parquet_rows,
    text,
)
from medmo.data.sources._medmo_style import caption_prompt
from medmo.data.sources._tables import record, table_rows
from medmo.records import RecordError, Sample

SOURCE = SourceInfo(
    name="rocov2",
    tasks=("caption",),
    modality="other",
    splits=("train", "validation", "test"),
    layout="<root>/data/{train,validation,test}-*.parquet (image, image_id, caption, cui) or "
    "<root>/{train,valid,test}_captions.csv (ID,Caption) + {train,valid,test}/<ID>.jpg",
    hub_id="eltorio/ROCOv2-radiology",
    licence="CC BY-NC-SA 4.0 (HF card); images from the PMC Open Access subset",
    aliases=("rocov2_radiology", "roco_v2"),
)


def _sample(ctx: Context, rid: str, caption: str, image: Any, split: str, cuis: Any) -> Sample:
    if not caption:
        raise RecordError(f"{rid}: empty caption")
    ref = ctx.image(image) if isinstance(image, Path) else ctx.embedded(image)
    cui = [text(c) for c in cuis] if isinstance(cuis, (list, tuple)) else [c for c in text(cuis).split(";") if c]
    return ctx.sample(rid, task="caption", split=split, question=caption_prompt(rid), answer=caption, images=[ref],
                      modality="other", meta={"image_id": rid, "cui": cui})  # fmt: skip


def load(root: Path, split: str | None, ctx: Context) -> Iterator[Sample]:
    """Yield one captioning record per figure."""
    parquet = [root] if root.suffix == ".parquet" else sorted(root.glob("**/*.parquet"))
    for f in parquet:
        name = canonical_split(next((s for s in ("train", "validation", "valid", "test") if s in f.name), "train"))
        if split in (None, name):
            yield from ctx.emit(parquet_rows(f), lambda r, n=name: _sample(
                ctx, text(r["image_id"]), text(r["caption"]), r["image"], n, r.get("cui")))  # fmt: skip
    if parquet:
        return
    found = False
    for stem in ("train", "valid", "test"):
        caps = root / f"{stem}_captions.csv"
        name = canonical_split(stem) or stem
        if not caps.is_file() or split not in (None, name):
            continue
        found = True
        concepts = {text(r["ID"]): text(r.get("CUIs")) for _f, _l, r in table_rows(root / f"{stem}_concepts.csv")} if (
            root / f"{stem}_concepts.csv").is_file() else {}  # fmt: skip

        def convert(raw: Any, n: str = name, s: str = stem, c: dict = concepts) -> Sample:
            r = record(raw)
            rid = text(r["ID"])
            return _sample(ctx, rid, text(r["Caption"]), root / s / f"{rid}.jpg", n, c.get(rid, ""))

        yield from ctx.emit(table_rows(caps), convert)
    if not found and split is None:
        raise LayoutError(f"no *.parquet or {{train,valid,test}}_captions.csv under {root}")


def load_hub(hub_id: str, split: str | None, ctx: Context) -> Iterator[Sample]:
    """The same from the hub."""
    for name in [split] if split else ["train", "validation", "test"]:
        rows = list_rows(f"{hub_id}[{name}]", hub_split(hub_id, None, name))
        yield from ctx.emit(rows, lambda r, n=name: _sample(ctx, text(r["image_id"]), text(r["caption"]), r["image"], n, r.get("cui")))
