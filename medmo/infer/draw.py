"""Draw grounded boxes on an image (for ``medmo ground --out`` and quick looks in notebooks)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    from PIL import Image

# Distinct colours that stay visible on grayscale medical images (no grays, no near-black).
PALETTE = ((255, 59, 48), (52, 199, 89), (0, 122, 255), (255, 204, 0), (175, 82, 222), (255, 149, 0))


def draw_boxes(image: Image.Image, boxes: Sequence[Any], *, width: int | None = None) -> Image.Image:
    """A copy of ``image`` with each box outlined and labelled.

    Args:
        image: the image the boxes' pixel coordinates refer to.
        boxes: :class:`~medmo.infer.api.GroundedBox` objects, or dicts with ``box`` and ``label``.
        width: outline width in pixels (default: about 0.5% of the longer side, at least 2).
    """
    from PIL import ImageDraw

    out = image.convert("RGB")
    draw = ImageDraw.Draw(out)
    lw = width or max(2, round(max(out.size) / 200))
    for i, b in enumerate(boxes):
        box = b["box"] if isinstance(b, dict) else b.box
        label = b.get("label") if isinstance(b, dict) else b.label
        x1, y1, x2, y2 = (float(v) for v in box)
        x1, x2 = sorted((x1, x2))
        y1, y2 = sorted((y1, y2))
        colour = PALETTE[i % len(PALETTE)]
        draw.rectangle([x1, y1, x2, y2], outline=colour, width=lw)
        if label:
            ty = y1 - 12 - lw if y1 >= 12 + lw else y1 + lw  # above the box, else inside it
            draw.text((x1 + lw, ty), str(label), fill=colour)
    return out
