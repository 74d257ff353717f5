"""TissueNet v1.1 (Greenwald et al., Nat. Biotech. 2022; DeepCell): 1.3M cells in multiplexed tissue images.

Reads ``tissuenet_v1.1_{train,val,test}.npz`` as downloaded from ``datasets.deepcell.org`` (by hand: the data
licence must be accepted): ``X`` [N, H, W, 2] float (channel 0 nuclear, 1 membrane / cytoplasm), ``y``
[N, H, W, 2] int instance maps, optional ``tissue_list`` / ``platform_list``. Train images are 512 x 512,
validation / test 256 x 256. The channel order of ``y`` is documented differently by different readers;
``compartment`` picks the instance map by name (``whole-cell`` = channel 0, ``nuclear`` = channel 1, the
DeepCell convention) and ``y_channel`` overrides it.

Images are read one at a time from the archive (never the whole array: the train file is about 5 GB) and
written as RGB PNGs under ``image_dir`` (nuclear in blue, membrane in green, each scaled to its 99.9th
percentile; content-hashed names). One grounding record per image with a box per cell (label ``Cell``),
images with more than ``max_boxes`` cells left out (MedMO's DeepCell SFT set: 100; 30 unresized);
``style`` as in :mod:`medmo.data.sources._medmo_style` (default ``medmo-sft``).
"""

from __future__ import annotations

import hashlib
import io
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from medmo.data.sources._base import Context, LayoutError, SourceInfo, text
from medmo.data.sources._cells import image_record, mask_boxes
from medmo.data.sources._medmo_style import check_style
from medmo.records import ImageRef, RecordError, Sample

SOURCE = SourceInfo(
    name="tissuenet",
    tasks=("grounding",),
    modality="microscopy",
    splits=("train", "validation", "test"),
    layout="<root>/tissuenet_v1.1_{train,val,test}.npz with X [N,H,W,2] (nuclear, membrane) and y [N,H,W,2] "
    "(instance maps; whole-cell, nuclear)",
    licence="DeepCell data licence (modified Apache 2.0, non-commercial use; accepted at download)",
    aliases=("deepcell", "deepcell_tissuenet", "tissuenet_v1_1"),
)
LABEL = "Cell"
FILES = {"train": "train", "validation": "val", "test": "test"}
COMPARTMENTS = {"whole-cell": 0, "nuclear": 1}


class NpzArray:
    """Items ``a[i]`` of one array inside a ``.npz`` archive, read one at a time (stored or deflated members)."""

    def __init__(self, path: Path, key: str):
        self.zip = zipfile.ZipFile(path)
        name = f"{key}.npy"
        if name not in self.zip.namelist():
            raise LayoutError(f"{path.name} has no array {key!r} (it has {', '.join(n[:-4] for n in self.zip.namelist())})")
        self.file = self.zip.open(name)
        version = np.lib.format.read_magic(self.file)
        read = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
        self.shape, fortran, self.dtype = read(self.file)
        if fortran or self.dtype.hasobject:
            raise LayoutError(f"{path.name}:{key} is not a C-ordered numeric array")
        self.offset = self.file.tell()
        self.item_bytes = int(np.prod(self.shape[1:])) * self.dtype.itemsize

    def __len__(self) -> int:
        return int(self.shape[0])

    def __getitem__(self, i: int) -> np.ndarray:
        self.file.seek(self.offset + i * self.item_bytes)
        return np.frombuffer(self.file.read(self.item_bytes), self.dtype).reshape(self.shape[1:])


def render(x: np.ndarray) -> bytes:
    """A 2-channel (nuclear, membrane) float image as an RGB PNG: nuclear blue, membrane green."""
    from PIL import Image

    rgb = np.zeros((*x.shape[:2], 3), np.uint8)
    for channel, color in ((0, 2), (1, 1)):
        c = np.asarray(x[..., channel], np.float64)
        top = np.percentile(c, 99.9) if c.size else 0.0
        rgb[..., color] = np.clip(c / top * 255.0, 0, 255).astype(np.uint8) if top > 0 else 0
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, format="PNG")
    return buf.getvalue()


def _write(ctx: Context, png: bytes, size: tuple[int, int]) -> ImageRef:
    if ctx.image_dir is None:
        raise RecordError("TissueNet images are rendered to PNG files: pass image_dir=...")
    out = Path(ctx.image_dir) / f"{hashlib.sha1(png).hexdigest()[:20]}.png"
    if not out.exists():
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = out.with_suffix(f".{id(png)}.tmp")
        tmp.write_bytes(png)
        tmp.replace(out)  # atomic: parallel shards may write the same image
    return ImageRef(str(out), size[0], size[1])


def _labels(path: Path, key: str) -> list[str] | None:
    with np.load(path, allow_pickle=False) as z:
        return [text(v) for v in z[key]] if key in z.files else None


def load(root: Path, split: str | None, ctx: Context, *, compartment: str = "whole-cell", y_channel: int | None = None,
         style: str = "medmo-sft", max_boxes: int | None = 100, min_area: int = 4) -> Iterator[Sample]:  # fmt: skip
    """Yield one grounding record per image of the npz files."""
    if compartment not in COMPARTMENTS:
        raise ValueError(f"compartment must be one of {', '.join(COMPARTMENTS)}, got {compartment!r}")
    check_style(style)
    channel = COMPARTMENTS[compartment] if y_channel is None else int(y_channel)
    files = {n: root / f"tissuenet_v1.1_{s}.npz" for n, s in FILES.items()} if root.is_dir() else {"train": root}
    if not any(p.is_file() for p in files.values()):
        raise LayoutError(f"no tissuenet_v1.1_{{train,val,test}}.npz in {root}")
    for name, path in files.items():
        if not path.is_file() or split not in (None, name):
            continue
        xs, ys = NpzArray(path, "X"), NpzArray(path, "y")
        tissues, platforms = _labels(path, "tissue_list"), _labels(path, "platform_list")

        def convert(i: int, n: str = name, xs: NpzArray = xs, ys: NpzArray = ys, t: Any = tissues, p: Any = platforms) -> Sample | None:
            y = ys[i]
            if y.ndim != 3 or not 0 <= channel < y.shape[-1]:
                raise RecordError(f"y[{i}] has shape {y.shape}; no instance channel {channel}")
            boxes = mask_boxes(y[..., channel], LABEL, min_area)
            if not boxes or (max_boxes is not None and len(boxes) > max_boxes):
                return None  # decided before the image is rendered
            meta = {"index": i, "compartment": compartment if y_channel is None else f"y[..., {channel}]",
                    **({"tissue": t[i]} if t else {}), **({"platform": p[i]} if p else {})}  # fmt: skip
            ref = _write(ctx, render(xs[i]), (y.shape[1], y.shape[0]))
            return image_record(ctx, (n, i), ref, boxes, split=n, kind="cell", style=style, answer=LABEL,
                                max_boxes=max_boxes, meta=meta)  # fmt: skip

        yield from ctx.emit(((str(path), i, i) for i in range(len(ys))), convert)
