"""Record files: JSONL and sharded Parquet, read and written as streams.

Readers never hold more than one JSONL line or one Parquet record batch in memory, and a bad record
never stops a long run: by default it is skipped, counted by reason in :class:`ReadStats` with its file
and line (or shard and row), and a summary is logged at the end; ``strict=True`` raises instead.

Image paths: a relative ``ImageRef.path`` is relative to the folder of the record file that holds it
(or ``image_root``); readers hand out absolute paths, and writers store paths under the output folder
relative to it, so a dataset folder can be moved as a whole.

The Parquet schema is fixed (:func:`parquet_schema`): nested lists of structs for options, boxes and
images; ``meta`` as a JSON string, so free-form extras never change the schema between shards.
"""

from __future__ import annotations

import codecs
import gzip
import hashlib
import json
import logging
import os
import zlib
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from medmo.data.images import ImageLoadError, check_image
from medmo.records import RECORD_VERSION, ImageRef, RecordError, Sample

log = logging.getLogger(__name__)

PARQUET_SUFFIX = ".parquet"
READ_BATCH_ROWS = 1024
ROW_GROUP_ROWS = 1000


class RecordFileError(RecordError):
    """A bad record in a file (strict mode); ``where`` is ``file:line`` or ``shard row N``."""

    def __init__(self, where: str, reason: str, message: str):
        super().__init__(f"{where}: {reason}: {message}")
        self.where, self.reason, self.message = where, reason, message

    def __reduce__(self) -> tuple:  # crosses process boundaries intact (a worker's error reaches the parent)
        return type(self), (self.where, self.reason, self.message)


@dataclass
class Problem:
    """One skipped record: where it is and why."""

    file: str
    line: int  # 1-based line for JSONL, 0-based row for Parquet
    reason: str
    message: str

    def __str__(self) -> str:
        return f"{place(self.file, self.line)}: {self.reason}: {self.message}"


def place(file: str | Path, line: int) -> str:
    """``FILE line N`` for JSONL (1-based), ``FILE row N`` for a Parquet shard (0-based)."""
    unit = "row" if str(file).endswith(PARQUET_SUFFIX) else "line"
    return f"{file} {unit} {line}"


@dataclass
class ReadStats:
    """Counts of what a read produced and skipped; pass one to :func:`read_records` to collect them.

    Attributes:
        read: records yielded.
        skipped: records skipped (their reasons are counted in ``counts``).
        counts: skipped records by reason (``not_utf8``, ``malformed_json``, ``unknown_field``,
            ``malformed_record``, ``invalid_record``, ``duplicate_id``, ``missing_image``, ``unreadable_image``,
            ``unreadable_file``, ``unreadable_shard``).
        problems: the first ``max_problems`` problems with file and line.
        duplicates: records read *and kept* although an earlier record has their id (``unique_ids="report"``).
        duplicate_problems: the first ``max_problems`` of those, each naming where the id was first used.
    """

    read: int = 0
    skipped: int = 0
    counts: Counter = field(default_factory=Counter)
    problems: list[Problem] = field(default_factory=list)
    max_problems: int = 20
    duplicates: int = 0
    duplicate_problems: list[Problem] = field(default_factory=list)

    def add(self, problem: Problem) -> None:
        self.skipped += 1
        self.counts[problem.reason] += 1
        if len(self.problems) < self.max_problems:
            self.problems.append(problem)

    def add_duplicate(self, problem: Problem) -> None:
        """Count a kept record whose id repeats an earlier one."""
        self.duplicates += 1
        if len(self.duplicate_problems) < self.max_problems:
            self.duplicate_problems.append(problem)

    def summary(self, listed: int = 5) -> str:
        """One line of counts, then the first ``listed`` problems (skipped records, then kept duplicates)."""
        kept = f"; {self.duplicates} kept with a repeated id" if self.duplicates else ""
        if not self.skipped and not self.duplicates:
            return f"{self.read} records read, none skipped"
        reasons = f" ({', '.join(f'{k}: {v}' for k, v in self.counts.most_common())})" if self.skipped else ""
        first = "\n  ".join(str(p) for p in [*self.problems, *self.duplicate_problems][:listed])
        return f"{self.read} records read, {self.skipped} skipped{reasons}{kept}; first problems:\n  {first}"


# ----------------------------------------------------------------------------------------------------
# reading


