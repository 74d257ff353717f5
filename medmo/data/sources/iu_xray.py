"""IU X-Ray (Demner-Fushman et al., JAMIA 2016; Open-i NLMCXR): chest X-ray studies with reports.

Two published layouts:

* R2Gen (Chen et al., EMNLP 2020, ``cuhksz-nlp/R2Gen``): ``annotation.json`` = ``{"train"|"val"|"test":
  [{id, report, image_path, split}]}`` + ``images/<id>/{0,1}.png``. Its ``report`` is the FINDINGS
  section only, stored as ``findings``. Copies without a ``split`` key (e.g. ``MRG_RL``) store
  FINDINGS + IMPRESSION in ``report``; that text becomes the ``answer`` (``report_is`` overrides).
* The original XML reports ``ecgen-radiology/<n>.xml`` (FINDINGS / IMPRESSION / INDICATION sections,
  MeSH labels, ``parentImage`` ids) + PNGs ``<parentImage id>.png``. They carry no split: ``split="all"``.
  Reports without an image or without findings and impression are skipped with a reason.

``XXXX`` de-identification tokens are kept (as R2Gen does) unless ``deid="remove"``.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from medmo.data.sources._base import Context, LayoutError, SourceInfo, canonical_split, list_rows, read_json, text
from medmo.records import RecordError, Sample

SOURCE = SourceInfo(
    name="iu_xray",
    tasks=("report",),
    modality="x-ray",
    splits=("train", "validation", "test", "all"),
    layout="R2Gen: <root>/annotation.json + images/<id>/{0,1}.png\n"
           "or original: <root>/ecgen-radiology/<n>.xml + NLMCXR_png/<parentImage id>.png",
    licence="CC BY-NC-ND 4.0",
    aliases=("iu_x_ray",),
)

_DEID = re.compile(r"[\s-]*\bX{3,}\b")


def clean_deid(s: str) -> str:
    """Remove ``XXXX`` tokens and tidy the spacing they leave (``"sternotomy XXXX."`` -> ``"sternotomy."``)."""
    out = _DEID.sub("", s)
    return re.sub(r"\s+([.,;:])", r"\1", re.sub(r"\s{2,}", " ", out)).strip()


def _t(s: Any, deid: str) -> str:
    v = text(s)
    return clean_deid(v) if deid == "remove" else v


def _r2gen(ctx: Context, root: Path, split: str | None, deid: str, report_is: str | None) -> Iterator[Sample]:
    path = root / "annotation.json" if (root / "annotation.json").is_file() else root
    images = next((d for d in (path.parent / "images", path.parent) if d.is_dir()), path.parent)
    data = read_json(path)
    for key, rows in data.items():
        name = canonical_split(key) or key
        if split not in (None, name):
            continue

        def convert(r: dict[str, Any], name: str = name) -> Sample:
            report = _t(r["report"], deid)
            as_findings = (report_is or ("findings" if "split" in r else "full")) == "findings"
            return ctx.sample(
                text(r["id"]),
                task="report",
                split=canonical_split(r.get("split")) or name,
                answer="" if as_findings else report,
                findings=report if as_findings else None,
                images=[ctx.image(images / p) for p in r["image_path"]],
                modality="x-ray",
                meta={"study": text(r["id"])},
            )

        yield from ctx.emit(list_rows(str(path), rows), convert)


def parse_xml(path: Path) -> dict[str, Any]:
    """Sections, MeSH labels and image ids of one Open-i report XML."""
    tree = ET.parse(path)
    sections = {el.get("Label", "").upper(): text(el.text) for el in tree.iter("AbstractText")}
    return {
        "id": (tree.find(".//uId").get("id") if tree.find(".//uId") is not None else f"CXR{path.stem}"),
        "sections": sections,
        "major": [text(m.text) for m in tree.iter("major") if text(m.text)],
        "images": [el.get("id") for el in tree.iter("parentImage") if el.get("id")],
    }


def _xml(ctx: Context, root: Path, split: str | None, deid: str) -> Iterator[Sample]:
    if split not in (None, "all"):
        raise ValueError(
            "the original IU X-Ray XML release has no splits; use R2Gen's annotation.json for train/val/test"
        )
    xml_dir = root / "ecgen-radiology" if (root / "ecgen-radiology").is_dir() else root
    png_dir = next((d for d in (root / "NLMCXR_png", root / "images", root) if d.is_dir()), root)

    def convert(path: Path) -> Sample:
        rep = parse_xml(path)
        if not rep["images"]:
            raise RecordError(f"report {rep['id']} has no images")
        sec = rep["sections"]
        return ctx.sample(
            rep["id"],
            task="report",
            split="all",
            findings=_t(sec.get("FINDINGS"), deid) or None,
            impression=_t(sec.get("IMPRESSION"), deid) or None,
            images=[ctx.image(png_dir / f"{i}.png") for i in rep["images"]],
            modality="x-ray",
            meta={"study": rep["id"], "indication": _t(sec.get("INDICATION"), deid), "mesh_major": rep["major"]},
        )

    files = sorted(xml_dir.glob("*.xml"), key=lambda p: (len(p.stem), p.stem))
    yield from ctx.emit(((str(p), None, p) for p in files), convert)


def load(
    root: Path, split: str | None, ctx: Context, *, deid: str = "keep", report_is: str | None = None
) -> Iterator[Sample]:
    """Yield IU X-Ray report samples from an R2Gen folder or the original XML release."""
    if deid not in ("keep", "remove"):
        raise ValueError(f"deid must be 'keep' or 'remove', got {deid!r}")
    if (root / "annotation.json").is_file() or root.suffix == ".json":
        yield from _r2gen(ctx, root, split, deid, report_is)
    elif (root / "ecgen-radiology").is_dir() or any(root.glob("*.xml")):
        yield from _xml(ctx, root, split, deid)
    else:
        raise LayoutError(f"neither annotation.json nor ecgen-radiology/*.xml in {root}")
