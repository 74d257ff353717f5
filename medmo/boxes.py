"""Box formats, Qwen3-VL's 0-1000 grid, IoU / GIoU and one-to-one box matching.

This is the one module that converts between the two box conventions of MedMO:

* **records** store absolute pixels of the original image, ``[x1, y1, x2, y2]`` (x to the right, y down,
  ``x2``/``y2`` exclusive edges, so a box's width is ``x2 - x1``), with the image size beside them;
* **the model** reads and writes Qwen3-VL's relative integer grid: each coordinate divided by the image
  side and scaled to 0-1000 (Qwen3-VL technical report, "relative coordinates normalised to [0, 1000]"),
  unless a record's :class:`BoxConvention` says otherwise: MedMO's own training data states some boxes in
  pixels of the original image or of the image resized to 768 x 768 (``meta["box_convention"]``).

Rounding and clamping (decided once, here):

* ``to_grid``: ``g = floor(v / size * 1000 + 0.5)`` (round half up, not Python's banker's rounding, so the
  grid never depends on parity), then clamped to ``[0, 1000]``;
* ``from_grid``: ``v = g / 1000 * size`` (floats, no rounding, no clamping: a model's out-of-range
  coordinate stays visible to the metric, which treats it like any other box).

A pixel -> grid -> pixel round trip of a box inside the image moves each edge by at most half a grid
cell (``size / 2000`` pixels).

Data boxes are cleaned with :func:`sanitize_box` (clipped to the image; empty or inverted ones raise
:class:`BoxError`). Predicted boxes are never "fixed": a degenerate prediction (zero area, inverted,
non-finite) scores IoU 0 and GIoU -1, the worst value of each, so a reward cannot be gamed by emitting one.

IoU / GIoU follow Rezatofighi et al., "Generalized Intersection over Union", CVPR 2019 (Algorithm 1);
matching uses the Hungarian algorithm from :func:`scipy.optimize.linear_sum_assignment`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

GRID = 1000


class BoxError(ValueError):
    """A data box that cannot be used (wrong length, non-finite, empty or inverted after clipping)."""


# ----------------------------------------------------------------------------------------- formats


def _four(box: Sequence[float], name: str = "box") -> list[float]:
    vals = [float(v) for v in box]
    if len(vals) != 4:
        raise BoxError(f"{name} must have 4 numbers [x1, y1, x2, y2], got {len(vals)}: {list(box)!r}")
    return vals


def xywh_to_xyxy(box: Sequence[float]) -> list[float]:
    """``[x, y, w, h]`` (top-left corner + size, COCO style) -> ``[x1, y1, x2, y2]``."""
    x, y, w, h = _four(box)
    return [x, y, x + w, y + h]


def xyxy_to_xywh(box: Sequence[float]) -> list[float]:
    """``[x1, y1, x2, y2]`` -> ``[x, y, w, h]`` (top-left corner + size)."""
    x1, y1, x2, y2 = _four(box)
    return [x1, y1, x2 - x1, y2 - y1]


def cxcywh_to_xyxy(box: Sequence[float]) -> list[float]:
    """``[cx, cy, w, h]`` (centre + size, YOLO / DETR style) -> ``[x1, y1, x2, y2]``."""
    cx, cy, w, h = _four(box)
    return [cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2]


def xyxy_to_cxcywh(box: Sequence[float]) -> list[float]:
    """``[x1, y1, x2, y2]`` -> ``[cx, cy, w, h]``."""
    x1, y1, x2, y2 = _four(box)
    return [(x1 + x2) / 2, (y1 + y2) / 2, x2 - x1, y2 - y1]


def _check_size(width: float | None, height: float | None) -> None:
    if not width or not height or width <= 0 or height <= 0:
        raise BoxError(
            f"image size must be positive to convert boxes, got width={width!r} height={height!r}; "
            "set ImageRef.width/height on the record"
        )


def _round_half_up(x: float) -> int:
    return int(math.floor(x + 0.5))


def to_grid(box_px: Sequence[float], width: float, height: float) -> list[int]:
    """Absolute pixel ``[x1, y1, x2, y2]`` -> Qwen3-VL grid integers in ``[0, 1000]``.

    ``g = floor(v / size * 1000 + 0.5)`` clamped to ``[0, 1000]`` (x uses ``width``, y uses ``height``).

    Raises:
        BoxError: the box does not have 4 numbers, or the image size is missing / not positive.
    """
    _check_size(width, height)
    x1, y1, x2, y2 = _four(box_px)
    out = []
    for v, size in ((x1, width), (y1, height), (x2, width), (y2, height)):
        if not math.isfinite(v):
            raise BoxError(f"box coordinate is not finite: {list(box_px)!r}")
        out.append(min(GRID, max(0, _round_half_up(v / size * GRID))))
    return out


def from_grid(box_grid: Sequence[float], width: float, height: float) -> list[float]:
    """Grid ``[x1, y1, x2, y2]`` (0-1000) -> absolute pixels, ``v = g / 1000 * size`` (no clamping)."""
    _check_size(width, height)
    x1, y1, x2, y2 = _four(box_grid)
    return [x1 / GRID * width, y1 / GRID * height, x2 / GRID * width, y2 / GRID * height]


# ------------------------------------------------------------------------------------ conventions


@dataclass(frozen=True)
class BoxConvention:
    """How a model-facing text states boxes, and the image size its numbers refer to.

    * ``grid`` (default): Qwen3-VL's relative 0-1000 grid (:func:`to_grid`);
    * ``pixel``: absolute pixels of the original image (MedMO's GRPO sets);
    * ``pixel@WxH``: pixels of the image resized to W x H, each axis scaled on its own (MedMO's SFT Cell,
      wrist, NIH and DeepLesion sets use ``pixel@768x768``).

    A record states its convention in ``meta["box_convention"]`` (:func:`convention_of`); records themselves
    always keep original-image pixels. Conversions round half up and clamp to the target extent, like
    :func:`to_grid`; the way back (:meth:`from_target`) neither rounds nor clamps, like :func:`from_grid`.
    """

    kind: str = "grid"
    size: tuple[int, int] | None = None

    @classmethod
    def parse(cls, spec: str | BoxConvention | None) -> BoxConvention:
        """``"grid"``, ``"pixel"``, ``"pixel@768"`` or ``"pixel@768x768"`` (None means grid)."""
        if isinstance(spec, BoxConvention):
            return spec
        text = str(spec if spec is not None else "grid").strip().lower()
        if text in ("grid", "pixel"):
            return cls(text)
        kind, _, size = text.partition("@")
        w, x, h = size.partition("x")
        h = h if x else w  # "pixel@768" is square
        if kind == "pixel" and w.isdigit() and h.isdigit() and int(w) > 0 and int(h) > 0:
            return cls("pixel", (int(w), int(h)))
        raise BoxError(f"unknown box convention {spec!r}; use 'grid', 'pixel' or 'pixel@WxH' (e.g. 'pixel@768x768')")

    def __str__(self) -> str:
        return f"pixel@{self.size[0]}x{self.size[1]}" if self.size else self.kind

    def extent(self, width: float, height: float) -> tuple[float, float]:
        """The largest x and y a target box can have for an original image of this size."""
        if self.kind == "grid":
            return float(GRID), float(GRID)
        return (float(self.size[0]), float(self.size[1])) if self.size else (float(width), float(height))

    def to_target(self, box_px: Sequence[float], width: float, height: float) -> list[int]:
        """Original-image pixels -> integers in this convention (grid: exactly :func:`to_grid`)."""
        if self.kind == "grid":
            return to_grid(box_px, width, height)
        _check_size(width, height)
        ex, ey = self.extent(width, height)
        out = []
        for v, size, ext in zip(_four(box_px), (width, height, width, height), (ex, ey, ex, ey)):
            if not math.isfinite(v):
                raise BoxError(f"box coordinate is not finite: {list(box_px)!r}")
            out.append(int(min(ext, max(0, _round_half_up(v / size * ext)))))
        return out

    def from_target(self, box: Sequence[float], width: float, height: float) -> list[float]:
        """Numbers in this convention -> original-image pixels (grid: exactly :func:`from_grid`)."""
        if self.kind == "grid":
            return from_grid(box, width, height)
        _check_size(width, height)
        ex, ey = self.extent(width, height)
        x1, y1, x2, y2 = _four(box)
        return [x1 / ex * width, y1 / ey * height, x2 / ex * width, y2 / ey * height]


GRID_CONVENTION = BoxConvention()
CONVENTION_KEY = "box_convention"  # the record ``meta`` key naming a record's convention


def convention_of(meta: Mapping[str, Any] | None) -> BoxConvention:
    """The convention a record's target text uses: ``meta["box_convention"]``, else the 0-1000 grid."""
    return BoxConvention.parse((meta or {}).get(CONVENTION_KEY))


def clip_box(box: Sequence[float], w: float, h: float) -> list[float]:
    """Clip ``[x1, y1, x2, y2]`` to the image ``[0, w] x [0, h]`` (may leave an empty box)."""
    x1, y1, x2, y2 = _four(box)
    return [min(max(x1, 0.0), w), min(max(y1, 0.0), h), min(max(x2, 0.0), w), min(max(y2, 0.0), h)]


def sanitize_box(box: Sequence[float], w: float, h: float) -> list[float]:
    """Clip a data box to the image and reject it if nothing is left.

    Raises:
        BoxError: wrong length, non-finite values, inverted corners, or zero area after clipping;
            the message names the box and the image size.
    """
    vals = _four(box)
    if not all(math.isfinite(v) for v in vals):
        raise BoxError(f"box {vals!r} has non-finite coordinates")
    _check_size(w, h)
    if vals[2] < vals[0] or vals[3] < vals[1]:
        raise BoxError(f"box {vals!r} is inverted (x2 < x1 or y2 < y1); expected [x1, y1, x2, y2]")
    out = clip_box(vals, w, h)
    if out[2] <= out[0] or out[3] <= out[1]:
        raise BoxError(f"box {vals!r} is empty after clipping to the {w}x{h} image; drop it or fix its coordinates")
    return out


# ------------------------------------------------------------------------------------- IoU / GIoU


def _is_torch(x: Any) -> bool:
    return type(x).__module__.split(".")[0] == "torch"


def _pairwise_np(a: np.ndarray, b: np.ndarray, generalized: bool) -> np.ndarray:
    a = np.asarray(a, dtype=np.float64).reshape(-1, 4)
    b = np.asarray(b, dtype=np.float64).reshape(-1, 4)
    va = np.isfinite(a).all(1) & (a[:, 2] > a[:, 0]) & (a[:, 3] > a[:, 1])
    vb = np.isfinite(b).all(1) & (b[:, 2] > b[:, 0]) & (b[:, 3] > b[:, 1])
    a = np.where(va[:, None], a, 0.0)  # keep NaNs out of the arithmetic; masked below
    b = np.where(vb[:, None], b, 0.0)
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    lt = np.maximum(a[:, None, :2], b[None, :, :2])
    rb = np.minimum(a[:, None, 2:], b[None, :, 2:])
    wh = np.clip(rb - lt, 0.0, None)
    inter = wh[..., 0] * wh[..., 1]
    union = area_a[:, None] + area_b[None, :] - inter
    valid = va[:, None] & vb[None, :]
    with np.errstate(divide="ignore", invalid="ignore"):
        iou = np.where(valid, inter / np.where(valid, union, 1.0), 0.0)
        iou = np.clip(iou, 0.0, 1.0)
        if not generalized:
            return iou
        hull_wh = np.maximum(a[:, None, 2:], b[None, :, 2:]) - np.minimum(a[:, None, :2], b[None, :, :2])
        hull = hull_wh[..., 0] * hull_wh[..., 1]
        g = iou - (hull - union) / np.where(valid, hull, 1.0)
    return np.where(valid, np.clip(g, -1.0, 1.0), -1.0)


def _pairwise_torch(a: Any, b: Any, generalized: bool) -> Any:
    import torch

    a = a.reshape(-1, 4)
    b = torch.as_tensor(b, dtype=a.dtype, device=a.device).reshape(-1, 4)
    if not a.is_floating_point():
        a, b = a.double(), b.double()
    va = torch.isfinite(a).all(1) & (a[:, 2] > a[:, 0]) & (a[:, 3] > a[:, 1])
    vb = torch.isfinite(b).all(1) & (b[:, 2] > b[:, 0]) & (b[:, 3] > b[:, 1])
    a = torch.where(va[:, None], a, torch.zeros_like(a))
    b = torch.where(vb[:, None], b, torch.zeros_like(b))
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    lt = torch.maximum(a[:, None, :2], b[None, :, :2])
    rb = torch.minimum(a[:, None, 2:], b[None, :, 2:])
    wh = (rb - lt).clamp(min=0)
    inter = wh[..., 0] * wh[..., 1]
    union = area_a[:, None] + area_b[None, :] - inter
    valid = va[:, None] & vb[None, :]
    one = torch.ones_like(union)
    iou = torch.where(valid, inter / torch.where(valid, union, one), torch.zeros_like(union)).clamp(0, 1)
    if not generalized:
        return iou
    hull_wh = torch.maximum(a[:, None, 2:], b[None, :, 2:]) - torch.minimum(a[:, None, :2], b[None, :, :2])
    hull = hull_wh[..., 0] * hull_wh[..., 1]
    g = iou - (hull - union) / torch.where(valid, hull, one)
    return torch.where(valid, g.clamp(-1, 1), -one)


def pairwise_iou(A: Any, B: Any) -> Any:
    """IoU of every box in ``A`` (N x 4, xyxy) with every box in ``B`` (M x 4): an N x M matrix.

    Takes numpy arrays / nested lists (returns float64 numpy) or torch tensors (returns a tensor on
    ``A``'s device, differentiable). Degenerate boxes (zero area, inverted, non-finite) score 0.
    """
    return _pairwise_torch(A, B, False) if _is_torch(A) else _pairwise_np(A, B, False)


def pairwise_giou(A: Any, B: Any) -> Any:
    """Generalized IoU (Rezatofighi et al. 2019) of every pair, N x M, in ``[-1, 1]``.

    Same input rules as :func:`pairwise_iou`; a pair with a degenerate box scores -1.
    """
    return _pairwise_torch(A, B, True) if _is_torch(A) else _pairwise_np(A, B, True)


def iou(a: Sequence[float], b: Sequence[float]) -> float:
    """IoU of two ``[x1, y1, x2, y2]`` boxes in ``[0, 1]`` (0 if either is degenerate)."""
    return float(_pairwise_np(_row(a), _row(b), False)[0, 0])


def giou(a: Sequence[float], b: Sequence[float]) -> float:
    """GIoU of two ``[x1, y1, x2, y2]`` boxes in ``[-1, 1]`` (-1 if either is degenerate)."""
    return float(_pairwise_np(_row(a), _row(b), True)[0, 0])


def _row(box: Any) -> np.ndarray:
    """One box as a 1 x 4 float array; anything that is not 4 numbers becomes a degenerate (NaN) box."""
    try:
        arr = np.asarray(box, dtype=np.float64).reshape(-1)
    except (TypeError, ValueError):
        arr = np.empty(0)
    if arr.size != 4:
        arr = np.full(4, np.nan)
    return arr.reshape(1, 4)


# --------------------------------------------------------------------------------------- matching


@dataclass
class Matching:
    """A one-to-one assignment of predicted boxes to gold boxes.

    Attributes:
        pairs: ``(pred_index, gold_index)`` pairs, sorted by ``pred_index``.
        scores: the IoU (or GIoU) of each pair, aligned with ``pairs``.
        unmatched_pred: predicted boxes left without a gold partner (false positives).
        unmatched_gold: gold boxes left without a predicted partner (false negatives).
    """

    pairs: list[tuple[int, int]] = field(default_factory=list)
    scores: list[float] = field(default_factory=list)
    unmatched_pred: int = 0
    unmatched_gold: int = 0


def _matrix(boxes: Any) -> np.ndarray:
    if _is_torch(boxes):
        boxes = boxes.detach().cpu().double().numpy()
    if isinstance(boxes, np.ndarray):
        return boxes.astype(np.float64).reshape(-1, 4)
    rows = [_row(getattr(b, "box", b))[0] for b in boxes]  # lists, or objects with .box (ParsedBox, Box)
    return np.asarray(rows, dtype=np.float64).reshape(-1, 4)


def match_boxes(pred: Any, gold: Any, metric: str = "iou", min_score: float | None = None) -> Matching:
    """Hungarian one-to-one matching of predicted to gold boxes, maximizing total IoU or GIoU.

    Args:
        pred: predicted boxes (N x 4 xyxy; list, numpy, torch, or objects with ``.box``). Malformed rows
            count as degenerate.
        gold: gold boxes (M x 4 xyxy) in the same units.
        metric: ``"iou"`` or ``"giou"``.
        min_score: if given, assigned pairs scoring below it are dropped (both boxes count as unmatched).

    Returns:
        :class:`Matching` with ``min(N, M)`` pairs (fewer if ``min_score`` drops some).
    """
    if metric not in ("iou", "giou"):
        raise ValueError(f"metric must be 'iou' or 'giou', got {metric!r}")
    from scipy.optimize import linear_sum_assignment

    P, G = _matrix(pred), _matrix(gold)
    if len(P) == 0 or len(G) == 0:
        return Matching([], [], len(P), len(G))
    S = _pairwise_np(P, G, metric == "giou")
    rows, cols = linear_sum_assignment(S, maximize=True)
    pairs, scores = [], []
    for r, c in zip(rows.tolist(), cols.tolist()):
        if min_score is None or S[r, c] >= min_score:
            pairs.append((r, c))
            scores.append(float(S[r, c]))
    return Matching(pairs, scores, len(P) - len(pairs), len(G) - len(pairs))
