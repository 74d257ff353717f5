"""The one record type of MedMO: :class:`Sample`.

Every dataset loader, the synthetic generator, the training collators, the evaluation runner and the
exporters speak this type. A record stores boxes in absolute pixels of the original image as
``[x1, y1, x2, y2]`` with the image size beside them (see :mod:`medmo.boxes` for the 0-1000 grid the
model sees). Records round-trip through plain dicts (JSONL) and a fixed Parquet schema.
"""

from __future__ import annotations

import hashlib
import json
import math
import numbers
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
        """Check the record's types and invariants and return it; raise :class:`RecordError` naming the field.

        Numbers of other numeric types (numpy scalars) are normalised to ``int`` / ``float`` in place, so a
        valid record always writes to JSONL and to the Parquet schema of :mod:`medmo.data.io`.
        """
        _check_fields(self)
        _check_task(self)
        _check_boxes(self)
        return self

    @property
    def has_image(self) -> bool:
        return bool(self.images)

    def to_dict(self) -> dict[str, Any]:
        """Plain-dict form (JSONL lines); inverse of :meth:`from_dict`."""
        return asdict(self)

    @classmethod
    def from_dict(cls, d: Any) -> Sample:
        """Build a Sample from :meth:`to_dict` output; a wrong shape raises :class:`RecordError` naming the field.

        Unknown keys are an error; ``meta`` may also be a JSON string (the Parquet form). Field types are
        checked by :meth:`validate`.
        """
        if not isinstance(d, dict):
            raise RecordError(f"a record is a JSON object, got {_type_name(d)}")
        if not _KEYS[cls].issuperset(d):
            raise RecordError(f"unknown record fields {sorted(map(str, d.keys() - _KEYS[cls]))}")
        if not d.keys() >= _REQUIRED:
            raise RecordError(f"missing required field(s) {', '.join(k for k in _REQUIRED_ORDER if k not in d)}")
        d = dict(d)
        d["boxes"] = [_part(Box, "boxes", i, b, ("label", "box")) for i, b in enumerate(_list(d, "boxes"))]
        d["images"] = [_part(ImageRef, "images", i, r, ("path",)) for i, r in enumerate(_list(d, "images"))]
        d["options"] = _mapping(d.get("options"), "options")
        d["meta"] = _mapping(d.get("meta"), "meta")
        return cls(**d)


# ----------------------------------------------------------------------------------------------------
# checks behind Sample.from_dict / Sample.validate

# Record shards store image sizes, frames and box image indices as int32 (medmo.data.io.parquet_schema).
INT32_MAX = 2**31 - 1
_TEXT_FIELDS = ("id", "task", "source", "split", "question", "answer", "modality", "language")
_STR = {str}
_JSON = json.JSONEncoder(ensure_ascii=False)  # one instance: json.dumps(..., ensure_ascii=False) builds one per call
_REQUIRED_ORDER = ("id", "task", "source", "split")
_REQUIRED = frozenset(_REQUIRED_ORDER)
_KEYS = {cls: frozenset(cls.__dataclass_fields__) for cls in (Sample, Box, ImageRef)}


def _type_name(v: Any) -> str:
    """The JSON name of a value's type, for messages."""
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "a boolean"
    for kind, name in ((numbers.Integral, "an integer"), (numbers.Real, "a number"), (str, "a string"),
                       ((list, tuple), "a list"), (dict, "an object")):  # fmt: skip
        if isinstance(v, kind):
            return name
    return type(v).__name__


def _short(v: Any, n: int = 40) -> str:
    r = repr(v)
    return r if len(r) <= n else r[: n - 3] + "..."


def _list(d: dict[str, Any], name: str) -> list[Any]:
    value = d.get(name)
    if value is None:
        return []
    if not isinstance(value, (list, tuple)):
        raise RecordError(f"field {name!r} must be a list, got {_type_name(value)}")
    return list(value)


def _part(cls: type, name: str, i: int, value: Any, required: tuple[str, ...]) -> Any:
    """One ``Box`` / ``ImageRef`` from its dict form (or as given)."""
    if isinstance(value, cls):
        return value
    if not isinstance(value, dict):
        fields = ", ".join(cls.__dataclass_fields__)
        raise RecordError(f"{name}[{i}] must be an object with {fields}, got {_type_name(value)}")
    if not _KEYS[cls].issuperset(value):
        raise RecordError(f"{name}[{i}] has unknown keys {sorted(map(str, value.keys() - _KEYS[cls]))}")
    for k in required:
        if k not in value:
            raise RecordError(f"{name}[{i}] has no {', '.join(k for k in required if k not in value)}")
    return cls(**value)


