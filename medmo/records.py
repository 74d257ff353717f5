"""The one record type of MedMO: :class:`Sample`.

Every dataset loader, the synthetic generator, the training collators, the evaluation runner and the
exporters speak this type. A record stores boxes in absolute pixels of the original image as
``[x1, y1, x2, y2]`` with the image size beside them (see :mod:`medmo.boxes` for the 0-1000 grid the
model sees). Records round-trip through plain dicts (JSONL) and a fixed Parquet schema.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from typing import Any

RECORD_VERSION = "1"

TASKS = (
    "caption",  # image -> description
    "closed_vqa",  # yes/no (or a small closed set) question about an image
    "open_vqa",  # free-form answer about an image
    "mcq",  # multiple choice: options + gold letter; image optional (text-only exams have none)
    "report",  # radiology report: findings / impression
    "grounding",  # one or more labelled boxes
    "retrieval",  # image-text pair
    "text_qa",  # text-only question with a free-form answer
)
MODALITIES = (
    "x-ray",
    "ct",
    "mri",
    "ultrasound",
    "pathology",
    "fundus",
    "dermoscopy",
    "microscopy",
    "endoscopy",
    "other",
)
LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"


class RecordError(ValueError):
    """A record that cannot be used; the message names the field and what is wrong."""


@dataclass
class Box:
    """A labelled box in absolute pixels ``[x1, y1, x2, y2]`` of ``images[image]``."""

    label: str
    box: list[float]
    image: int = 0


@dataclass
class ImageRef:
    """Where an image lives and how big it is.

    Attributes:
        path: a file path (absolute, or relative to the record file's ``image_root``).
        width: width in pixels of the image as loaded (after DICOM/NIfTI rendering).
        height: height in pixels.
        frame: frame of a multi-frame DICOM or slice of a NIfTI volume, if not the default.
    """

    path: str
    width: int | None = None
    height: int | None = None
    frame: int | None = None


@dataclass
class Sample:
    """One training or evaluation example of any MedMO task.

    Attributes:
        id: identifier stable across runs (see :func:`stable_id`).
        task: one of :data:`TASKS`.
        source: registered dataset name, e.g. ``"vqa_rad"``.
        split: ``train`` / ``validation`` / ``test`` (or a dataset's own split name).
        question: the question or instruction; empty for plain captioning / report tasks.
        answer: gold text. closed_vqa: normalized answer ("yes"/"no" or a short word); mcq: the letter;
            report: the full report text; grounding: the target phrase.
        options: for mcq, letter -> option text in display order.
        boxes: for grounding (and datasets that ship boxes), labelled pixel boxes.
        images: image references; empty for text-only records.
        modality: one of :data:`MODALITIES`.
        language: ISO 639-1 code of the question/answer text.
        findings: report findings section, when the source separates it.
        impression: report impression section, when the source separates it.
        meta: small JSON-serializable extras (answer type, organ, question type, ...). Never patient data.
    """

    id: str
    task: str
    source: str
    split: str
    question: str = ""
    answer: str = ""
    options: dict[str, str] = field(default_factory=dict)
    boxes: list[Box] = field(default_factory=list)
    images: list[ImageRef] = field(default_factory=list)
    modality: str = "other"
    language: str = "en"
    findings: str | None = None
    impression: str | None = None
    meta: dict[str, Any] = field(default_factory=dict)

    def validate(self) -> Sample:
        """Check the record's invariants and return it; raise :class:`RecordError` naming the problem."""
        if not self.id:
            raise RecordError("empty id")
        if self.task not in TASKS:
            raise RecordError(f"unknown task {self.task!r}; expected one of {', '.join(TASKS)}")
        if self.modality not in MODALITIES:
            raise RecordError(f"unknown modality {self.modality!r}; expected one of {', '.join(MODALITIES)}")
        if self.task == "mcq":
            if len(self.options) < 2:
                raise RecordError("multiple-choice record needs at least two options")
            if self.answer not in self.options:
                raise RecordError(f"answer letter {self.answer!r} is not among options {sorted(self.options)}")
        elif self.task == "grounding":
            if not self.boxes:
                raise RecordError("grounding record has no boxes")
        elif self.task == "report":
            if not (self.answer.strip() or (self.findings or "").strip() or (self.impression or "").strip()):
                raise RecordError("report record has no text")
        elif not self.answer.strip():
            raise RecordError(f"{self.task} record has an empty answer")
        if self.task in ("caption", "closed_vqa", "open_vqa", "report", "grounding", "retrieval") and not self.images:
            raise RecordError(f"{self.task} record has no image")
        for b in self.boxes:
            if b.image >= len(self.images):
                raise RecordError(f"box {b.label!r} refers to image {b.image}, record has {len(self.images)}")
            ref = self.images[b.image]
            if len(b.box) != 4:
                raise RecordError(f"box {b.label!r} has {len(b.box)} coordinates, expected 4")
            x1, y1, x2, y2 = b.box
            if not (x2 > x1 and y2 > y1):
                raise RecordError(f"box {b.label!r} {b.box} is degenerate (needs x2 > x1 and y2 > y1)")
            if ref.width is not None and ref.height is not None:
                if x1 < 0 or y1 < 0 or x2 > ref.width or y2 > ref.height:
                    raise RecordError(f"box {b.label!r} {b.box} lies outside the {ref.width}x{ref.height} image")
        return self

    @property
    def has_image(self) -> bool:
        return bool(self.images)

    def to_dict(self) -> dict[str, Any]:
        """Plain-dict form (JSONL lines); inverse of :meth:`from_dict`."""
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Sample:
        """Build a Sample from :meth:`to_dict` output (unknown keys are an error)."""
        d = dict(d)
        unknown = set(d) - set(cls.__dataclass_fields__)
        if unknown:
            raise RecordError(f"unknown record fields {sorted(unknown)}")
        try:
            d["boxes"] = [Box(**b) if isinstance(b, dict) else b for b in d.get("boxes") or []]
            d["images"] = [ImageRef(**i) if isinstance(i, dict) else i for i in d.get("images") or []]
        except TypeError as e:
            raise RecordError(f"malformed boxes or images: {e}") from None
        d["options"] = dict(d.get("options") or {})
        meta = d.get("meta") or {}
        d["meta"] = json.loads(meta) if isinstance(meta, str) else dict(meta)
        try:
            return cls(**d)
        except TypeError as e:
            raise RecordError(str(e)) from None


def stable_id(source: str, *parts: object) -> str:
    """An id that depends only on the source and the given key parts, e.g. ``vqa_rad-3f2a...``.

    Args:
        source: dataset name.
        *parts: the fields that identify the record in its dataset (file, qid, split, ...).
    """
    h = hashlib.sha1("\x1f".join(str(p) for p in parts).encode("utf-8")).hexdigest()[:16]
    return f"{source}-{h}"


def options_from_list(texts: list[str]) -> dict[str, str]:
    """Letter the given option texts A, B, C, ... in order."""
    if len(texts) > len(LETTERS):
        raise RecordError(f"{len(texts)} options is more than {len(LETTERS)}")
    return {LETTERS[i]: str(t) for i, t in enumerate(texts)}
