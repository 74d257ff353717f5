"""Shared machinery of the dataset loaders: the bad-record policy, split names, image refs, file finding.

Every loader turns raw rows into :class:`~medmo.records.Sample` objects through :meth:`Context.emit`,
which applies one policy everywhere: a row that cannot be converted (missing field, bad JSON, degenerate
box, missing image) is counted in :class:`SourceStats`, reported to ``on_error`` and skipped, or, with
``strict=True``, raised as :class:`~medmo.records.RecordError` naming the file and line. One bad record
never ends a long conversion run.
"""

from __future__ import annotations

import csv
import hashlib
import importlib
import io
import json
import math
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

from medmo.records import MODALITIES, ImageRef, RecordError, Sample, stable_id

SPLIT_ALIASES = {"val": "validation", "valid": "validation", "validate": "validation", "dev": "validation"}
YES_NO = {"yes": "yes", "no": "no"}
Row = tuple[str, "int | None", Any]  # (file or hub id, line / row number, raw row)


class LayoutError(FileNotFoundError):
    """The folder given to a loader does not have the dataset's published layout."""


@dataclass(frozen=True)
class SourceInfo:
    """A dataset source, declared once at the top of its loader module as ``SOURCE = SourceInfo(...)``.

    A module that reads several related datasets declares ``SOURCES = (SourceInfo(...), ...)``. The
    registry (:mod:`medmo.data.sources.catalog`) reads these declarations from the module files without
    importing them, so every argument must be a literal (strings, tuples, None).

    Attributes:
        name: registry key, also the ``source`` field and id prefix of its records.
        tasks: record tasks it yields (:data:`medmo.records.TASKS`).
        modality: main imaging modality (``"other"`` for mixed or text-only sets).
        splits: canonical split names it can yield.
        layout: the expected local folder layout, as text.
        licence: licence note, as stated by the publisher.
        hub_id: Hugging Face dataset id, or None.
        aliases: other names it is found by (``load_source`` and mixtures accept them).
        module: the loader module's name in this package (filled in by the registry).
    """

    name: str
    tasks: tuple[str, ...]
    modality: str
    splits: tuple[str, ...]
    layout: str
    licence: str
    hub_id: str | None = None
    aliases: tuple[str, ...] = ()
    module: str = ""

    def load_module(self) -> ModuleType:
        """The loader module (imported on first use; its heavy dependencies load with it)."""
        return importlib.import_module(f"medmo.data.sources.{self.module or self.name}")

    @property
    def loader(self) -> Callable[..., Any]:
        """The module's ``load(root, split, ctx, **kw)`` (imports the module)."""
        return self.load_module().load

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "tasks": list(self.tasks),
            "modality": self.modality,
            "splits": list(self.splits),
            "layout": self.layout,
            "hub_id": self.hub_id,
            "licence": self.licence,
            "aliases": list(self.aliases),
        }


def canonical_split(name: str | None) -> str | None:
    """``val`` / ``valid`` / ``validate`` / ``dev`` -> ``validation``; other names unchanged."""
    if name is None:
        return None
    key = str(name).strip().lower()
    return SPLIT_ALIASES.get(key, key)


@dataclass
class Problem:
    """One record that was skipped: where it is and why."""

    file: str
    line: int | None
    reason: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line is not None else self.file
        return f"{where}: {self.reason}"


@dataclass
class SourceStats:
    """Counts of one loader run; ``problems`` keeps the first ``max_problems`` skipped records."""

    yielded: int = 0
    skipped: int = 0
    filtered: int = 0
    problems: list[Problem] = field(default_factory=list)
    max_problems: int = 1000

    def add(self, problem: Problem) -> None:
        self.skipped += 1
        if len(self.problems) < self.max_problems:
            self.problems.append(problem)

    def summary(self) -> str:
        return f"{self.yielded} records, {self.skipped} skipped, {self.filtered} filtered out"


def _reason(exc: BaseException) -> str:
    if isinstance(exc, KeyError):
        return f"missing field {exc.args[0]!r}"
    if isinstance(exc, json.JSONDecodeError):
        return f"invalid JSON: {exc.msg} (column {exc.colno})"
    return f"{type(exc).__name__}: {exc}" if not isinstance(exc, RecordError) else str(exc)


