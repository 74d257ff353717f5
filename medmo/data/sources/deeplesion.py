"""DeepLesion (Yan et al., J. Med. Imaging 2018): 32,735 CT lesions marked on key slices.

Reads ``DL_info.csv``: one row per lesion; multi-value columns are quoted ``"a, b, c"`` strings.
``Bounding_boxes`` is ``x1, y1, x2, y2`` (the RECIST extent padded by 5 px, not x, y, w, h) in the
``Image_size`` slice (512 x 512). The key slice ``PPPPPP_SS_RR_KKK.png`` lives at
``Images_png/PPPPPP_SS_RR/KKK.png``, a 16-bit PNG of HU + 32768: render it with
``medmo.data.images.load_image(path, window=meta["window"])``. One grounding record per key slice
holds all its lesions (label ``lesion``; ``Coarse_lesion_type`` -1, the value on every train row, means
"not labelled" and is stored as None). ``Train_Val_Test`` 1/2/3 -> train/validation/test.
``style="medmo-sft"`` / ``"medmo-grpo"`` word the records as MedMO's training data did (pixels of the slice
resized to 768 x 768, as its 512 -> 768 boxes, or original pixels; :mod:`medmo.data.sources._medmo_style`).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

from medmo.boxes import sanitize_box
from medmo.data.sources._base import Context, SourceInfo, csv_rows, find, text
from medmo.data.sources._medmo_style import check_style, styled
from medmo.records import Box, RecordError, Sample

SOURCE = SourceInfo(
    name="deeplesion",
    tasks=("grounding",),
    modality="ct",
    splits=("train", "validation", "test"),
    layout="<root>/DL_info.csv + Images_png/PPPPPP_SS_RR/KKK.png (16-bit, HU + 32768)",
    licence="NIH data-use terms",
)

SPLITS = {"1": "train", "2": "validation", "3": "test"}


def floats(s: Any, n: int | None = None) -> list[float]:
    """``"132.977, 171.808, 165.939, 214.029"`` -> floats (checked to have ``n`` values)."""
    vals = [float(v) for v in text(s).split(",") if v.strip()]
    if n is not None and len(vals) != n:
        raise RecordError(f"expected {n} numbers, got {len(vals)} in {s!r}")
    return vals


def slice_path(root: Path, file_name: str) -> Path:
    """``000089_01_01_037.png`` -> ``<root>/Images_png/000089_01_01/037.png``."""
    stem, _, key = file_name.rpartition("_")
    if not stem:
        raise RecordError(f"File_name {file_name!r} is not PPPPPP_SS_RR_KKK.png")
    return root / "Images_png" / stem / key


def load(root: Path, split: str | None, ctx: Context, *, style: str = "qwen") -> Iterator[Sample]:
    """Yield one grounding record per DeepLesion key slice with all its lesion boxes."""
    check_style(style)
    csv_path = root if root.is_file() else find(root, ["DL_info.csv", "**/DL_info.csv"], "DL_info.csv")
    groups: dict[str, list[tuple[int | None, dict[str, Any]]]] = {}
    for _f, line, r in csv_rows(csv_path):
        groups.setdefault(text(r.get("File_name")), []).append((line, r))

    def convert(item: tuple[str, list[tuple[int | None, dict[str, Any]]]]) -> Sample | None:
        file_name, rows = item
        first = rows[0][1]
        name = SPLITS.get(text(first["Train_Val_Test"]))
        if name is None:
            raise RecordError(f"Train_Val_Test {first['Train_Val_Test']!r} is not 1, 2 or 3")
        if split not in (None, name):
            return None
        w, h = (int(v) for v in floats(first["Image_size"], 2))
        ref = ctx.image(slice_path(csv_path.parent, file_name), size=(w, h))
        boxes, types = [], []
        for _line, r in rows:
            boxes.append(Box("lesion", sanitize_box(floats(r["Bounding_boxes"], 4), w, h)))
            t = int(float(text(r.get("Coarse_lesion_type")) or -1))
            types.append(None if t == -1 else t)
        question, style_meta = styled("lesion", style, file_name)
        return ctx.sample(
            file_name,
            task="grounding",
            split=name,
            question=question,
            answer="lesion",
            boxes=boxes,
            images=[ref],
            modality="ct",
            meta=style_meta | {
                "file_name": file_name,
                "window": floats(first.get("DICOM_windows"), 2),
                "spacing_mm": floats(first.get("Spacing_mm_px_")),
                "slice_range": floats(first.get("Slice_range")),
                "coarse_lesion_type": types,
                "possibly_noisy": [int(text(r.get("Possibly_noisy")) or 0) for _, r in rows],
                "hu_offset": 32768,
            },
        )

    yield from ctx.emit(((str(csv_path), rows[0][0], (k, rows)) for k, rows in groups.items()), convert)
