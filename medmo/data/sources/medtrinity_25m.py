"""MedTrinity-25M (Xie et al., 2024, ``UCSC-VLAA/MedTrinity-25M``): images with generated multigranular captions.

Reads the hub (gated; config ``25M_demo`` by default: ``image, id, caption``), a local snapshot of its
parquet files (embedded images are written to ``image_dir``), or a caption table (``.jsonl`` / ``.csv``
with ``id``, ``caption`` and ``image`` or ``file_name``) next to the image files. Captions are model
generated (weak supervision). The modality is guessed from the caption's opening words, else ``other``.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from medmo.data.sources._base import (
    Context,
    LayoutError,
    SourceInfo,
    csv_rows,
    hub_split,
    jsonl_rows,
    list_rows,
    map_modality,
    parquet_rows,
    text,
)
from medmo.records import RecordError, Sample

SOURCE = SourceInfo(
    name="medtrinity_25m",
    tasks=("caption",),
    modality="other",
    splits=("train",),
    layout="<root>/**/*.parquet (HF snapshot: image, id, caption)\n"
           "or <root>/*.{jsonl,csv} (id, caption, image|file_name) + images/",
    hub_id="UCSC-VLAA/MedTrinity-25M",
    licence="not seen (gated HF)",
    aliases=("medtrinity",),
)


def _sample(ctx: Context, r: dict[str, Any], base: Path | None) -> Sample:
    caption = text(r["caption"])
    image = r.get("image", r.get("file_name"))
    if image is None:
        raise RecordError("row has no image / file_name")
    ref = ctx.image(base / text(image)) if isinstance(image, str) and base is not None else ctx.embedded(image)
    rid = text(r.get("id")) or Path(ref.path).stem
    return ctx.sample(
        rid,
        task="caption",
        split="train",
        answer=caption,
        images=[ref],
        modality=map_modality(caption[:160]),
        meta={"medtrinity_id": rid},
    )


def load(root: Path, split: str | None, ctx: Context) -> Iterator[Sample]:
    """Yield caption records from local parquet shards or a jsonl / csv caption table."""
    files = (
        [root]
        if root.is_file()
        else sorted(root.rglob("*.parquet")) or sorted(root.glob("*.jsonl")) or sorted(root.glob("*.csv"))
    )
    if not files:
        raise LayoutError(f"no *.parquet, *.jsonl or *.csv files in {root}")
    for path in files:
        base = path.parent / "images" if (path.parent / "images").is_dir() else path.parent
        if path.suffix == ".parquet":
            yield from ctx.emit(parquet_rows(path), lambda r: _sample(ctx, r, None))
        elif path.suffix == ".jsonl":
            yield from ctx.emit(jsonl_rows(path), lambda r, b=base: _sample(ctx, r, b), json.loads)
        else:
            yield from ctx.emit(csv_rows(path), lambda r, b=base: _sample(ctx, r, b))


def load_hub(hub_id: str, split: str | None, ctx: Context, *, config: str = "25M_demo") -> Iterator[Sample]:
    """Yield the hub config's ``train`` rows (needs an accepted licence and ``huggingface-cli login``)."""
    rows = list_rows(f"{hub_id}/{config}[train]", hub_split(hub_id, config, "train"))
    yield from ctx.emit(rows, lambda r: _sample(ctx, r, None))