@dataclass
class Context:
    """Per-run settings every loader receives (built by :func:`medmo.data.sources.load_source`).

    Attributes:
        source: registered dataset name (the ``source`` of every record and the ``stable_id`` prefix).
        strict: raise :class:`RecordError` on the first bad record instead of skipping it.
        stats: counts and problems of this run.
        on_error: called with each :class:`Problem` as it happens.
        check_images: a record whose image file is missing is bad (else kept without a size).
        read_sizes: open images (header only) to record width/height.
        image_dir: where images embedded in hub/parquet rows are written (content-addressed names).
        shard: ``(k, n)``: convert only the rows whose running number is ``k`` modulo ``n`` (the others
            are not converted at all), so ``n`` processes can share one source's work.
        position: ``(row number, index within the row)`` of the sample :meth:`emit` yielded last; with
            ``shard`` it orders the samples of all shards exactly as one unsharded run.
    """

    source: str
    strict: bool = False
    stats: SourceStats = field(default_factory=SourceStats)
    on_error: Callable[[Problem], None] | None = None
    check_images: bool = True
    read_sizes: bool = True
    image_dir: Path | None = None
    shard: tuple[int, int] = (0, 1)
    position: tuple[int, int] = (-1, 0)
    _rows: int = 0

    def sample(self, *key: object, **fields: Any) -> Sample:
        """A :class:`Sample` of this source: ``id`` is :func:`~medmo.records.stable_id` of ``key``; ``source`` is set.

        ``key`` lists the fields that identify the record in its dataset (file, question id, split, ...).
        """
        return Sample(id=stable_id(self.source, *key), source=self.source, **fields)

    def fail(self, file: str, line: int | None, reason: str) -> None:
        problem = Problem(str(file), line, reason)
        self.stats.add(problem)
        if self.on_error is not None:
            self.on_error(problem)
        if self.strict:
            raise RecordError(f"{self.source}: {problem}")

    def emit(
        self,
        rows: Iterable[Row],
        convert: Callable[[Any], Sample | Iterable[Sample] | None],
        parse: Callable[[Any], Any] | None = None,
    ) -> Iterator[Sample]:
        """Convert rows, validate the samples, and apply the bad-record policy.

        ``convert`` returns a Sample, several, or None for a row that is deliberately left out
        (another split, another language); it raises for a row that is broken.
        """
        k, n = self.shard
        for file, line, raw in rows:
            row = self._rows
            self._rows += 1
            if row % n != k:
                continue
            try:
                out = convert(parse(raw) if parse else raw)
                samples = [] if out is None else [out] if isinstance(out, Sample) else list(out)
                for s in samples:
                    s.validate()
            except (RecordError, KeyError, ValueError, TypeError, IndexError, AttributeError, OSError) as e:
                self.fail(file, line, _reason(e))
                continue
            if not samples:
                self.stats.filtered += 1
            for j, s in enumerate(samples):
                self.stats.yielded += 1
                self.position = (row, j)
                yield s

    # ------------------------------------------------------------------------------------- images

    def image(self, path: Path | str, size: tuple[int, int] | None = None) -> ImageRef:
        """An :class:`ImageRef` for a file; ``size`` is the dataset's declared size when it has one."""
        p = Path(path)
        if not p.is_file():
            if self.check_images:
                raise RecordError(f"image not found: {p}")
            return ImageRef(str(p), *(size or (None, None)))
        if size is None and self.read_sizes:
            size = image_size(p)
        return ImageRef(str(p), *(size or (None, None)))

    def embedded(self, value: Any) -> ImageRef:
        """Write an image embedded in a hub / parquet row under ``image_dir`` and reference it.

        Accepts the ``datasets`` Image forms: ``{"bytes": ..., "path": ...}``, a PIL image, raw bytes,
        or a path string. Files are named by content hash, so shared images are written once.
        """
        if isinstance(value, str):
            return self.image(value)
        data = value.get("bytes") if isinstance(value, dict) else value
        if isinstance(value, dict) and data is None:
            return self.image(value.get("path") or "")
        if hasattr(data, "save"):  # PIL image
            buf = io.BytesIO()
            data.save(buf, format=getattr(data, "format", None) or "PNG")
            data = buf.getvalue()
        if not isinstance(data, (bytes, bytearray)):
            raise RecordError(f"unsupported embedded image of type {type(value).__name__}")
        if self.image_dir is None:
            raise RecordError("rows embed images: pass image_dir=... to write them to disk")
        from PIL import Image

        with Image.open(io.BytesIO(data)) as im:
            fmt, size = (im.format or "PNG").upper(), im.size
        ext = {"JPEG": ".jpg", "PNG": ".png", "TIFF": ".tif", "GIF": ".gif", "BMP": ".bmp"}.get(fmt, ".img")
        out = Path(self.image_dir) / f"{hashlib.sha1(data).hexdigest()[:20]}{ext}"
        if not out.exists():
            out.parent.mkdir(parents=True, exist_ok=True)
            tmp = out.with_suffix(out.suffix + ".tmp")
            tmp.write_bytes(data)
            tmp.replace(out)  # atomic: a crash never leaves a half-written image under the final name
        return ImageRef(str(out), size[0], size[1])


