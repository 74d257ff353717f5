"""ROCO (Pelka et al., LABELS @ MICCAI 2018): PubMed Central figures with their captions, radiology and not.

Reads the GitHub release ``razorx89/roco-dataset``: ``data/{train,validation,test}/{radiology,non-radiology}/``
each with ``captions.txt`` (``ROCO_00020\\t <caption>``) and ``dlinks.txt`` (``ROCO_ID\\t<... archive URL>\\t
<image name>``); ``scripts/fetch.py`` saves each image as ``images/<PMCID>_<image name>`` beside them
(``ROCO_ID.jpg`` is found too). A CSV export (``id,name,caption`` with ``name`` the saved file name) or a
hub parquet snapshot (``eltorio/ROCO-radiology``: ``image, image_id, caption``, one ``train`` split) is read
as well. ``subset`` picks ``radiology`` (default, what MedMO trains on), ``non-radiology`` or ``both``.
Captioning records, asked with MedMO's caption prompts (:func:`medmo.data.sources._medmo_style.caption_prompt`).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

from medmo.data.sources._base import Context, LayoutError, SourceInfo, canonical_split, parquet_rows, text
from medmo.data.sources._medmo_style import caption_prompt
from medmo.data.sources._tables import record, table_rows
from medmo.records import RecordError, Sample

SOURCE = SourceInfo(
    name="roco",
    tasks=("caption",),
    modality="other",
    splits=("train", "validation", "test"),
    layout="<root>/[data/]{train,validation,test}/{radiology,non-radiology}/{captions.txt,dlinks.txt} + "
    "images/<PMCID>_<name> (razorx89/roco-dataset after scripts/fetch.py), or CSVs id,name,caption, "
    "or a parquet snapshot (image, image_id, caption)",
    hub_id="eltorio/ROCO-radiology",
    licence="images under their PMC Open Access licences (listed per image in licences.txt); captions from the papers",
    aliases=("roco_radiology",),
)
SUBSETS = {"radiology": ("radiology",), "non-radiology": ("non-radiology",), "both": ("radiology", "non-radiology")}


def read_captions(path: Path) -> dict[str, str]:
    """``captions.txt``: ``ROCO_ID<TAB> caption`` lines -> {id: caption}."""
    out = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        rid, sep, cap = line.partition("\t")
        if sep and rid.strip():
            out[rid.strip()] = cap.strip()
    return out


def read_dlinks(path: Path) -> dict[str, str]:
    """``dlinks.txt`` -> {id: saved file name ``<PMCID>_<image name>``}, as ``scripts/fetch.py`` names it."""
    out = {}
    if not path.is_file():
        return out
    for line in path.read_text(encoding="utf-8").splitlines():
        parts = line.split("\t")
        if len(parts) >= 3:
            url = parts[1].split(" ")[-1].strip()
            pmcid = url.rstrip("/").split("/")[-1].removesuffix(".tar.gz")
            out[parts[0].strip()] = f"{pmcid}_{parts[-1].strip()}"
    return out


def _sample(ctx: Context, rid: str, caption: str, image: Path | Any, split: str, subset: str) -> Sample:
    if not caption:
        raise RecordError(f"{rid}: empty caption")
    ref = ctx.image(image) if isinstance(image, Path) else ctx.embedded(image)
    return ctx.sample(rid, task="caption", split=split, question=caption_prompt(rid), answer=caption, images=[ref],
                      meta={"image_id": rid, "subset": subset})  # fmt: skip


def _folder(ctx: Context, d: Path, split: str, subset: str) -> Iterator[Sample]:
    caps = next(iter(sorted(d.glob("captions*.txt"))), None)
    if caps is None:  # the CSV export: id, name (saved file name), caption

        def from_csv(raw: Any) -> Sample:
            r = record(raw)
            return _sample(ctx, text(r["id"]), text(r["caption"]), d / "images" / text(r["name"]), split, subset)

        for csv_path in sorted(d.glob("*.csv")):
            yield from ctx.emit(table_rows(csv_path), from_csv)
        return
    links = read_dlinks(next(iter(sorted(d.glob("dlinks*.txt"))), d / "dlinks.txt"))

    def image_of(rid: str) -> Path:
        for name in (links.get(rid), f"{rid}.jpg", f"{rid}.png"):
            if name and (d / "images" / name).is_file():
                return d / "images" / name
        return d / "images" / (links.get(rid) or f"{rid}.jpg")

    rows = ((str(caps), i, item) for i, item in enumerate(read_captions(caps).items(), 1))
    yield from ctx.emit(rows, lambda it: _sample(ctx, it[0], it[1], image_of(it[0]), split, subset))


def load(root: Path, split: str | None, ctx: Context, *, subset: str = "radiology") -> Iterator[Sample]:
    """Yield one captioning record per figure."""
    if subset not in SUBSETS:
        raise ValueError(f"subset must be one of {', '.join(SUBSETS)}, got {subset!r}")
    parquet = [root] if root.suffix == ".parquet" else sorted(root.glob("**/*.parquet"))
    if parquet:
        for f in parquet:
            name = canonical_split(next((s for s in ("train", "validation", "valid", "test") if s in f.name), "train"))
            if split in (None, name):
                yield from ctx.emit(parquet_rows(f), lambda r, n=name: _sample(
                    ctx, text(r["image_id"]), text(r["caption"]), r["image"], n, "radiology"))  # fmt: skip
        return
    base = root / "data" if (root / "data").is_dir() else root
    found = False
    for name in ("train", "validation", "test"):
        for sub in SUBSETS[subset]:
            d = base / name / sub
            found = found or d.is_dir()
            if d.is_dir() and split in (None, name):
                yield from _folder(ctx, d, name, sub)
    if not found:
        raise LayoutError(f"no {{train,validation,test}}/{'|'.join(SUBSETS[subset])}/ folder under {base}")
