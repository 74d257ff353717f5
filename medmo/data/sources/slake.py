"""SLAKE 1.0 (Liu et al., ISBI 2021): bilingual (English / Chinese) radiology VQA with organ boxes.

Reads ``{train,validate,test}.json`` (JSON arrays) and, for grounding, ``imgs/xmlabN/detection.json``.
``q_lang`` is kept as the record language; ``lang="en"`` (default) keeps the English questions most
papers evaluate (``lang=None`` keeps both). Yes/no answers are lower-cased.

detection.json is a list of single-key objects ``{"<organ>": <box>}``; the numeric layout of ``<box>`` is
not documented, so :func:`to_xyxy` accepts ``[x, y, w, h]`` and ``[x1, y1, x2, y2]`` (and dicts, and lists of
boxes) and, with ``detection_format="auto"``, picks the reading that fits inside the image, falling back
to ``xywh`` when both fit; the choice is written to ``meta["box_format"]``.
Images are shared across splits, so each image's boxes are yielded once, in the first split
(train, validation, test) that uses the image.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

from medmo.boxes import sanitize_box, xywh_to_xyxy
from medmo.data.sources._base import (
    Context,
    LayoutError,
    SourceInfo,
    list_rows,
    map_modality,
    read_json,
    text,
    yes_no,
)
from medmo.records import Box, RecordError, Sample

SOURCE = SourceInfo(
    name="slake",
    tasks=("closed_vqa", "open_vqa", "grounding"),
    modality="other",
    splits=("train", "validation", "test"),
    layout="<root>/[Slake1.0/]{train,validate,test}.json + imgs/xmlabN/{source.jpg,detection.json}",
    hub_id="BoKelvin/SLAKE",
    licence="not stated in the release; commonly cited CC BY 4.0 (verify)",
)

FILES = {"train": "train.json", "validation": "validate.json", "test": "test.json"}


def to_xyxy(raw: list[float], w: int, h: int, fmt: str = "auto") -> tuple[list[float], str]:
    """Read a 4-number box as xyxy or xywh (``fmt="auto"``: the reading that fits the image)."""
    a, b, c, d = (float(v) for v in raw)
    tol = 1.0
    fits_xyxy = c > a and d > b and c <= w + tol and d <= h + tol
    fits_xywh = c > 0 and d > 0 and a + c <= w + tol and b + d <= h + tol
    if fmt == "auto":
        if not (fits_xyxy or fits_xywh):
            raise RecordError(f"box {list(raw)} fits the {w}x{h} image neither as xyxy nor as xywh")
        fmt = "xyxy" if fits_xyxy and not fits_xywh else "xywh"
    return (xywh_to_xyxy([a, b, c, d]) if fmt == "xywh" else [a, b, c, d]), fmt


def _raw_boxes(value: Any) -> list[list[float]]:
    if isinstance(value, dict):
        for keys in (("x1", "y1", "x2", "y2"), ("xmin", "ymin", "xmax", "ymax"), ("x", "y", "w", "h")):
            if all(k in value for k in keys):
                return [[value[k] for k in keys]]
        raise RecordError(f"unrecognised box object {value!r}")
    if isinstance(value, (list, tuple)) and len(value) == 4 and all(isinstance(v, (int, float)) for v in value):
        return [list(value)]
    if isinstance(value, (list, tuple)) and value and all(isinstance(v, (list, tuple, dict)) for v in value):
        return [b for v in value for b in _raw_boxes(v)]
    raise RecordError(f"unrecognised box value {value!r}")


def _detections(det: Any) -> list[tuple[str, Any]]:
    if isinstance(det, dict):
        return list(det.items())
    if isinstance(det, list) and all(isinstance(item, dict) for item in det):
        return [(name, box) for item in det for name, box in item.items()]
    raise RecordError("detection.json is neither a list of {name: box} objects nor an object")


def _grounding(ctx: Context, imgs: Path, img_name: str, split: str, fmt: str) -> list[Sample]:
    img_dir = (imgs / img_name).parent
    det_path = img_dir / "detection.json"
    if not det_path.is_file():
        return []
    ref = ctx.image(imgs / img_name)
    if not ref.width or not ref.height:
        raise RecordError(f"size of {ref.path} unknown; boxes cannot be checked")
    by_name: dict[str, tuple[list[Box], set[str]]] = {}
    for name, value in _detections(read_json(det_path)):
        for raw in _raw_boxes(value):
            xyxy, used = to_xyxy(raw, ref.width, ref.height, fmt)
            boxes, fmts = by_name.setdefault(text(name), ([], set()))
            boxes.append(Box(text(name), sanitize_box(xyxy, ref.width, ref.height)))
            fmts.add(used)
    return [
        ctx.sample(
            "detection", img_dir.name, name,
            task="grounding",
            split=split,
            answer=name,
            boxes=boxes,
            images=[ref],
            meta={"box_format": "/".join(sorted(fmts)) + (" (inferred)" if fmt == "auto" else "")},
        )
        for name, (boxes, fmts) in by_name.items()
    ]


def _qa(ctx: Context, r: dict[str, Any], split: str, imgs: Path, lang: str | None) -> Sample | None:
    q_lang = text(r.get("q_lang")) or "en"
    if lang is not None and q_lang != lang:
        return None
    answer = yes_no(r["answer"])
    return ctx.sample(
        r["qid"],
        task="closed_vqa" if text(r.get("answer_type")).upper() == "CLOSED" else "open_vqa",
        split=split,
        question=text(r["question"]),
        answer=answer,
        images=[ctx.image(imgs / text(r["img_name"]))],
        modality=map_modality(r.get("modality")),
        language=q_lang,
        meta={
            "qid": r["qid"],
            "img_id": r.get("img_id"),
            "answer_type": text(r.get("answer_type")).upper() or None,
            "content_type": text(r.get("content_type")) or None,
            "base_type": text(r.get("base_type")) or None,
            "location": text(r.get("location")) or None,
            # the released spelling ("Yes"): MedEvalKit's SLAKE scoring branches on it
            "answer_raw": str(r["answer"]) if str(r["answer"]) != answer else None,
        },
    )


def load(
    root: Path,
    split: str | None,
    ctx: Context,
    *,
    lang: str | None = "en",
    grounding: bool = True,
    detection_format: str = "auto",
) -> Iterator[Sample]:
    """Yield SLAKE VQA samples (filtered by ``lang``) and, if ``grounding``, organ-box samples."""
    base = next(
        (b for b in (root, root / "Slake1.0") if (b / "train.json").is_file() or (b / "test.json").is_file()), None
    )
    if base is None:
        raise LayoutError(f"no train.json / validate.json / test.json in {root}")
    imgs = base / "imgs"
    splits = {n: read_json(base / f) for n, f in FILES.items() if (base / f).is_file()}
    home: dict[str, str] = {}  # image -> first split that uses it (boxes are yielded there only)
    for name, rows in splits.items():
        for r in rows:
            if isinstance(r, dict) and "img_name" in r:
                home.setdefault(text(r["img_name"]), name)
    for name, rows in splits.items():
        if split not in (None, name):
            continue
        yield from ctx.emit(list_rows(str(base / FILES[name]), rows), lambda r, n=name: _qa(ctx, r, n, imgs, lang))
        if grounding:
            mine = [(f"{imgs / img}", img) for img, s in home.items() if s == name]
            rows_g = ((str(Path(p).parent / "detection.json"), None, img) for p, img in mine)
            yield from ctx.emit(rows_g, lambda img, n=name: _grounding(ctx, imgs, img, n, detection_format))