def _mapping(value: Any, name: str) -> dict[str, Any]:
    if value is None:
        return {}
    if name == "meta" and isinstance(value, str):
        try:
            value = json.loads(value) if value.strip() else {}
        except (json.JSONDecodeError, RecursionError):
            raise RecordError("field 'meta' is a string that is not valid JSON") from None
        value = {} if value is None else value
    if not isinstance(value, dict):
        raise RecordError(f"field {name!r} must be an object, got {_type_name(value)}")
    return dict(value)


def _text(value: Any, where: str, optional: bool = False) -> None:
    if optional and value is None:
        return
    if not isinstance(value, str):
        raise RecordError(f"{where} must be a string{' or null' if optional else ''}, got {_type_name(value)} {_short(value)}")
    _utf8(value, where)


def _utf8(value: str, where: str) -> None:
    """Text that UTF-8 cannot encode (a lone surrogate from a ``\\ud800`` JSON escape) would fail every writer."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as e:
        raise RecordError(f"{where} holds an unpaired surrogate at position {e.start}; fix the text's escapes") from None


def _integer(value: Any, where: str, minimum: int, optional: bool = True) -> int | None:
    """``value`` as a plain int in ``[minimum, INT32_MAX]`` (None allowed when ``optional``)."""
    if type(value) is int and minimum <= value <= INT32_MAX:  # the common case, first
        return value
    if value is None and optional:
        return None
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise RecordError(f"{where} must be an integer, got {_type_name(value)} {_short(value)}")
    if not minimum <= value <= INT32_MAX:
        raise RecordError(f"{where} must be an integer from {minimum} to {INT32_MAX}, got {_short(value)}")
    return int(value)


def _check_fields(s: Sample) -> None:
    """Types of every field: fast set-of-types tests first; messages are built only for a bad value."""
    strings = [s.id, s.task, s.source, s.split, s.question, s.answer, s.modality, s.language]
    if {*map(type, strings)} != _STR:
        for name in _TEXT_FIELDS:
            _text(getattr(s, name), f"field {name!r}")
    for name, value in (("findings", s.findings), ("impression", s.impression)):
        if value is not None:
            if type(value) is not str:
                _text(value, f"field {name!r}", optional=True)
            strings.append(value)
    options = s.options
    if not isinstance(options, dict):
        raise RecordError(f"field 'options' must be an object letter -> text, got {_type_name(options)}")
    if options:
        if {*map(type, options), *map(type, options.values())} != _STR:
            for letter, text in options.items():
                _text(letter, f"options key {_short(letter)}")
                _text(text, f"options[{letter!r}]")
        strings += options
        strings += options.values()
    if not isinstance(s.meta, dict):
        raise RecordError(f"field 'meta' must be an object, got {_type_name(s.meta)}")
    if s.meta:
        try:
            strings.append(_JSON.encode(s.meta))
        except (TypeError, ValueError, RecursionError) as e:
            raise RecordError(f"field 'meta' is not JSON-serializable ({type(e).__name__})") from None
    for name, parts in (("images", s.images), ("boxes", s.boxes)):
        if type(parts) is not list:
            raise RecordError(f"field {name!r} must be a list, got {_type_name(parts)}")
    for i, ref in enumerate(s.images):
        strings.append(_check_image_ref(ref, i))
    for i, b in enumerate(s.boxes):
        strings.append(_check_box_fields(b, i))
    try:  # one encode for all text; the field is looked for only when it fails
        "".join(strings).encode("utf-8")
    except UnicodeEncodeError:
        _find_surrogate(s)


def _check_image_ref(ref: Any, i: int) -> str:
    """Check ``images[i]``; return its path."""
    if not isinstance(ref, ImageRef):
        raise RecordError(f"images[{i}] must be an image reference, got {_type_name(ref)}")
    if type(ref.path) is not str:
        _text(ref.path, f"images[{i}].path")
    if not ref.path:
        raise RecordError(f"images[{i}].path is empty; give the image file's path")
    ref.width = _integer(ref.width, f"images[{i}].width", 1)
    ref.height = _integer(ref.height, f"images[{i}].height", 1)
    ref.frame = _integer(ref.frame, f"images[{i}].frame", 0)
    return ref.path


def _check_box_fields(b: Any, i: int) -> str:
    """Check the types of ``boxes[i]`` (normalising numbers to int / float); return its label."""
    if not isinstance(b, Box):
        raise RecordError(f"boxes[{i}] must be a box, got {_type_name(b)}")
    if type(b.label) is not str:
        _text(b.label, f"boxes[{i}].label")
    b.image = _integer(b.image, f"boxes[{i}].image", 0, optional=False)
    coords = b.box
    if not isinstance(coords, (list, tuple)) or len(coords) != 4:
        n = f"{len(coords)} values" if isinstance(coords, (list, tuple)) else _type_name(coords)
        raise RecordError(f"boxes[{i}].box must be a list of 4 numbers [x1, y1, x2, y2], got {n}")
    plain = True
    for k, v in enumerate(coords):
        kind = type(v)
        if kind is int or (kind is float and math.isfinite(v)):
            continue
        if kind is bool or not isinstance(v, numbers.Real) or not math.isfinite(v):
            raise RecordError(f"boxes[{i}].box[{k}] must be a finite number, got {_type_name(v)} {_short(v)}")
        plain = False
    if not plain or type(coords) is not list:
        b.box = [v if type(v) in (int, float) else float(v) for v in coords]
    return b.label


def _find_surrogate(s: Sample) -> None:
    """Raise for the first text field UTF-8 cannot encode (the slow path of :func:`_check_fields`)."""
    named = [(f"field {name!r}", getattr(s, name)) for name in (*_TEXT_FIELDS, "findings", "impression")]
    named += [(f"options[{k!r}]", f"{k}{v}") for k, v in s.options.items()]
    named += [("field 'meta'", json.dumps(s.meta, ensure_ascii=False))]
    named += [(f"images[{i}].path", r.path) for i, r in enumerate(s.images)]
    named += [(f"boxes[{i}].label", b.label) for i, b in enumerate(s.boxes)]
    for where, value in named:
        if value is not None:
            _utf8(value, where)


def _check_task(s: Sample) -> None:
    if not s.id:
        raise RecordError("field 'id' is empty")
    if s.task not in TASKS:
        raise RecordError(f"unknown task {_short(s.task)} in field 'task'; expected one of {', '.join(TASKS)}")
    if s.modality not in MODALITIES:
        raise RecordError(f"unknown modality {_short(s.modality)} in field 'modality'; expected one of {', '.join(MODALITIES)}")
    if s.task == "mcq":
        if len(s.options) < 2:
            raise RecordError("mcq record needs at least two options in field 'options'")
        if s.answer not in s.options:
            raise RecordError(f"mcq record: answer letter {_short(s.answer)} is not among options {sorted(s.options)}")
    elif s.task == "grounding":
        if not s.boxes:
            raise RecordError("grounding record has no boxes")
    elif s.task == "report":
        if not (s.answer.strip() or (s.findings or "").strip() or (s.impression or "").strip()):
            raise RecordError("report record has no text in answer, findings or impression")
    elif not s.answer.strip():
        raise RecordError(f"{s.task} record has an empty answer")
    if s.task in ("caption", "closed_vqa", "open_vqa", "report", "grounding", "retrieval") and not s.images:
        raise RecordError(f"{s.task} record has no images")


def _check_boxes(s: Sample) -> None:
    for i, b in enumerate(s.boxes):
        where = f"boxes[{i}] ({_short(b.label, 30)})"
        if b.image >= len(s.images):
            raise RecordError(f"{where} refers to image {b.image}; the record has {len(s.images)} image(s), numbered from 0")
        x1, y1, x2, y2 = b.box
        if x1 < 0 or y1 < 0:
            raise RecordError(f"{where} {b.box} has a negative coordinate; boxes are pixels from the top-left corner")
        if not (x2 > x1 and y2 > y1):
            raise RecordError(f"{where} {b.box} is degenerate (needs x2 > x1 and y2 > y1)")
        ref = s.images[b.image]
        if ref.width is not None and ref.height is not None and (x2 > ref.width or y2 > ref.height):
            raise RecordError(f"{where} {b.box} lies outside the {ref.width}x{ref.height} image")


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