def read_records(
    path: str | Path,
    *,
    strict: bool = False,
    stats: ReadStats | None = None,
    image_root: str | Path | None = None,
    check_images: bool = False,
    unique_ids: bool | str = True,
) -> Iterator[Sample]:
    """Stream validated :class:`Sample` records from a ``.jsonl`` file, a ``.parquet`` file or a folder of shards.

    Args:
        path: the record file or a folder holding ``*.parquet`` shards (or, without any, ``*.jsonl`` files).
        strict: raise :class:`RecordFileError` at the first bad record instead of skipping it.
        stats: collects counts and the first problems (a fresh one is used if omitted).
        image_root: folder that relative image paths resolve against (default: the record file's folder).
        check_images: also require every image to exist and decode (:func:`medmo.data.images.check_image`);
            fills in missing width/height from the file and re-checks boxes against it.
        unique_ids: ``True``: skip a record whose id an earlier record of this read has (a ``duplicate_id``
            problem naming the file and line of both); ``"report"``: keep it, counted and listed in
            ``stats.duplicates`` (never raised, even when ``strict``); ``False``: do not compare ids.
            Comparing costs about 110 bytes of memory per record read.

    Raises:
        FileNotFoundError: ``path`` does not exist or holds no record files.
        RecordFileError: a bad record, only when ``strict``.
    """
    stats = stats if stats is not None else ReadStats()
    skipped_before = stats.skipped
    sizes: dict[str, tuple[int, int] | tuple[str, str]] = {}
    if unique_ids not in (True, False, "report"):
        raise ValueError(f"unique_ids must be True, False or 'report', got {unique_ids!r}")
    ids = SeenIds() if unique_ids else None
    for file in record_files(path):
        root = Path(image_root) if image_root is not None else file.parent
        rows = _iter_parquet(file) if file.name.endswith(PARQUET_SUFFIX) else _iter_jsonl(file)
        for line, raw, bad in rows:
            try:
                if bad is not None:
                    raise bad
                sample = _to_sample(raw, root, check_images, sizes)
                repeated = ids.check(sample.id, file, line) if ids is not None else None
                if repeated is not None and unique_ids == "report":
                    stats.add_duplicate(Problem(str(file), line, repeated.reason, repeated.message))
                elif repeated is not None:
                    raise repeated
            except _Bad as bad:
                problem = Problem(str(file), line, bad.reason, bad.message)
                if strict:
                    raise RecordFileError(f"{file}:{line}", bad.reason, bad.message) from None
                stats.add(problem)
                continue
            stats.read += 1
            yield sample
    if stats.skipped > skipped_before:
        log.warning("reading %s: %s", path, stats.summary())


def record_files(path: str | Path) -> list[Path]:
    """The record files ``path`` names: itself, or a folder's ``*.parquet`` shards (else ``*.jsonl``), sorted."""
    p = Path(path)
    if p.is_file():
        return [p]
    if p.is_dir():
        files = sorted(f for f in p.glob(f"*{PARQUET_SUFFIX}") if not f.name.startswith("."))
        files = files or sorted(f for f in p.iterdir() if f.name.endswith((".jsonl", ".jsonl.gz")))
        if files:
            return files
        raise FileNotFoundError(f"{p} holds no *.parquet or *.jsonl record files")
    raise FileNotFoundError(f"record file {p} does not exist; check the path")


class _Bad(Exception):
    def __init__(self, reason: str, message: str):
        super().__init__(message)
        self.reason, self.message = reason, message


def _iter_jsonl(file: Path) -> Iterator[tuple[int, Any, _Bad | None]]:
    """Lines of one JSONL file, decoded as strict UTF-8 (a line that is not UTF-8 is one problem, not replaced)."""
    opener = gzip.open if file.name.endswith(".gz") else open
    i = 0
    try:
        with opener(file, "rb") as f:
            for i, raw in enumerate(f, start=1):
                if i == 1 and raw.startswith(codecs.BOM_UTF8):
                    raw = raw[len(codecs.BOM_UTF8) :]
                try:
                    line = raw.decode("utf-8")
                except UnicodeDecodeError as e:
                    yield i, None, _Bad("not_utf8", f"byte 0x{raw[e.start]:02x} at offset {e.start} of the line is not "
                                        "UTF-8; re-save the file as UTF-8 (e.g. iconv -f latin1 -t utf-8)")  # fmt: skip
                    continue
                if line.strip():
                    yield i, *_parse_json(line)
    except (OSError, EOFError, zlib.error) as e:  # a corrupt or truncated .gz
        yield i + 1, None, _Bad("unreadable_file", f"{type(e).__name__}: {e}; the rest of this file is lost: re-create it")


def _parse_json(line: str) -> tuple[Any, _Bad | None]:
    try:
        return json.loads(line), None
    except json.JSONDecodeError as e:
        return None, _Bad("malformed_json", f"{e.msg} at column {e.colno}")
    except RecursionError:
        return None, _Bad("malformed_json", "the JSON is nested too deeply")


