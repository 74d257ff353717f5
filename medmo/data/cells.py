"""MedMO's "Cell" grounding set: microscopy images + instance masks -> tiles, one box per cell, Samples.

MedMO (Deria et al., 2025) adds a cell-detection grounding set built from public microscopy instance
segmentations. This module reproduces that construction for any image + mask pairs:

1. instance labels: an instance-label mask is used as is; a binary mask is split into connected
   components (:func:`scipy.ndimage.label`), optionally separated further by a distance-transform
   watershed (:func:`skimage.segmentation.watershed`) so touching cells get their own boxes;
2. one box per instance (``x2``/``y2`` exclusive, as in :mod:`medmo.boxes`) from :func:`scipy.ndimage.find_objects`;
3. large images are tiled (``tile_size`` with ``overlap``); a cell cut by a tile border is dropped from that
   tile (the overlap lets it appear whole in a neighbour), as are cells below ``min_area`` pixels;
4. per tile: a "detect all cells" grounding sample, a "largest cell" grounding sample when the largest
   cell is unambiguous, and counting questions (open and yes/no) when every cell in the tile is whole.

The Cell set MedMO trains on is built from published microscopy releases instead
(:func:`build_cell_set`): the Cell Tracking Challenge's instance masks, TissueNet's npz arrays and the
YOLO-labelled Bacteria set, through their loaders (:mod:`medmo.data.sources.ctc`, ``tissuenet``,
``bacteria``): one grounding record per image with every cell, in MedMO's prompt and box style, and the
size, shape and density statistics of :mod:`medmo.data.cell_stats`.

Without user data it runs on scikit-image's bundled microscopy images (``data.immunohistochemistry()``,
whose hematoxylin channel shows nuclei, and ``data.cell()``) with a classical segmentation: Gaussian
smoothing, Otsu threshold, hole filling and a distance-transform watershed (the scikit-image
"watershed segmentation" gallery recipe). Those masks are a baseline for demos and tests, not curated
ground truth.
"""

from __future__ import annotations

import json
import logging
import math
import random
import re
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from medmo.data.cell_stats import cell_stats
from medmo.data.images import load_image
from medmo.data.io import read_records, write_jsonl
from medmo.data.masks import CellBox, boxes_from_labels, instances_from_mask, read_mask, watershed_split
from medmo.data.sources import SourceStats, load_source
from medmo.records import Box, ImageRef, Sample, stable_id

log = logging.getLogger(__name__)

SOURCE = "cells"
LABEL = "cell"
ALL_CELLS_PROMPT = (
    "Detect all cells in the image. Give each box as cell <box>[[x1, y1, x2, y2]]</box> "
    "with coordinates on a 0-1000 grid."
)
LARGEST_PROMPT = (
    "Locate the largest cell in the image. Give its box as largest cell <box>[[x1, y1, x2, y2]]</box> "
    "with coordinates on a 0-1000 grid."
)
COUNT_PROMPT = "How many cells are in this image? Answer with a number."
MORE_THAN_PROMPT = "Are there more than {k} cells in this image?"
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp")
MASK_SUFFIXES = IMAGE_SUFFIXES + (".npy",)
MASK_STEM_SUFFIXES = ("", "_mask", "_masks", "_label", "_labels", "_seg", "-mask", "_instances")


@dataclass
class CellOptions:
    """How tiles and boxes are made.

    Attributes:
        tile_size: side of square tiles; images no larger than this stay whole.
        overlap: pixels shared by neighbouring tiles (cells smaller than this survive tiling whole).
        min_area: cells with fewer mask pixels are dropped.
        min_side: cells whose box is narrower or shorter than this are dropped.
        max_boxes: tiles with more cells get no "detect all" sample (the answer would be too long).
        largest_margin: the largest cell must be this many times larger than the second to be asked about.
        watershed: split binary masks with a distance-transform watershed (instance masks are kept).
        min_distance: minimum distance between watershed seeds, in pixels.
    """

    tile_size: int = 512
    overlap: int = 64
    min_area: int = 20
    min_side: int = 3
    max_boxes: int = 100
    largest_margin: float = 1.2
    watershed: bool = False
    min_distance: int = 5


# ----------------------------------------------------------------------------------------------------
# masks -> instances -> boxes


