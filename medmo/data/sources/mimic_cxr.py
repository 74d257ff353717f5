"""MIMIC-CXR v2 / MIMIC-CXR-JPG (Johnson et al., Sci. Data 2019): chest X-ray studies with free-text reports.

Layouts:

* PhysioNet release: ``mimic-cxr-2.0.0-split.csv[.gz]`` (dicom_id, study_id, subject_id, split), reports
  ``files/pXX/p<subject>/s<study>.txt`` and images ``files/pXX/p<subject>/s<study>/<dicom_id>.jpg``
  (``image_ext="dcm"`` for DICOM). One record per study (a report covers all its images);
  ``views=("PA", "AP")`` keeps those views, read from ``mimic-cxr-2.0.0-metadata.csv[.gz]``.
  FINDINGS and IMPRESSION are cut from the report text (:func:`report_sections`); a study with
  neither is skipped with a reason. The official split name ``validate`` becomes ``validation``.
* R2Gen ``annotation.json`` (one entry per image, ``report`` = cleaned findings, split ``val``).
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from medmo.data.sources._base import (
    Context,
    LayoutError,
    SourceInfo,
    canonical_split,
    csv_rows,
    list_rows,
    read_json,
    text,
)
from medmo.records import RecordError, Sample

SOURCE = SourceInfo(
    name="mimic_cxr",
    tasks=("report",),
    modality="x-ray",
    splits=("train", "validation", "test"),
    layout="<root>/mimic-cxr-2.0.0-split.csv[.gz] + files/pXX/pSUBJECT/sSTUDY.txt\n"
           "+ files/pXX/pSUBJECT/sSTUDY/<dicom_id>.jpg (optional mimic-cxr-2.0.0-metadata.csv[.gz] for views)\n"
           "or R2Gen: <root>/annotation.json + images/<image_path>",
    licence="PhysioNet Credentialed Health Data License",
    aliases=("mimic",),
)

_HEADER = re.compile(r"^[ \t]*([A-Z][A-Z /&()-]{2,}?)[ \t]*:", re.M)
_NAMES = {
    "FINDINGS": "findings",
    "FINDING": "findings",
    "IMPRESSION": "impression",
    "IMPRESSIONS": "impression",
    "CONCLUSION": "impression",
}


def report_sections(report: str) -> dict[str, str]:
    """``{"findings": ..., "impression": ...}`` from a MIMIC-CXR report (whitespace collapsed).

    Section headers are upper-case words followed by ``:`` at a line start; when a header repeats
    (an addendum above the final report), the last one wins.
    """
    out: dict[str, str] = {}
    marks = list(_HEADER.finditer(report))
    for m, nxt in zip(marks, marks[1:] + [None], strict=True):
        name = _NAMES.get(m.group(1).strip())
        if name:
            body = report[m.end() : nxt.start() if nxt else len(report)]
            body = re.sub(r"_{5,}", " ", body)  # addendum separators
            out[name] = " ".join(body.split())
    return {k: v for k, v in out.items() if v}


def _studies(split_csv: Path, keep: set[str] | None) -> dict[str, dict[str, Any]]:
    studies: dict[str, dict[str, Any]] = {}
    for _f, _line, r in csv_rows(split_csv):
        if keep is not None and r["dicom_id"] not in keep:
            continue
        s = studies.setdefault(r["study_id"], {"subject": r["subject_id"], "split": r["split"], "dicoms": []})
        s["dicoms"].append(r["dicom_id"])
    return studies


def _views(root: Path, views: Sequence[str] | None) -> set[str] | None:
    if not views:
        return None
    meta = next(
        (p for p in (root / "mimic-cxr-2.0.0-metadata.csv.gz", root / "mimic-cxr-2.0.0-metadata.csv") if p.is_file()),
        None,
    )
    if meta is None:
        raise LayoutError(f"views={views} needs mimic-cxr-2.0.0-metadata.csv[.gz] in {root}")
    return {r["dicom_id"] for _f, _l, r in csv_rows(meta) if text(r.get("ViewPosition")) in set(views)}


def _official(
    ctx: Context, root: Path, split: str | None, image_ext: str, views: Sequence[str] | None, reports_root: Path
) -> Iterator[Sample]:
    split_csv = next(
        p for p in (root / "mimic-cxr-2.0.0-split.csv.gz", root / "mimic-cxr-2.0.0-split.csv") if p.is_file()
    )
    studies = _studies(split_csv, _views(root, views))

    def convert(item: tuple[str, dict[str, Any]]) -> Sample | None:
        study, s = item
        name = canonical_split(s["split"]) or s["split"]
        if split not in (None, name):
            return None
        rel = Path("files") / f"p{s['subject'][:2]}" / f"p{s['subject']}"
        report_path = reports_root / rel / f"s{study}.txt"
        if not report_path.is_file():
            raise RecordError(f"report not found: {report_path}")
        sec = report_sections(report_path.read_text(encoding="utf-8", errors="replace"))
        if not sec:
            raise RecordError(f"s{study}.txt has no FINDINGS or IMPRESSION section")
        return ctx.sample(
            study,
            task="report",
            split=name,
            findings=sec.get("findings"),
            impression=sec.get("impression"),
            images=[ctx.image(root / rel / f"s{study}" / f"{d}.{image_ext}") for d in s["dicoms"]],
            modality="x-ray",
            meta={"study_id": study, "dicom_ids": s["dicoms"]},
        )

    yield from ctx.emit(list_rows(str(split_csv), studies.items()), convert)


def _r2gen(ctx: Context, path: Path, split: str | None) -> Iterator[Sample]:
    images = next((d for d in (path.parent / "images", path.parent) if d.is_dir()), path.parent)
    for key, rows in read_json(path).items():
        name = canonical_split(key) or key
        if split not in (None, name):
            continue
        yield from ctx.emit(
            list_rows(str(path), rows),
            lambda r, n=name: ctx.sample(
                text(r["id"]),
                task="report",
                split=n,
                findings=text(r["report"]),
                images=[ctx.image(images / p) for p in r["image_path"]],
                modality="x-ray",
                meta={"study_id": text(r.get("study_id")), "dicom_id": text(r["id"])},
            ),
        )


def load(
    root: Path,
    split: str | None,
    ctx: Context,
    *,
    image_ext: str = "jpg",
    views: Sequence[str] | None = None,
    reports_root: str | Path | None = None,
) -> Iterator[Sample]:
    """Yield MIMIC-CXR report samples (per study from the PhysioNet layout, per image from R2Gen)."""
    if any((root / f).is_file() for f in ("mimic-cxr-2.0.0-split.csv.gz", "mimic-cxr-2.0.0-split.csv")):
        yield from _official(
            ctx, root, split, image_ext.lstrip("."), views, Path(reports_root) if reports_root else root
        )
    elif (root / "annotation.json").is_file() or root.suffix == ".json":
        yield from _r2gen(ctx, root / "annotation.json" if root.is_dir() else root, split)
    else:
        raise LayoutError(f"neither mimic-cxr-2.0.0-split.csv[.gz] nor annotation.json in {root}")
