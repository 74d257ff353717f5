"""Size, shape and density statistics of a grounding set: what ``medmo data cells`` reports for the Cell set.

MedMO motivates its Cell grounding sets (CTC, DeepCell/TissueNet, Bacteria) by what makes them hard for a
VLM: many small, dense, similar objects per image. These statistics measure exactly that, per source and
over all records, from the records' own boxes (original-image pixels):

* **size**: images, cells, cells per image (min / median / mean / p95 / max and a histogram against MedMO's
  ``max_boxes`` cut-offs 30, 40 and 100), image sizes, box width and height in pixels, box area as a share
  of the image, and the share of *small* boxes (under 32 x 32 px, the COCO small-object size);
* **shape**: box aspect ratio (width / height) and the share of elongated boxes (ratio above 2 or under 1/2);
* **density**: cells per megapixel, the share of the image the boxes cover, and the share of boxes that
  overlap another box of the same image (IoU > 0).

The paper's own table of these figures could not be read (its text was not available); the report states
what is measured so it can be set beside it.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable
from typing import Any

import numpy as np

from medmo.boxes import pairwise_iou
from medmo.records import Sample

CUTOFFS = (30, 40, 100)  # MedMO's max_boxes filters (GRPO / unresized / resized SFT sets)
SMALL_PX = 32
BINS = ((1, 10), (11, 30), (31, 40), (41, 100), (101, None))


def _summary(values: list[float], digits: int = 2) -> dict[str, float | None]:
    if not values:
        return {"min": None, "p5": None, "median": None, "mean": None, "p95": None, "max": None}
    a = np.asarray(values, np.float64)
    q = np.percentile(a, [5, 50, 95])
    return {"min": round(float(a.min()), digits), "p5": round(float(q[0]), digits), "median": round(float(q[1]), digits),
            "mean": round(float(a.mean()), digits), "p95": round(float(q[2]), digits), "max": round(float(a.max()), digits)}  # fmt: skip


class _Acc:
    """Running lists of one group's per-image and per-box values."""

    def __init__(self) -> None:
        self.counts: list[int] = []
        self.sizes: Counter = Counter()
        self.w: list[float] = []
        self.h: list[float] = []
        self.area_frac: list[float] = []
        self.aspect: list[float] = []
        self.per_mp: list[float] = []
        self.coverage: list[float] = []
        self.overlapping = 0

    def add(self, boxes: np.ndarray, width: int, height: int) -> None:
        n = len(boxes)
        self.counts.append(n)
        self.sizes[(width, height)] += 1
        bw, bh = boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]
        self.w += bw.tolist()
        self.h += bh.tolist()
        self.area_frac += (bw * bh / float(width * height)).tolist()
        self.aspect += (bw / np.maximum(bh, 1e-9)).tolist()
        self.per_mp.append(n / (width * height / 1e6))
        self.coverage.append(float(min(1.0, (bw * bh).sum() / (width * height))))
        if n > 1:
            iou = np.asarray(pairwise_iou(boxes, boxes))
            np.fill_diagonal(iou, 0.0)
            self.overlapping += int((iou > 0).any(axis=1).sum())

    def report(self) -> dict[str, Any]:
        n_boxes = len(self.w)
        hist = {}
        for lo, hi in BINS:
            hist[f"{lo}-{hi}" if hi else f">{lo - 1}"] = sum(lo <= c and (hi is None or c <= hi) for c in self.counts)
        widths = [w for (w, _h) in self.sizes.elements()]
        heights = [h for (_w, h) in self.sizes.elements()]
        return {
            "images": len(self.counts),
            "cells": n_boxes,
            "cells_per_image": _summary(self.counts),
            "cells_per_image_histogram": hist,
            "images_over_max_boxes": {str(k): sum(c > k for c in self.counts) for k in CUTOFFS},
            "image_size": {"width": _summary(widths, 0), "height": _summary(heights, 0),
                           "most_common": [[w, h, k] for (w, h), k in self.sizes.most_common(5)]},  # fmt: skip
            "box_width_px": _summary(self.w, 1),
            "box_height_px": _summary(self.h, 1),
            "box_area_share_of_image": _summary(self.area_frac, 5),
            "small_box_share": round(sum(w < SMALL_PX and h < SMALL_PX for w, h in zip(self.w, self.h)) / n_boxes, 4)
            if n_boxes else None,
            "aspect_ratio": _summary(self.aspect, 3),
            "elongated_share": round(sum(a > 2 or a < 0.5 for a in self.aspect) / n_boxes, 4) if n_boxes else None,
            "cells_per_megapixel": _summary(self.per_mp, 1),
            "box_coverage_of_image": _summary(self.coverage, 4),
            "overlapping_box_share": round(self.overlapping / n_boxes, 4) if n_boxes else None,
        }


def cell_stats(samples: Iterable[Sample]) -> dict[str, Any]:
    """Statistics of the grounding records of ``samples``: ``{"all": {...}, "by_source": {source: {...}}}``.

    Only ``grounding`` records count; boxes on other images than the first of a record are measured against
    their own image's size.
    """
    groups: dict[str, _Acc] = defaultdict(_Acc)
    for s in samples:
        if s.task != "grounding" or not s.boxes:
            continue
        by_image: dict[int, list[list[float]]] = defaultdict(list)
        for b in s.boxes:
            by_image[b.image].append(b.box)
        for index, boxes in by_image.items():
            ref = s.images[index]
            if not ref.width or not ref.height:
                continue
            arr = np.asarray(boxes, np.float64)
            for key in ("all", s.source):
                groups[key].add(arr, int(ref.width), int(ref.height))
    return {"all": groups["all"].report(), "by_source": {k: v.report() for k, v in sorted(groups.items()) if k != "all"}}


def format_stats(stats: dict[str, Any]) -> str:
    """A few lines per group: counts, sizes, shape and density, for the terminal."""
    lines = []
    for name, g in [("all", stats["all"]), *stats["by_source"].items()]:
        if not g["images"]:
            lines.append(f"{name}: no grounding records")
            continue
        c, w, h = g["cells_per_image"], g["box_width_px"], g["box_height_px"]
        lines.append(
            f"{name}: {g['images']} images, {g['cells']} cells; cells/image median {c['median']:g} "
            f"(mean {c['mean']:g}, p95 {c['p95']:g}, max {c['max']:g}); over 30/40/100 boxes: "
            + "/".join(str(v) for v in g["images_over_max_boxes"].values())
        )
        lines.append(
            f"    box {w['median']:g} x {h['median']:g} px median (p5 {w['p5']:g} x {h['p5']:g}, p95 {w['p95']:g} x "
            f"{h['p95']:g}); small (<32 px) {g['small_box_share']:.1%}; aspect w/h median "
            f"{g['aspect_ratio']['median']:g}, elongated {g['elongated_share']:.1%}"
        )
        lines.append(
            f"    density {g['cells_per_megapixel']['median']:g} cells/MP median; boxes cover "
            f"{g['box_coverage_of_image']['median']:.1%} of the image; overlapping boxes {g['overlapping_box_share']:.1%}"
        )
    return "\n".join(lines)