def image_size(path: Path) -> tuple[int, int] | None:
    """Width and height from the file header (PIL reads no pixels); None if PIL cannot identify it."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as im:
            return im.size
    except (UnidentifiedImageError, OSError):
        return None


def rescale(box: list[float], from_wh: tuple[float, float], to_wh: tuple[float, float]) -> list[float]:
    """Scale a pixel box given in one image size to another (a released image resized by the user)."""
    sx, sy = to_wh[0] / from_wh[0], to_wh[1] / from_wh[1]
    return [box[0] * sx, box[1] * sy, box[2] * sx, box[3] * sy]


# ------------------------------------------------------------------------------------------- text


def text(value: Any) -> str:
    """A stripped string; None and NaN (pandas / parquet gaps) become ``""``."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    return str(value).strip()


def yes_no(answer: str) -> str:
    """``"Yes "`` / ``"NO"`` -> ``"yes"`` / ``"no"``; any other answer is returned stripped, casing kept."""
    a = text(answer)
    return YES_NO.get(a.lower(), a)


_MODALITY_WORDS = (
    ("x-ray", ("x-ray", "xray", "x ray", "radiograph", "cxr", "chest film", "mammograph")),
    ("ct", ("ct", "computed tomography")),
    ("mri", ("mri", "mr", "magnetic resonance", "t1", "t2", "flair")),
    ("ultrasound", ("ultrasound", "ultrasonography", "sonograph", "us", "echocardiograph")),
    ("pathology", ("pathology", "histopatholog", "histolog", "h&e", "whole slide")),
    ("fundus", ("fundus", "retina", "oct")),
    ("dermoscopy", ("dermoscop", "dermatoscop", "skin lesion")),
    ("microscopy", ("microscop", "cell", "cytolog")),
    ("endoscopy", ("endoscop", "colonoscop", "gastroscop")),
)


def map_modality(label: Any) -> str:
    """Map a dataset's modality label (``"X-Ray"``, ``"MR"``, ``"CT(Computed Tomography)"``) to MODALITIES."""
    s = text(label).lower()
    if s in MODALITIES:
        return s
    words = set(re.findall(r"[a-z0-9&]+(?:-[a-z]+)?", s))
    for name, keys in _MODALITY_WORDS:
        for k in keys:
            long_key = len(k) > 4 or not k.isalnum()  # short keys ("ct", "us") must be whole words
            if (long_key and k in s) or k in words:
                return name
    return "other"


# -------------------------------------------------------------------------------------- file rows


def find(root: Path, patterns: Iterable[str], what: str) -> Path:
    """The first file under ``root`` matching one of the glob patterns, else :class:`LayoutError`."""
    pats = list(patterns)
    for pat in pats:
        hits = sorted(root.glob(pat))
        if hits:
            return hits[0]
    raise LayoutError(f"{what} not found under {root} (looked for {', '.join(pats)})")


def read_json(path: Path) -> Any:
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except json.JSONDecodeError as e:
        raise RecordError(f"{path}:{e.lineno}: invalid JSON ({e.msg}); re-download the file") from None


def jsonl_rows(path: Path) -> Iterator[Row]:
    """``(file, line, text)`` for each non-blank line; parse with ``Context.emit(..., parse=json.loads)``."""
    with open(path, encoding="utf-8") as f:
        for i, line in enumerate(f, 1):
            if line.strip():
                yield str(path), i, line


def csv_rows(path: Path, **kw: Any) -> Iterator[Row]:
    """``(file, first line, dict)`` with a real CSV parser (quoted multi-line fields, CRLF, ``.gz``)."""
    csv.field_size_limit(2**31 - 1)
    opener = _gzip_open if str(path).endswith(".gz") else open
    with opener(path, encoding="utf-8-sig", newline="") as f:
        reader = csv.DictReader(f, **kw)
        start = 2  # the line a record starts on (records may span several lines)
        for row in reader:
            yield str(path), start, row
            start = reader.line_num + 1


def _gzip_open(path: Path, **kw: Any) -> Any:
    import gzip

    return gzip.open(path, "rt", **kw)


def parquet_rows(path: Path, batch_size: int = 64) -> Iterator[Row]:
    """``(file, row number, dict)`` streamed from a parquet file in small batches (embedded images stay bytes)."""
    import pyarrow.parquet as pq

    i = 0
    for batch in pq.ParquetFile(path).iter_batches(batch_size=batch_size):
        for row in batch.to_pylist():
            yield str(path), i, row
            i += 1


def list_rows(name: str, items: Iterable[Any]) -> Iterator[Row]:
    """Rows of an in-memory list (JSON array, hub split), numbered from 0."""
    for i, item in enumerate(items):
        yield name, i, item


def hub_split(hub_id: str, config: str | None, split: str, **kw: Any) -> Any:
    """``datasets.load_dataset(hub_id, config, split=split)``, imported lazily (needs network or a cache)."""
    import datasets

    ds = datasets.load_dataset(hub_id, config, split=split, **kw)
    for col, feat in getattr(ds, "features", {}).items():
        if isinstance(feat, datasets.Image) and feat.decode:
            ds = ds.cast_column(col, datasets.Image(decode=False))  # keep the original bytes, skip decoding
    return ds
