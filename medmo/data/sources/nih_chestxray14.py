"""NIH ChestX-ray14 boxes (Wang et al., CVPR 2017): 984 radiologist boxes on 880 chest X-rays.

Reads ``BBox_List_2017.csv``, whose header has 9 fields (``Image Index,Finding Label,Bbox [x,y,w,h],,,``)
while rows have 6: columns are read by position. Boxes are ``x, y, w, h`` floats in the released
1024 x 1024 PNG (not the original DICOM size); if a PNG on disk has another size the boxes are scaled
to it. The box file says ``Infiltrate`` where the image labels say ``Infiltration``; labels are written
as in ``Data_Entry_2017`` (``label_map`` overrides). One grounding record per (image, finding).

Splits: a record's split is ``train`` or ``test`` when its image is in the official ``train_val_list.txt`` /
``test_list.txt`` beside the box file, else ``all``. ``split="all"`` (or None) reads every box whatever
the lists say; ``split="train"`` / ``"test"`` need their list file and say which one is missing.
``style`` words the records as MedMO's training data did (:mod:`medmo.data.sources._medmo_style`:
``medmo-sft`` asks for pixels of the image resized to 768 x 768, as its 1024 -> 768 boxes; ``medmo-grpo``
for original pixels); the default ``qwen`` uses the 0-1000 grid.
"""

from __future__ import annotations

import csv
import logging
from collections.abc import Iterator, Mapping
from pathlib import Path

from medmo.boxes import sanitize_box, xywh_to_xyxy
from medmo.data.sources._base import Context, LayoutError, SourceInfo, find, rescale
from medmo.data.sources._medmo_style import check_style, styled
from medmo.records import Box, RecordError, Sample

SOURCE = SourceInfo(
    name="nih_chestxray14",
    tasks=("grounding",),
    modality="x-ray",
    splits=("train", "test", "all"),
    layout="<root>/BBox_List_2017.csv + images/<Image Index>.png (or images_NNN/images/); optional "
           "train_val_list.txt, test_list.txt",
    licence="NIH public release (cite Wang et al. CVPR 2017)",
    aliases=("nih_chestxray14_bbox", "chestxray14"),
)

log = logging.getLogger(__name__)
RELEASED_SIZE = (1024, 1024)
SPLIT_FILES = {"train": "train_val_list.txt", "test": "test_list.txt"}
LABEL_MAP = {"Infiltrate": "Infiltration"}


def read_bbox_csv(path: Path) -> list[tuple[int, list[str]]]:
    """``(line, [image, label, x, y, w, h])`` rows; blank trailing fields and the header are ignored."""
    out = []
    with open(path, encoding="utf-8-sig", newline="") as f:
        reader = csv.reader(f)
        for row in reader:
            if reader.line_num == 1 and row and row[0].strip() == "Image Index":
                continue
            if any(c.strip() for c in row):
                out.append((reader.line_num, [c.strip() for c in row[:6]]))
    return out


def _split_of(root: Path, wanted: str | None) -> dict[str, str]:
    """Image -> split from the official lists; a requested train/test split needs its list file."""
    if wanted in SPLIT_FILES and not (root / SPLIT_FILES[wanted]).is_file():
        raise LayoutError(
            f"split {wanted!r} of NIH ChestX-ray14 is defined by {SPLIT_FILES[wanted]} (the official list from the NIH "
            f"box folder), which is missing in {root}; put it beside BBox_List_2017.csv, or use split 'all' to read "
            "every box"
        )
    split: dict[str, str] = {}
    for name, fname in SPLIT_FILES.items():
        if (root / fname).is_file():
            split.update({ln.strip(): name for ln in (root / fname).read_text().splitlines() if ln.strip()})
    return split


def _image_path(root: Path, name: str) -> Path:
    for cand in (root / "images" / name, root / name):
        if cand.is_file():
            return cand
    hits = sorted(root.glob(f"images_*/images/{name}"))
    return hits[0] if hits else root / "images" / name


def load(
    root: Path, split: str | None, ctx: Context, *, label_map: Mapping[str, str] = LABEL_MAP, style: str = "qwen"
) -> Iterator[Sample]:
    """Yield one grounding record per (image, finding label) of ``BBox_List_2017.csv``."""
    check_style(style)
    csv_path = (
        root if root.is_file() else find(root, ["BBox_List_2017.csv", "**/BBox_List_2017.csv"], "BBox_List_2017.csv")
    )
    base = csv_path.parent
    splits = _split_of(base, split)
    found = [0]
    groups: dict[tuple[str, str], list[tuple[int, list[str]]]] = {}
    for line, row in read_bbox_csv(csv_path):
        key = (row[0], label_map.get(row[1], row[1]) if len(row) > 1 else "")
        groups.setdefault(key, []).append((line, row))
    if not groups:
        raise LayoutError(f"{csv_path} has no box rows")

    def convert(item: tuple[tuple[str, str], list[tuple[int, list[str]]]]) -> Sample | None:
        (image, label), rows = item
        name = splits.get(image, "all")
        if split not in (None, "all", name):
            return None
        found[0] += 1
        if len(rows[0][1]) < 6 or not label:
            raise RecordError(f"line {rows[0][0]}: expected 6 fields (image, label, x, y, w, h), got {rows[0][1]}")
        ref = ctx.image(_image_path(base, image), size=None)
        size = (ref.width, ref.height) if ref.width else RELEASED_SIZE
        ref.width, ref.height = size
        boxes = []
        for _line, row in rows:
            xyxy = rescale(xywh_to_xyxy([float(v) for v in row[2:6]]), RELEASED_SIZE, size)
            boxes.append(Box(label, sanitize_box(xyxy, *size)))
        meta = {"image_index": image, "box_label": rows[0][1][1], "lines": [ln for ln, _ in rows]}
        question, meta = styled("nih", style, f"{image}:{label}", meta)
        return ctx.sample(
            image, label,
            task="grounding",
            split=name,
            question=question,
            answer=label,
            boxes=boxes,
            images=[ref],
            modality="x-ray",
            meta=meta,
        )

    yield from ctx.emit(((str(csv_path), rows[0][0], (k, rows)) for k, rows in groups.items()), convert)
    if split in SPLIT_FILES and not found[0]:
        log.warning("nih_chestxray14: no image of %s is listed in %s", csv_path.name, SPLIT_FILES[split])
