"""GRAZPEDWRI-DX (Nagy et al., Sci. Data 2022): 20,327 pediatric wrist radiographs of 6,091 patients with boxes.

Reads the figshare release: PNG images (``images/`` or the unpacked ``images_part1..4/``) with YOLO labels
``folder_structure/yolov5/labels/<stem>.txt`` (``class cx cy w h`` normalised; classes in the order of
``meta.yaml``, alphabetical: boneanomaly, bonelesion, foreignbody, fracture, metal, periostealreaction,
pronatorsign, softtissue, text), or the Supervisely annotations ``folder_structure/supervisely/wrist/ann/
<stem>.json`` (``objects[].classTitle``, ``objects[].points.exterior`` corners in pixels), which MedMO reads.
The release has no split: ``patient_id`` (``dataset.csv``, else the file name's first field) is hashed into
train / validation / test (80 / 10 / 10), so one patient's images stay together. One grounding record per
image with every box (``exclude`` drops labels, MedMO drops ``axis``; images left without boxes are left
out); ``style`` as in :mod:`medmo.data.sources._medmo_style` (default ``medmo-sft``: pixels of the 768 x 768
image MedMO trains on).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator, Sequence
from pathlib import Path

from medmo.boxes import sanitize_box
from medmo.data.sources._base import Context, LayoutError, SourceInfo, csv_rows, text
from medmo.data.sources._cells import image_record, read_yolo
from medmo.data.sources._medmo_style import check_style
from medmo.records import Box, RecordError, Sample

SOURCE = SourceInfo(
    name="grazpedwri_dx",
    tasks=("grounding",),
    modality="x-ray",
    splits=("train", "validation", "test"),
    layout="<root>/images/<stem>.png (or images_part*/) + folder_structure/yolov5/labels/<stem>.txt (YOLO; meta.yaml "
    "names) or folder_structure/supervisely/wrist/ann/<stem>.json; optional dataset.csv (filestem, patient_id)",
    licence="CC BY 4.0 (figshare; cite Nagy et al. 2022)",
    aliases=("grazpedwri", "wrist_fracture"),
)
CLASSES = ("boneanomaly", "bonelesion", "foreignbody", "fracture", "metal", "periostealreaction", "pronatorsign",
           "softtissue", "text")  # fmt: skip
SPLIT_SHARES = (("train", 80), ("validation", 10), ("test", 10))


def patient_split(patient: str) -> str:
    """train / validation / test by the md5 of the patient id (80 / 10 / 10)."""
    bucket = int(hashlib.md5(patient.encode("utf-8")).hexdigest(), 16) % 100
    for name, share in SPLIT_SHARES:
        if bucket < share:
            return name
        bucket -= share
    return "test"


def class_names(root: Path) -> tuple[str, ...]:
    """Class names from ``meta.yaml`` (``names:``) when present, else the release's alphabetical order."""
    meta = next(iter(sorted(root.glob("**/yolov5/meta.yaml")) + sorted(root.glob("**/meta.yaml"))), None)
    if meta is None:
        return CLASSES
    import yaml

    names = (yaml.safe_load(meta.read_text(encoding="utf-8")) or {}).get("names")
    return tuple(names.values() if isinstance(names, dict) else names) if names else CLASSES


def supervisely_boxes(path: Path, width: int, height: int) -> list[Box]:
    """Boxes of a Supervisely annotation: the extent of each object's ``points.exterior``."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise RecordError(f"{path.name}: invalid JSON ({e.msg})") from None
    out = []
    for obj in data.get("objects", []):
        pts = (obj.get("points") or {}).get("exterior") or []
        if len(pts) >= 2:
            xs, ys = [float(p[0]) for p in pts], [float(p[1]) for p in pts]
            out.append(Box(text(obj.get("classTitle")) or "region", sanitize_box([min(xs), min(ys), max(xs), max(ys)], width, height)))
    return out


def _images(root: Path) -> dict[str, Path]:
    return {p.stem: p for p in sorted(root.glob("images*/**/*.png"))}


def load(root: Path, split: str | None, ctx: Context, *, style: str = "medmo-sft", exclude: Sequence[str] = ("axis",),
         max_boxes: int | None = None) -> Iterator[Sample]:  # fmt: skip
    """Yield one grounding record per radiograph with all its (non-excluded) boxes."""
    check_style(style)
    yolo = next(iter(sorted(root.glob("**/yolov5/labels"))), None) or (root / "labels" if (root / "labels").is_dir() else None)
    ann = next(iter(sorted(root.glob("**/supervisely/wrist/ann"))), None)
    if yolo is None and ann is None:
        raise LayoutError(f"no folder_structure/yolov5/labels or folder_structure/supervisely/wrist/ann under {root}")
    images = _images(root)
    if not images:
        raise LayoutError(f"no images*/<stem>.png under {root}")
    patients = {text(r.get("filestem")): text(r.get("patient_id")) for _f, _l, r in csv_rows(root / "dataset.csv")} if (
        root / "dataset.csv").is_file() else {}  # fmt: skip
    names = class_names(root)
    labels = sorted(yolo.glob("*.txt")) if yolo is not None else sorted(ann.glob("*.json"))
    skip = set(exclude)

    def convert(path: Path) -> Sample | None:
        stem = path.name.split(".")[0]
        name = patient_split(patients.get(stem) or stem.split("_")[0])
        if split not in (None, name):
            return None
        if stem not in images:
            raise RecordError(f"no image {stem}.png for {path.name}")
        ref = ctx.image(images[stem])
        if path.suffix == ".json":
            boxes = supervisely_boxes(path, ref.width, ref.height)
        else:
            boxes = [Box(names[c] if 0 <= c < len(names) else str(c), b) for c, b in read_yolo(path, ref.width, ref.height)]
        boxes = [b for b in boxes if b.label not in skip]
        answer = ", ".join(dict.fromkeys(b.label for b in boxes))
        return image_record(ctx, (stem,), ref, boxes, split=name, kind="wrist", style=style, answer=answer,
                            modality="x-ray", max_boxes=max_boxes)  # fmt: skip

    yield from ctx.emit(((str(p), None, p) for p in labels), convert)
