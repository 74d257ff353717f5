"""The Cell Tracking Challenge (Ulman et al., Nat. Methods 2017; Maška et al., 2023): 2-D time-lapse microscopy.

Reads a CTC training dataset as downloaded (``<root>/<Dataset>/`` or a folder of several datasets):
sequences ``01/``, ``02/`` of frames ``tTTT.tif`` (16-bit), gold segmentation truth
``01_GT/SEG/man_segTTT.tif`` (instance labels, some frames only) and silver truth ``01_ST/SEG/man_segTTT.tif``
(every frame); tracking masks ``01_GT/TRA/`` are markers, not outlines, and are not used. For 3-D datasets the
gold truth is per slice, ``man_seg_TTT_ZZZ.tif``, read as frame ``ZZZ`` of ``tTTT.tif``. ``truth`` picks
``gold`` (default), ``silver``, or ``gold+silver`` (gold where a frame has it, else silver).

One grounding record per annotated frame with a box per cell (boxes from the instance mask, cells under
``min_area`` pixels dropped; label ``Cell``), frames with more than ``max_boxes`` cells left out (MedMO: 100).
Sequence ``01`` is ``train`` and ``02`` is ``test``, so no frame of a test sequence is trained on. ``style``
as in :mod:`medmo.data.sources._medmo_style` (default ``medmo-sft``: pixels of the frame resized to 768 x 768).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

from medmo.data.masks import read_mask
from medmo.data.sources._base import Context, LayoutError, SourceInfo
from medmo.data.sources._cells import image_record, mask_boxes
from medmo.data.sources._medmo_style import check_style
from medmo.records import ImageRef, RecordError, Sample

SOURCE = SourceInfo(
    name="ctc",
    tasks=("grounding",),
    modality="microscopy",
    splits=("train", "test"),
    layout="<root>/[<Dataset>/]{01,02}/tTTT.tif + {01,02}_GT/SEG/man_segTTT.tif (gold) and/or {01,02}_ST/SEG/"
    "man_segTTT.tif (silver); 3-D gold slices man_seg_TTT_ZZZ.tif",
    licence="Cell Tracking Challenge terms of use (free for research; cite the CTC papers)",
    aliases=("cell_tracking_challenge", "ctc_bbox"),
)
LABEL = "Cell"
TRUTHS = ("gold", "silver", "gold+silver")
_MASK = re.compile(r"^man_seg_?(\d+)(?:_(\d+))?\.tiff?$")
SEQUENCE_SPLITS = {"01": "train", "02": "test"}


def datasets(root: Path) -> list[Path]:
    """CTC dataset folders: ``root`` itself when it holds sequences, else its sub-folders that do."""
    def has_seq(d: Path) -> bool:
        return any(p.is_dir() and re.fullmatch(r"\d\d", p.name) for p in d.iterdir())

    return [root] if has_seq(root) else sorted(d for d in root.iterdir() if d.is_dir() and has_seq(d))


def annotated_frames(ds: Path, seq: str, truth: str) -> list[tuple[Path, Path, int | None, str]]:
    """``(mask, frame file, slice or None, truth)`` for every segmented frame of one sequence."""
    found: dict[tuple[str, str | None], tuple[Path, str]] = {}
    for kind, folder in (("silver", f"{seq}_ST"), ("gold", f"{seq}_GT")):  # gold last: it wins
        if kind not in truth:
            continue
        for mask in sorted((ds / folder / "SEG").glob("man_seg*.tif*")):
            m = _MASK.match(mask.name)
            if m:
                found[(m.group(1), m.group(2))] = (mask, kind)
    out = []
    for (t, z), (mask, kind) in sorted(found.items()):
        out.append((mask, ds / seq / f"t{t}{mask.suffix}", int(z) if z is not None else None, kind))
    return out


def _record(ctx: Context, ds: Path, seq: str, item: tuple[Path, Path, int | None, str], min_area: int, style: str,
            max_boxes: int | None) -> Sample | None:  # fmt: skip
    mask_path, frame, z, kind = item
    if not frame.is_file():
        raise RecordError(f"frame {frame.name} of {mask_path.name} not found in {frame.parent}")
    mask = read_mask(mask_path)
    if mask.ndim != 2:
        raise RecordError(f"{mask_path.name} is a {mask.ndim}-D volume; 3-D datasets are read from their per-slice "
                          "man_seg_TTT_ZZZ.tif gold masks")  # fmt: skip
    ref = ctx.image(frame) if z is None else ImageRef(str(frame), int(mask.shape[1]), int(mask.shape[0]), frame=z)
    if (ref.width, ref.height) != (mask.shape[1], mask.shape[0]):
        raise RecordError(f"{frame.name} is {ref.width}x{ref.height} but {mask_path.name} is {mask.shape[1]}x{mask.shape[0]}")
    key = (ds.name, seq, frame.stem, z, kind)
    return image_record(ctx, key, ref, mask_boxes(mask, LABEL, min_area), split=SEQUENCE_SPLITS.get(seq, "train"),
                        kind="cell", style=style, answer=LABEL, max_boxes=max_boxes,
                        meta={"dataset": ds.name, "sequence": seq, "truth": kind})  # fmt: skip


def load(root: Path, split: str | None, ctx: Context, *, truth: str = "gold", style: str = "medmo-sft",
         max_boxes: int | None = 100, min_area: int = 4) -> Iterator[Sample]:  # fmt: skip
    """Yield one grounding record per segmented frame of every sequence."""
    if truth not in TRUTHS:
        raise ValueError(f"truth must be one of {', '.join(TRUTHS)}, got {truth!r}")
    check_style(style)
    found = datasets(root)
    if not found:
        raise LayoutError(f"no CTC dataset (folders 01/, 02/ of tTTT.tif) under {root}")
    for ds in found:
        for seq in sorted(p.name for p in ds.iterdir() if p.is_dir() and re.fullmatch(r"\d\d", p.name)):
            if split not in (None, SEQUENCE_SPLITS.get(seq, "train")):
                continue
            rows = ((str(item[0]), None, item) for item in annotated_frames(ds, seq, truth))
            yield from ctx.emit(rows, lambda it, d=ds, s=seq: _record(ctx, d, s, it, min_area, style, max_boxes))
