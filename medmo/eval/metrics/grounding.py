"""Grounding metrics: per-sample IoU three ways, and corpus Acc@t and F1@0.5.

Per sample (every name says which rule it uses, so a table never mixes them up):

* ``iou_first``: IoU of the *first* predicted box with the first gold box - MedSG-Bench's rule
  (``eval/MedSG_Bench.py`` ``compute_iou`` / ``eval/utils.py`` ``calculate_iou`` in the authors' code:
  the first parsed box, thresholds ``iou >= t``); no predicted box scores 0;
* ``iou_best``: the best IoU over all (predicted, gold) pairs;
* ``iou_matched``: Hungarian one-to-one matching (:func:`medmo.boxes.match_boxes`), summed IoU divided by
  ``max(#pred, #gold)`` so extra and missing boxes both cost (1.0 when both sets are empty).

Corpus: the mean of each, ``acc@0.3/0.5/0.7(first)`` (share of samples with ``iou_first >= t``, MedSG-Bench's
IOU@t), and ``f1@0.5(matched)``: micro F1 where a matched pair with IoU >= 0.5 is a true positive,
``2 TP / (#pred + #gold)`` over the whole set.

Predictions arrive as model text (parsed with :func:`medmo.answers.parse_boxes`; grid units are mapped to
pixels with :func:`medmo.boxes.from_grid` and the image size) or as box lists already in pixels.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from medmo.answers import PARSER_VERSION, parse_boxes
from medmo.boxes import from_grid, match_boxes, pairwise_iou

GROUNDING_VERSION = f"grounding-1+{PARSER_VERSION}"
THRESHOLDS = (0.3, 0.5, 0.7)


def pred_boxes_px(
    prediction: str | Sequence[Any], width: float | None, height: float | None, units: str = "grid"
) -> list[list[float]]:
    """Predicted boxes in pixels from model text or a box list.

    Args:
        prediction: model output text, or a list of ``[x1, y1, x2, y2]`` (or objects with ``.box``).
        width, height: image size; needed when ``units == "grid"``.
        units: ``"grid"`` (0-1000, Qwen3-VL / MedMO) or ``"pixel"`` for coordinates of the prediction.
    """
    if units not in ("grid", "pixel"):
        raise ValueError(f"units must be 'grid' or 'pixel', got {units!r}")
    if isinstance(prediction, str) or prediction is None:
        boxes = [pb.box for pb in parse_boxes(prediction or "")]
    else:
        boxes = [list(getattr(b, "box", b)) for b in prediction]
    if units == "pixel":
        return [[float(v) for v in b] for b in boxes]
    return [from_grid(b, width, height) for b in boxes if len(b) == 4]


def sample_scores(pred_px: Sequence[Sequence[float]], gold_px: Sequence[Sequence[float]]) -> dict[str, float]:
    """Per-sample IoUs and the counts F1@0.5 needs (all boxes in the same pixel units)."""
    pred, gold = [list(b) for b in pred_px], [list(b) for b in gold_px]
    out = {"n_pred": float(len(pred)), "n_gold": float(len(gold))}
    if not pred or not gold:
        empty = float(not pred and not gold)
        return {**out, "iou_first": 0.0, "iou_best": 0.0, "iou_matched": empty, "tp@0.5": 0.0}
    m = pairwise_iou(pred, gold)
    matching = match_boxes(pred, gold)
    return {
        **out,
        "iou_first": float(m[0, 0]),
        "iou_best": float(m.max()),
        "iou_matched": sum(matching.scores) / max(len(pred), len(gold)),
        "tp@0.5": float(sum(s >= 0.5 for s in matching.scores)),
    }


def aggregate(rows: Sequence[dict[str, float]]) -> dict[str, float]:
    """Corpus means, Acc@t on the first-box IoU and micro F1@0.5 on matched boxes."""
    if not rows:
        return {}
    n = len(rows)
    agg = {f"{k}_mean": sum(r[k] for r in rows) / n for k in ("iou_first", "iou_best", "iou_matched")}
    for t in THRESHOLDS:
        agg[f"acc@{t}(first)"] = sum(r["iou_first"] >= t for r in rows) / n
    denom = sum(r["n_pred"] + r["n_gold"] for r in rows)
    agg["f1@0.5(matched)"] = 2 * sum(r["tp@0.5"] for r in rows) / denom if denom else 1.0
    return agg


def grounding(
    predictions: Sequence[str | Sequence[Any]],
    references: Sequence[Sequence[Sequence[float]]],
    *,
    image_sizes: Sequence[tuple[float, float] | None] | None = None,
    units: str = "grid",
) -> dict:
    """Score a grounding set.

    Args:
        predictions: per sample, model text or predicted boxes.
        references: per sample, gold boxes ``[[x1, y1, x2, y2], ...]`` in pixels (a single box is accepted).
        image_sizes: per sample ``(width, height)``; required for grid-unit predictions.
        units: units of the predictions (``"grid"`` or ``"pixel"``).

    Returns:
        ``{"aggregate": {...}, "per_sample": [...], "version": GROUNDING_VERSION}``.
    """
    if len(predictions) != len(references):
        raise ValueError(f"{len(predictions)} predictions but {len(references)} references")
    sizes = list(image_sizes) if image_sizes is not None else [None] * len(predictions)
    rows = []
    for i, (pred, gold, size) in enumerate(zip(predictions, references, sizes)):
        if units == "grid" and not size:
            raise ValueError(f"sample {i}: grid-unit predictions need the image size (width, height)")
        w, h = size if size else (None, None)
        gold = [gold] if gold and not isinstance(gold[0], (list, tuple)) else list(gold or [])
        rows.append(sample_scores(pred_boxes_px(pred, w, h, units), gold))
    return {"aggregate": aggregate(rows), "per_sample": rows, "version": GROUNDING_VERSION}
