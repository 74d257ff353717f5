"""CheXpert Plus (Chambon et al., 2024, Stanford AIMI): chest X-rays with reports and parsed sections.

Reads ``df_chexpert_plus_240401.csv`` (one row per image; ``section_findings`` / ``section_impression``
hold the parsed sections, which are imperfect: impression text sometimes lands in findings). Rows of
one study (``train/patientN/studyM/``) share a report, so one record is made per study with all its
images (``frontal_only=True`` keeps frontal views). A study whose sections are both empty is skipped
with a reason. Split ``valid`` becomes ``validation``. Demographic columns are never copied.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path, PurePosixPath
from typing import Any

from medmo.data.sources._base import Context, SourceInfo, canonical_split, csv_rows, find, text
from medmo.records import RecordError, Sample

SOURCE = SourceInfo(
    name="chexpert_plus",
    tasks=("report",),
    modality="x-ray",
    splits=("train", "validation"),
    layout="<root>/df_chexpert_plus_240401.csv + <path_to_image> files (train/patientN/studyN/viewN_frontal.jpg)",
    licence="Stanford AIMI research use agreement",
)

CSV_NAME = "df_chexpert_plus_240401.csv"


def study_key(path_to_image: str) -> str:
    """``train/patient42142/study5/view1_frontal.jpg`` -> ``train/patient42142/study5``."""
    return str(PurePosixPath(path_to_image).parent)


def _keep(r: dict[str, Any], frontal_only: bool) -> bool:
    return not frontal_only or text(r.get("frontal_lateral")).lower() == "frontal"


def load(
    root: Path, split: str | None, ctx: Context, *, frontal_only: bool = False, images: str | Path | None = None
) -> Iterator[Sample]:
    """Yield one report record per CheXpert Plus study."""
    csv_path = (
        root
        if root.is_file()
        else find(root, [CSV_NAME, "df_chexpert_plus*.csv", "**/df_chexpert_plus*.csv"], CSV_NAME)
    )
    image_root = Path(images) if images else csv_path.parent
    # Pass 1 collects only image paths per study, so memory stays small; pass 2 emits each study once.
    members: dict[str, list[str]] = {}
    for _f, _line, r in csv_rows(csv_path):
        if _keep(r, frontal_only) and text(r.get("path_to_image")):
            members.setdefault(study_key(text(r["path_to_image"])), []).append(text(r["path_to_image"]))
    done: set[str] = set()

    def convert(r: dict[str, Any]) -> Sample | None:
        name = canonical_split(text(r.get("split"))) or "train"
        key = study_key(text(r["path_to_image"]))
        if split not in (None, name) or key in done or key not in members or not _keep(r, frontal_only):
            return None
        done.add(key)
        findings, impression = text(r.get("section_findings")), text(r.get("section_impression"))
        if not (findings or impression):
            raise RecordError(f"study {key} has neither section_findings nor section_impression")
        return ctx.sample(
            key,
            task="report",
            split=name,
            findings=findings or None,
            impression=impression or None,
            images=[ctx.image(image_root / p) for p in sorted(members[key])],
            modality="x-ray",
            meta={
                "study": key,
                "views": [PurePosixPath(p).stem for p in sorted(members[key])],
                "ap_pa": text(r.get("ap_pa")) or None,
            },
        )

    yield from ctx.emit(csv_rows(csv_path), convert)