def segment_cells(gray: np.ndarray, *, bright: bool = True, sigma: float = 1.0, min_distance: int = 5,
                  min_area: int = 20) -> np.ndarray:  # fmt: skip
    """Classical instance segmentation: Gaussian blur, Otsu threshold, fill holes, watershed split."""
    from scipy import ndimage as ndi
    from skimage.filters import gaussian, threshold_otsu

    g = gaussian(np.asarray(gray, np.float64), sigma=sigma)
    fg = g > threshold_otsu(g) if bright else g < threshold_otsu(g)
    fg = ndi.binary_fill_holes(fg)
    labels, n = ndi.label(fg)
    if n:
        sizes = np.bincount(labels.ravel())
        fg = sizes[labels] >= min_area
        fg[labels == 0] = False
    return watershed_split(fg, min_distance=min_distance)


# ----------------------------------------------------------------------------------------------------
# tiling


def tile_windows(width: int, height: int, tile_size: int, overlap: int) -> list[tuple[int, int, int, int]]:
    """Tile windows ``(x0, y0, x1, y1)`` covering the image, evenly spaced with at least ``overlap`` shared pixels."""
    if tile_size <= 0 or not 0 <= overlap < tile_size:
        raise ValueError(f"need tile_size > 0 and 0 <= overlap < tile_size, got {tile_size}, {overlap}")

    def starts(n: int) -> list[int]:
        if n <= tile_size:
            return [0]
        count = math.ceil((n - overlap) / (tile_size - overlap))
        return [round(i * (n - tile_size) / (count - 1)) for i in range(count)]

    return [(x, y, min(x + tile_size, width), min(y + tile_size, height)) for y in starts(height) for x in starts(width)]


def boxes_in_tile(
    cells: list[CellBox], window: tuple[int, int, int, int], size: tuple[int, int], opts: CellOptions
) -> tuple[list[CellBox], int]:
    """Cells lying whole inside ``window``, in tile coordinates, and how many visible cells were dropped.

    A cell is cut when its box crosses a tile border that is not the image border (cells truncated by
    the image itself are kept, as in the source annotations).
    """
    x0, y0, x1, y1 = window
    w, h = size
    kept, dropped = [], 0
    for c in cells:
        bx1, by1, bx2, by2 = c.box
        if bx2 <= x0 or bx1 >= x1 or by2 <= y0 or by1 >= y1:
            continue  # not in this tile at all
        cut = (bx1 < x0 and x0 > 0) or (by1 < y0 and y0 > 0) or (bx2 > x1 and x1 < w) or (by2 > y1 and y1 < h)
        small = c.area < opts.min_area or min(bx2 - bx1, by2 - by1) < opts.min_side
        if cut or small:
            dropped += 1
            continue
        kept.append(CellBox(c.label, [bx1 - x0, by1 - y0, bx2 - x0, by2 - y0], c.area))
    return kept, dropped


# ----------------------------------------------------------------------------------------------------
# samples