def _iter_parquet(file: Path) -> Iterator[tuple[int, Any, _Bad | None]]:
    """Rows of one shard, a record batch at a time; an unreadable shard or batch is one problem."""
    import pyarrow.parquet as pq

    row = 0
    try:
        pf = pq.ParquetFile(file)
        for batch in pf.iter_batches(batch_size=READ_BATCH_ROWS):
            for raw in batch.to_pylist():
                yield row, _from_row(raw), None
                row += 1
    except (OSError, ValueError) as e:  # ArrowInvalid and ArrowIOError derive from these
        yield row, None, _Bad("unreadable_shard", f"{type(e).__name__}: {e}; the rest of this shard is lost: re-build it")


def _to_sample(raw: Any, root: Path, check_images: bool, sizes: dict) -> Sample:
    try:
        sample = Sample.from_dict(raw)
    except RecordError as e:
        reason = "unknown_field" if "unknown record fields" in str(e) else "malformed_record"
        raise _Bad(reason, str(e)) from None
    try:
        sample.validate()
    except RecordError as e:
        raise _Bad("invalid_record", str(e)) from None
    for ref in sample.images:
        if not os.path.isabs(ref.path):
            ref.path = os.path.join(root, ref.path)
        if check_images:
            _check_image(ref, sizes)
    if check_images and sample.boxes:  # sizes read from the files: boxes must lie inside them
        try:
            sample.validate()
        except RecordError as e:
            raise _Bad("invalid_record", str(e)) from None
    return sample


class SeenIds:
    """The record ids of one read, each with the file and line where it first appeared.

    Ids are kept as 64-bit hashes with a packed (file number, line) position: about 110 bytes per id.
    """

    def __init__(self) -> None:
        self.first: dict[int, int] = {}
        self.files: list[Path] = []

    def check(self, sample_id: str, file: Path, line: int) -> _Bad | None:
        """None for a new id (remembered at ``file``/``line``); a ``duplicate_id`` problem for a repeated one."""
        if not self.files or self.files[-1] != file:
            self.files.append(file)
        key = int.from_bytes(hashlib.blake2b(sample_id.encode("utf-8"), digest_size=8).digest(), "little")
        here = (len(self.files) - 1) << 40 | line
        first = self.first.setdefault(key, here)
        if first == here:
            return None
        first_file, first_line = self.files[first >> 40], first & ((1 << 40) - 1)
        where = place(first_file, first_line).removeprefix(f"{file} " if first_file == file else "")
        return _Bad("duplicate_id", f"id {sample_id!r} is already used by an earlier record ({where}); ids must be "
                    "unique: rename or drop one of them")  # fmt: skip


def _check_image(ref: ImageRef, sizes: dict) -> None:
    """Require the image to exist and decode; fill in its size (cached by path and frame)."""
    key = f"{ref.path}\x00{ref.frame}"
    if key not in sizes:
        if len(sizes) > 100_000:  # bound the cache on huge runs
            sizes.clear()
        if not os.path.isfile(ref.path):
            sizes[key] = ("missing_image", f"image {ref.path} does not exist; check the path (relative paths "
                          "resolve against the record file's folder, or image_root)")  # fmt: skip
        else:
            try:
                sizes[key] = check_image(ref.path, frame=ref.frame)
            except ImageLoadError as e:  # its message names the file and the fix, never DICOM header values
                sizes[key] = ("unreadable_image", str(e))
    got = sizes[key]
    if isinstance(got[0], str):
        raise _Bad(*got)
    if ref.width is None or ref.height is None:
        ref.width, ref.height = got


# ----------------------------------------------------------------------------------------------------
# writing


