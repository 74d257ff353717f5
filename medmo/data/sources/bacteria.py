"""The Bacteria detection set MedMO grounds and reports IoU on: microscopy images with YOLO-labelled bacteria.

Which public release MedMO used is not stated; its loader reads ``images/**/*.jpg`` with same-stem YOLO
labels ``labels/**/*.txt`` (``class cx cy w h``, normalised), as a Roboflow export writes them, and splits
off the last 200 images (half validation, half test). Read here:

* that layout (one folder of images + labels; ``holdout`` tail images become validation / test);
* a Roboflow YOLO export with ``{train,valid,test}/{images,labels}/`` and ``data.yaml`` (the splits as given),
  e.g. Roboflow-100 ``bacteria-ptywi`` (CC BY 4.0);
* the HF COCO mirror ``Francesco/bacteria-ptywi`` (``data/{train,validation,test}-*.parquet``: ``image``,
  ``width``, ``height``, ``objects {bbox [x, y, w, h] px, category}``).

One grounding record per image with every bacterium (label ``Bacteria``), images with more than
``max_boxes`` left out (MedMO: 100; 40 in its GRPO set); ``style`` as in
:mod:`medmo.data.sources._medmo_style` (default ``medmo-sft``: pixels of the image resized to 768 x 768).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

from medmo.boxes import sanitize_box, xywh_to_xyxy
from medmo.data.sources._base import Context, LayoutError, SourceInfo, canonical_split, parquet_rows
from medmo.data.sources._cells import image_record, read_yolo
from medmo.data.sources._medmo_style import check_style
from medmo.records import Box, Sample

SOURCE = SourceInfo(
    name="bacteria",
    tasks=("grounding",),
    modality="microscopy",
    splits=("train", "validation", "test"),
    layout="<root>/images/**/*.jpg + labels/**/<same stem>.txt (YOLO), or a Roboflow export "
    "<root>/{train,valid,test}/{images,labels}/ (+ data.yaml), or <root>/data/{train,validation,test}-*.parquet "
    "(COCO mirror Francesco/bacteria-ptywi)",
    hub_id="Francesco/bacteria-ptywi",
    licence="Roboflow-100 bacteria-ptywi: CC BY 4.0 (which set MedMO used is not stated)",
    aliases=("bacteria_bbox", "bacteria_ptywi"),
)
LABEL = "Bacteria"
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".tif", ".tiff", ".bmp")


def _pairs(images: Path, labels: Path) -> list[tuple[Path, Path]]:
    out = []
    for img in sorted(p for p in images.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES):
        lbl = labels / img.relative_to(images).with_suffix(".txt")
        if lbl.is_file():
            out.append((img, lbl))
    return out


def _tail_split(i: int, n: int, holdout: int) -> str:
    """MedMO's split: the last ``holdout`` images are held out, their first half validation, the rest test."""
    k = min(holdout, n)
    if i < n - k:
        return "train"
    return "validation" if i < n - k + (k + 1) // 2 else "test"


def _record(ctx: Context, img: Path, lbl: Path, split: str, key: str, style: str, max_boxes: int | None) -> Sample | None:
    ref = ctx.image(img)
    if not ref.width:
        raise LayoutError(f"cannot read the size of {img}")
    boxes = [Box(LABEL, b) for _c, b in read_yolo(lbl, ref.width, ref.height)]
    return image_record(ctx, (key,), ref, boxes, split=split, kind="bacteria", style=style, answer=LABEL,
                        max_boxes=max_boxes)  # fmt: skip


def _coco(ctx: Context, r: dict[str, Any], split: str, style: str, max_boxes: int | None) -> Sample | None:
    ref = ctx.embedded(r["image"])
    boxes = [Box(LABEL, sanitize_box(xywh_to_xyxy(b), ref.width, ref.height)) for b in r["objects"]["bbox"]]
    return image_record(ctx, (str(r.get("image_id")),), ref, boxes, split=split, kind="bacteria", style=style,
                        answer=LABEL, max_boxes=max_boxes)  # fmt: skip


def load(root: Path, split: str | None, ctx: Context, *, style: str = "medmo-sft", max_boxes: int | None = 100,
         holdout: int = 200) -> Iterator[Sample]:  # fmt: skip
    """Yield one grounding record per image with all its bacteria."""
    check_style(style)
    parquet = sorted(root.glob("**/*.parquet"))
    if parquet:
        for f in parquet:
            name = canonical_split(next((s for s in ("train", "validation", "valid", "test") if s in f.name), "train"))
            if split in (None, name):
                yield from ctx.emit(parquet_rows(f), lambda r, n=name: _coco(ctx, r, n, style, max_boxes))
        return
    folders = [(canonical_split(d) or d, root / d) for d in ("train", "valid", "validation", "test") if (root / d / "images").is_dir()]
    if folders:
        for name, d in folders:
            if split in (None, name):
                rows = ((str(lbl), None, (img, lbl)) for img, lbl in _pairs(d / "images", d / "labels"))
                yield from ctx.emit(rows, lambda p, n=name, b=d: _record(ctx, p[0], p[1], n, f"{b.name}/{p[0].name}", style, max_boxes))
        return
    if not (root / "images").is_dir() or not (root / "labels").is_dir():
        raise LayoutError(f"no images/ + labels/ (or train/valid/test exports, or parquet) under {root}")
    pairs = _pairs(root / "images", root / "labels")

    def convert(item: tuple[int, tuple[Path, Path]]) -> Sample | None:
        i, (img, lbl) = item
        name = _tail_split(i, len(pairs), holdout)
        key = img.relative_to(root / "images").as_posix()
        return _record(ctx, img, lbl, name, key, style, max_boxes) if split in (None, name) else None

    yield from ctx.emit(((str(lbl), None, (i, (img, lbl))) for i, (img, lbl) in enumerate(pairs)), convert)