def tile_samples(
    ref: ImageRef, cells: list[CellBox], dropped: int, key: str, opts: CellOptions, rng: random.Random,
    split: str = "train", source: str = SOURCE,
) -> list[Sample]:  # fmt: skip
    """Grounding and counting samples for one tile (see the module docstring)."""
    base = dict(source=source, split=split, images=[ref], modality="microscopy")
    out = []
    if cells and len(cells) <= opts.max_boxes:
        boxes = [Box(LABEL, [float(v) for v in c.box]) for c in cells]
        out.append(Sample(stable_id(source, key, "all"), "grounding", question=ALL_CELLS_PROMPT, answer=LABEL,
                          boxes=boxes, meta={"kind": "all_cells", "n_cells": len(cells)}, **base))  # fmt: skip
    ranked = sorted(cells, key=lambda c: c.area, reverse=True)
    if ranked and dropped == 0 and (len(ranked) == 1 or ranked[0].area >= opts.largest_margin * ranked[1].area):
        box = Box("largest cell", [float(v) for v in ranked[0].box])
        out.append(Sample(stable_id(source, key, "largest"), "grounding", question=LARGEST_PROMPT,
                          answer="largest cell", boxes=[box], meta={"kind": "largest_cell"}, **base))  # fmt: skip
    if dropped == 0:
        n = len(cells)
        out.append(Sample(stable_id(source, key, "count"), "open_vqa", question=COUNT_PROMPT, answer=str(n),
                          meta={"kind": "count", "n_cells": n}, **base))  # fmt: skip
        k = max(0, n + rng.choice([-2, -1, 1, 2]) * max(1, n // 5))
        out.append(Sample(stable_id(source, key, "more_than"), "closed_vqa", question=MORE_THAN_PROMPT.format(k=k),
                          answer="yes" if n > k else "no", meta={"kind": "count_compare", "n_cells": n, "k": k},
                          **base))  # fmt: skip
    return out


def cell_samples_from_pair(
    image: Any, labels: np.ndarray, name: str, out_dir: Path, opts: CellOptions, rng: random.Random,
    split: str = "train", source: str = SOURCE, stats: Counter | None = None,
) -> Iterator[Sample]:  # fmt: skip
    """Tile one image + instance-label pair, save the tiles under ``out_dir/images`` and yield samples."""
    im = load_image(image)
    if im.size != (labels.shape[1], labels.shape[0]):
        raise ValueError(f"{name}: image is {im.size[0]}x{im.size[1]} but its mask is {labels.shape[1]}x{labels.shape[0]}")
    stats = stats if stats is not None else Counter()
    cells = boxes_from_labels(labels)
    stats["cells"] += len(cells)
    (out_dir / "images").mkdir(parents=True, exist_ok=True)
    for window in tile_windows(im.size[0], im.size[1], opts.tile_size, opts.overlap):
        kept, dropped = boxes_in_tile(cells, window, im.size, opts)
        stats["tiles"] += 1
        stats["boxes"] += len(kept)
        stats["dropped"] += dropped
        if not kept:
            continue
        rel = f"images/{name}_{window[0]}_{window[1]}.png"
        tile = im.crop(window)
        tile.save(out_dir / rel)
        ref = ImageRef(rel, tile.size[0], tile.size[1])
        yield from tile_samples(ref, kept, dropped, f"{name}:{window}", opts, rng, split, source)


# ----------------------------------------------------------------------------------------------------
# inputs and the builder


def bundled_examples() -> Iterator[tuple[str, np.ndarray, np.ndarray, CellOptions | None]]:
    """``(name, rgb_image, instance_labels, options)`` from scikit-image's bundled microscopy images (offline)."""
    from skimage import data
    from skimage.color import rgb2hed

    ihc = data.immunohistochemistry()
    hema = rgb2hed(ihc)[..., 0]  # hematoxylin stains nuclei
    yield "skimage_ihc", ihc, segment_cells(hema, sigma=1.0, min_distance=7, min_area=40), None
    cell = data.cell()  # one phase-contrast cell, brighter than the background
    yield "skimage_cell", cell, segment_cells(cell, sigma=3.0, min_distance=40, min_area=2000), None


def paired_files(images_dir: Path, masks_dir: Path) -> tuple[list[tuple[Path, Path]], list[Path]]:
    """Images matched to masks by file stem (a mask may add ``_mask``, ``_label``, ...); and unmatched images."""
    masks = {}
    for m in sorted(masks_dir.iterdir()):
        if m.is_file() and m.name.lower().endswith(MASK_SUFFIXES):
            masks.setdefault(_stem(m), m)
    pairs, unmatched = [], []
    for img in sorted(images_dir.iterdir()):
        if not (img.is_file() and img.name.lower().endswith(IMAGE_SUFFIXES)):
            continue
        stem = _stem(img)
        mask = next((masks[stem + s] for s in MASK_STEM_SUFFIXES if stem + s in masks), None)
        (pairs.append((img, mask)) if mask is not None else unmatched.append(img))
    return pairs, unmatched


def _stem(p: Path) -> str:
    return p.name.split(".")[0]


def build_cells(
    out_dir: str | Path,
    *,
    images_dir: str | Path | None = None,
    masks_dir: str | Path | None = None,
    options: CellOptions | None = None,
    split: str = "train",
    source: str = SOURCE,
    seed: int = 0,
) -> dict[str, Any]:
    """Build the Cell grounding set into ``out_dir`` (``images/*.png`` tiles + ``cells.jsonl``).

    Args:
        out_dir: output folder.
        images_dir: microscopy images; with ``masks_dir``, pairs are matched by file stem. Without
            both, scikit-image's bundled images and a classical segmentation are used.
        masks_dir: instance-label (or binary) masks.
        options: tiling and filtering (:class:`CellOptions`).
        split, source: written into every record.
        seed: for the counting questions' thresholds.

    Returns:
        a report: ``records`` path, ``samples``, ``tiles``, ``cells``, ``boxes``, ``dropped``, per-task
        counts and ``skipped`` inputs with reasons.
    """
    opts = options or CellOptions()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    rng = random.Random(seed)
    stats: Counter = Counter()
    tasks: Counter = Counter()
    skipped: list[str] = []

    def samples() -> Iterator[Sample]:
        for name, image, labels in _inputs(images_dir, masks_dir, opts, skipped):
            try:
                for s in cell_samples_from_pair(image, labels, name, out, opts, rng, split, source, stats):
                    tasks[s.task] += 1
                    yield s
            except ValueError as e:  # one bad pair never stops the build
                log.warning("skipping %s: %s", name, e)
                skipped.append(f"{name}: {e}")

    path = write_jsonl(samples(), out / "cells.jsonl")
    report = {"records": str(path), "samples": sum(tasks.values()), "tasks": dict(tasks), **stats, "skipped": skipped,
              "stats": cell_stats(read_records(path, image_root=out))}  # fmt: skip
    log.info("cells: %d samples from %d tiles (%d boxes, %d cut/small dropped)", report["samples"],
             stats["tiles"], stats["boxes"], stats["dropped"])  # fmt: skip
    return report


def _inputs(images_dir, masks_dir, opts: CellOptions, skipped: list[str]) -> Iterator[tuple[str, Any, np.ndarray]]:
    if (images_dir is None) != (masks_dir is None):
        raise ValueError("give both images_dir and masks_dir, or neither (to use the bundled examples)")
    if images_dir is None:
        for name, image, labels, _ in bundled_examples():
            yield name, image, labels
        return
    images_dir, masks_dir = Path(images_dir), Path(masks_dir)
    for d in (images_dir, masks_dir):
        if not d.is_dir():
            raise FileNotFoundError(f"{d} is not a folder; pass the folders holding the images and the masks")
    pairs, unmatched = paired_files(images_dir, masks_dir)
    for img in unmatched:
        skipped.append(f"{img.name}: no mask with the same stem in {masks_dir}")
    if not pairs:
        raise FileNotFoundError(f"no image in {images_dir} has a mask with the same file stem in {masks_dir}")
    for img, mask in pairs:
        try:
            labels = instances_from_mask(read_mask(mask), watershed=opts.watershed, min_distance=opts.min_distance)
        except ValueError as e:
            skipped.append(f"{img.name}: {e}")
            continue
        yield re.sub(r"[^A-Za-z0-9_.-]", "_", _stem(img)), img, labels


CELL_SOURCES = ("ctc", "tissuenet", "bacteria")


def build_cell_set(
    out_dir: str | Path, inputs: list[tuple[str, str | Path]], *, split: str | None = None, style: str = "medmo-sft",
    max_boxes: int | None = 100, options: dict[str, dict[str, Any]] | None = None,
) -> dict[str, Any]:  # fmt: skip
    """MedMO's Cell set from published microscopy releases: ``out_dir/cells.jsonl`` and ``cells_stats.json``.

    Args:
        out_dir: output folder (rendered images go to ``out_dir/images``).
        inputs: ``(source, folder)`` pairs, e.g. ``[("ctc", "/data/ctc"), ("tissuenet", "/data/tissuenet")]``;
            any grounding source with ``style`` and ``max_boxes`` options (:data:`CELL_SOURCES`).
        split: one split of every source, or None for all (records keep their own split).
        style: MedMO's prompt and box convention (``medmo-sft``, ``medmo-grpo``) or ``qwen`` (0-1000 grid).
        max_boxes: images with more cells are left out (MedMO: 100); None keeps every image.
        options: per-source loader options, e.g. ``{"ctc": {"truth": "gold+silver"}}``.

    Returns:
        a report: ``records``, ``samples``, per-source load counts and problems, and :func:`cell_stats`.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    loaded: dict[str, dict[str, Any]] = {}

    def samples() -> Iterator[Sample]:
        for name, root in inputs:
            ss = SourceStats()
            yield from load_source(name, root, split, stats=ss, image_dir=out / "images", style=style,
                                   max_boxes=max_boxes, **(options or {}).get(name, {}))  # fmt: skip
            loaded[f"{name}:{root}"] = {"records": ss.yielded, "left_out": ss.filtered, "skipped": ss.skipped,
                                        "problems": [str(p) for p in ss.problems[:20]]}  # fmt: skip

    path = write_jsonl(samples(), out / "cells.jsonl")
    stats = cell_stats(read_records(path, image_root=out))
    report = {"records": str(path), "samples": stats["all"]["images"], "style": style, "max_boxes": max_boxes,
              "sources": loaded, "stats": stats}  # fmt: skip
    (out / "cells_stats.json").write_text(json.dumps(report, indent=2), encoding="utf-8")
    return report
