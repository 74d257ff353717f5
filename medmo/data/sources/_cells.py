"""Shared pieces of the box loaders MedMO's grounding stages use: YOLO label files, instance masks, one record per image.

MedMO's Cell sets (CTC, DeepCell, Bacteria) and the wrist-fracture set give *one* grounding record per image
holding every box (``Cell: [ [..], [..], ... ]``), leaving out images with more than ``max_boxes`` boxes
(MedMO: 100 for the resized SFT sets, 30-40 elsewhere) and images without any. Records keep original-image
pixels; the loader's ``style`` names the prompt and box convention (:mod:`medmo.data.sources._medmo_style`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from medmo.boxes import BoxError, cxcywh_to_xyxy, sanitize_box
from medmo.data.masks import boxes_from_labels, instances_from_mask
from medmo.data.sources._base import Context
from medmo.data.sources._medmo_style import styled
from medmo.records import Box, ImageRef, RecordError, Sample


def read_yolo(path: Path, width: int, height: int) -> list[tuple[int, list[float]]]:
    """``class cx cy w h`` lines (normalised to [0, 1]) -> ``(class, [x1, y1, x2, y2] pixels)``, clipped to the image.

    Raises:
        RecordError: a line that is not 5 numbers (extra confidence columns are ignored), naming the line.
    """
    out = []
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        parts = line.split()
        if not parts:
            continue
        try:
            cls, cx, cy, w, h = int(float(parts[0])), *(float(v) for v in parts[1:5])
        except (ValueError, TypeError):
            raise RecordError(f"{path.name}:{n}: expected 'class cx cy w h', got {line.strip()!r}") from None
        try:
            out.append((cls, sanitize_box(cxcywh_to_xyxy([cx * width, cy * height, w * width, h * height]), width, height)))
        except BoxError as e:
            raise RecordError(f"{path.name}:{n}: {e}") from None
    return out


def mask_boxes(mask: Any, label: str, min_area: int = 1) -> list[Box]:
    """One box per instance of an instance-label (or binary) mask, instances smaller than ``min_area`` px dropped."""
    return [Box(label, [float(v) for v in c.box]) for c in boxes_from_labels(instances_from_mask(mask)) if c.area >= min_area]


def image_record(
    ctx: Context, key: tuple[Any, ...], ref: ImageRef, boxes: list[Box], *, split: str, kind: str, style: str,
    answer: str, modality: str = "microscopy", max_boxes: int | None = None, meta: dict[str, Any] | None = None,
) -> Sample | None:  # fmt: skip
    """The grounding record of one image with every box, or None (left out) without boxes or with too many."""
    if not boxes or (max_boxes is not None and len(boxes) > max_boxes):
        return None
    question, meta = styled(kind, style, "/".join(str(k) for k in key), {"n_boxes": len(boxes), **(meta or {})})
    return ctx.sample(*key, task="grounding", split=split, question=question, answer=answer, boxes=boxes,
                      images=[ref], modality=modality, meta=meta)  # fmt: skip