def write_jsonl(samples: Iterable[Sample], path: str | Path) -> Path:
    """Write records as JSON lines, atomically (a temporary file renamed at the end).

    Absolute image paths under the output folder are stored relative to it.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    opener = gzip.open if path.name.endswith(".gz") else open
    try:
        with opener(tmp, "wt", encoding="utf-8") as f:
            for s in samples:
                f.write(json.dumps(sample_dict(_portable(s, path.parent)), ensure_ascii=False) + "\n")
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def write_parquet(
    samples: Iterable[Sample], out_dir: str | Path, shard_size: int = 10000, prefix: str = "part"
) -> list[Path]:
    """Write records into ``out_dir/{prefix}-00000.parquet``, ... with at most ``shard_size`` rows each.

    Rows are written in row groups of ``ROW_GROUP_ROWS`` as they arrive (bounded memory). Each shard is
    written to a hidden temporary file and renamed when complete, so a killed build leaves only whole
    shards. Earlier ``{prefix}-*.parquet`` shards in ``out_dir`` are removed first: the folder then
    holds exactly this dataset.

    Returns:
        the shard paths in order.
    """
    if shard_size < 1:
        raise ValueError(f"shard_size must be >= 1, got {shard_size}")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    for old in list(out.glob(f"{prefix}-*{PARQUET_SUFFIX}")) + list(out.glob(f".{prefix}-*.tmp")):
        old.unlink()
    shards: list[Path] = []
    shard: _Shard | None = None
    try:
        for s in samples:
            if shard is None:
                shard = _Shard(out / f"{prefix}-{len(shards):05d}{PARQUET_SUFFIX}")
            shard.add(_to_row(_portable(s, out)))
            if shard.rows >= shard_size:
                shards.append(shard.finish())
                shard = None
        if shard is not None:
            shards.append(shard.finish())
            shard = None
    finally:
        if shard is not None:  # interrupted: drop the half shard
            shard.abort()
    return shards


class _Shard:
    """One Parquet shard being written: row groups appended to a hidden temp file, renamed when finished."""

    def __init__(self, final: Path):
        import pyarrow.parquet as pq

        self.final, self.tmp = final, final.with_name(f".{final.name}.tmp")
        self.schema = parquet_schema()
        self.writer = pq.ParquetWriter(self.tmp, self.schema, compression="zstd")
        self.rows, self.buf = 0, []

    def add(self, row: dict[str, Any]) -> None:
        self.buf.append(row)
        self.rows += 1
        if len(self.buf) >= ROW_GROUP_ROWS:
            self._flush()

    def _flush(self) -> None:
        import pyarrow as pa

        if self.buf:
            self.writer.write_table(pa.Table.from_pylist(self.buf, schema=self.schema))
            self.buf.clear()

    def finish(self) -> Path:
        self._flush()
        self.writer.close()
        os.replace(self.tmp, self.final)
        return self.final

    def abort(self) -> None:
        self.writer.close()
        self.tmp.unlink(missing_ok=True)


def parquet_schema() -> Any:
    """The fixed Arrow schema of record shards (``meta`` is a JSON string)."""
    import pyarrow as pa

    s = pa.string()
    return pa.schema(
        [
            ("id", s), ("task", s), ("source", s), ("split", s), ("question", s), ("answer", s),
            ("options", pa.list_(pa.struct([("letter", s), ("text", s)]))),
            ("boxes", pa.list_(pa.struct([("label", s), ("box", pa.list_(pa.float64())), ("image", pa.int32())]))),
            ("images", pa.list_(pa.struct([("path", s), ("width", pa.int32()), ("height", pa.int32()), ("frame", pa.int32())]))),
            ("modality", s), ("language", s), ("findings", s), ("impression", s), ("meta", s),
        ],
        metadata={"medmo_record_version": RECORD_VERSION},
    )  # fmt: skip


def sample_dict(s: Sample) -> dict[str, Any]:
    """``s.to_dict()`` without :func:`dataclasses.asdict`'s recursive deep copy (5x faster on big builds)."""
    d = {name: getattr(s, name) for name in _SAMPLE_FIELDS}
    d["options"] = dict(s.options)
    d["boxes"] = [{**vars(b), "box": list(b.box)} for b in s.boxes]
    d["images"] = [dict(vars(r)) for r in s.images]
    d["meta"] = dict(s.meta)
    return d


_SAMPLE_FIELDS = tuple(Sample.__dataclass_fields__)


def _to_row(s: Sample) -> dict[str, Any]:
    d = sample_dict(s)
    d["options"] = [{"letter": k, "text": v} for k, v in s.options.items()]
    d["meta"] = json.dumps(s.meta, sort_keys=True, ensure_ascii=False)
    return d


def _from_row(row: dict[str, Any]) -> dict[str, Any]:
    row["options"] = {o["letter"]: o["text"] for o in row.get("options") or []}
    return row


def _portable(s: Sample, folder: Path) -> Sample:
    """A copy of ``s`` whose absolute image paths under ``folder`` are relative to it."""
    base = os.path.abspath(folder)
    refs = []
    changed = False
    for ref in s.images:
        p = ref.path
        if os.path.isabs(p) and (p == base or p.startswith(base + os.sep)):
            p, changed = os.path.relpath(p, base), True
        refs.append(ImageRef(p, ref.width, ref.height, ref.frame))
    if not changed:
        return s
    from dataclasses import replace

    return replace(s, images=refs)
