"""An HTML page of sampled grounding predictions drawn over their images (gold vs predicted boxes).

Each card shows the image with the gold boxes (green, solid) and the predicted boxes (red, dashed) as an
SVG overlay in the image's own pixel coordinates, the target label, the IoUs and the raw model answer.
Images are embedded as ``data:`` URLs (downscaled thumbnails), so the page is one self-contained file.
"""

from __future__ import annotations

import base64
import html
import io
import json
import random
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from medmo.data.images import load_image

THUMB = 384
_CSS = """body{font-family:system-ui,sans-serif;margin:1.5em;background:#fafafa}
.grid{display:flex;flex-wrap:wrap;gap:14px}.card{background:#fff;border:1px solid #ddd;padding:8px;width:300px}
svg{width:100%;height:auto;background:#000}.gold{fill:none;stroke:#1db954;stroke-width:3}
.pred{fill:none;stroke:#e53935;stroke-width:3;stroke-dasharray:8 5}small{color:#555;word-break:break-all}
.legend span{margin-right:1.5em}"""


def _thumb_data_url(path: str) -> tuple[str, int, int] | None:
    """``(data URL, width, height)`` of the original image, or None if it cannot be read."""
    try:
        im = load_image(path)
    except (OSError, ValueError):  # a missing image must not sink the whole page
        return None
    w, h = im.size
    im.thumbnail((THUMB, THUMB))
    buf = io.BytesIO()
    im.save(buf, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii"), w, h


def _rects(boxes: Sequence[Sequence[float]], cls: str) -> str:
    return "".join(
        f'<rect class="{cls}" x="{x1:.1f}" y="{y1:.1f}" width="{max(x2 - x1, 0):.1f}" height="{max(y2 - y1, 0):.1f}"/>'
        for x1, y1, x2, y2 in (list(map(float, b)) for b in boxes if len(b) == 4)
    )


def card(row: dict[str, Any]) -> str:
    """One sample's card (image + boxes + scores)."""
    img = _thumb_data_url(row["image"]) if row.get("image") else None
    scores = ", ".join(f"{k} {row[k]:.2f}" for k in ("iou_matched", "iou_first") if isinstance(row.get(k), float))
    if img is None:
        body = f"<p>image not readable: {html.escape(str(row.get('image')))}</p>"
    else:
        url, w, h = img
        body = (
            f'<svg viewBox="0 0 {w} {h}" xmlns="http://www.w3.org/2000/svg">'
            f'<image href="{url}" width="{w}" height="{h}"/>'
            f"{_rects(row.get('boxes') or [], 'gold')}{_rects(row.get('pred_boxes') or [], 'pred')}</svg>"
        )
    return (
        f'<div class="card">{body}<div><b>{html.escape(str(row.get("label", "")))}</b> {scores}</div>'
        f"<small>{html.escape(str(row.get('prediction', ''))[:300])}</small></div>"
    )


def read_rows(path: str | Path) -> list[dict[str, Any]]:
    with Path(path).open(encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def grounding_page(results: dict[str, Any], out_path: str | Path, *, n: int = 12, seed: int = 0) -> Path | None:
    """Write the page for every grounding benchmark of a results dict; None if it has none.

    Args:
        results: a results dict from :func:`medmo.eval.runner.evaluate` (or its file, loaded).
        out_path: the HTML file to write.
        n: samples shown per benchmark (a seeded random choice, the same on every call).
        seed: the sampling seed.
    """
    sections = []
    for name, entry in results.get("benchmarks", {}).items():
        if "grounding" not in ((entry.get("benchmark") or {}).get("metrics") or []):
            continue
        pred_file = Path(entry.get("predictions_file", ""))
        if not pred_file.is_file():
            continue
        rows = read_rows(pred_file)
        chosen = random.Random(seed).sample(rows, min(n, len(rows)))
        m = entry.get("metrics", {})
        head = ", ".join(f"{k} {v:.3f}" for k, v in m.items() if k.startswith("iou") and isinstance(v, float))
        sections.append(f"<h2>{html.escape(name)}</h2><p>{head}</p><div class='grid'>{''.join(map(card, chosen))}</div>")
    if not sections:
        return None
    title = f"Grounding predictions: {html.escape(str(results.get('model')))}"
    page = (
        f"<!doctype html><html><head><meta charset='utf-8'><title>{title}</title><style>{_CSS}</style></head>"
        f"<body><h1>{title}</h1><p class='legend'><span style='color:#1db954'>&#9632; gold</span>"
        f"<span style='color:#e53935'>&#9633; predicted</span> preset {html.escape(str(results.get('preset')))}</p>"
        f"{''.join(sections)}</body></html>"
    )
    out = Path(out_path)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(page, encoding="utf-8")
    return out
