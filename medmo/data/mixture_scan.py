"""Pass 1 of a mixture build, split in two: *scan* shards of a source (parallel) and *merge* them (in order).

A scan job reads one shard of one source (every ``n``-th row from row ``k``; the loaders convert only their
own rows, :attr:`medmo.data.sources.Context.shard`), hashes each record's images, computes its content key
and the evaluation sets it overlaps (:mod:`medmo.data.decontam`), and writes one JSON line per record to a
scan file, in the record's position order, then a ``.stats.json`` beside it (written last: a scan file
without it is unfinished). Jobs share nothing but the image-hash cache, so a process pool, a scheduler's
array job or Ray tasks can run them anywhere.

The merge reads all shards of a source back in position order (a k-way merge), so its output is exactly
that of one unsharded scan, and applies, in that order, decontamination (drop, or keep and count) and
deduplication (an on-disk set of content keys), then spills the kept records for the selection pass.
"""

from __future__ import annotations

import hashlib
import heapq
import json
import os
import sqlite3
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

from medmo.data.decontam import EvalIndex
from medmo.data.io import sample_dict
from medmo.data.mixture_config import MixtureConfig, SourceSpec
from medmo.records import RecordError, Sample

MAX_LISTED = 10000  # contaminated records listed by id in the report (all are counted)
MAX_PROBLEMS = 20  # skipped records listed, with file and line, per source in the report (all are counted)
STATS_SUFFIX = ".stats.json"


class ImageHasher:
    """sha1 of an image file's bytes, cached by (path, size, mtime) in SQLite and a bounded in-memory LRU.

    The on-disk cache makes a rebuild over the same images nearly free; the LRU keeps shared images (many
    questions about one image) from touching SQLite. Several processes may share one cache file: it is in WAL
    mode (readers never wait) and new hashes are written in short batches, so no writer holds the lock for long.
    """

    def __init__(self, db_path: Path, memory_items: int = 65536, batch: int = 256):
        db_path.parent.mkdir(parents=True, exist_ok=True)
        self.db = sqlite3.connect(str(db_path), timeout=300, isolation_level=None)
        self.db.execute("PRAGMA journal_mode = WAL")
        self.db.execute("PRAGMA synchronous = NORMAL")
        self.db.execute("CREATE TABLE IF NOT EXISTS hashes (path TEXT PRIMARY KEY, size INTEGER, mtime INTEGER, sha1 TEXT)")
        self.mem: OrderedDict[str, tuple[int, int, str]] = OrderedDict()
        self.memory_items = memory_items
        self.batch = batch
        self.new: list[tuple[str, int, int, str]] = []

    def __call__(self, path: str) -> str:
        """The file's sha1 hex digest; raises OSError (FileNotFoundError) when it cannot be read."""
        st = os.stat(path)
        stamp = (st.st_size, st.st_mtime_ns)
        hit = self.mem.get(path)
        if hit is not None and hit[:2] == stamp:
            self.mem.move_to_end(path)
            return hit[2]
        row = self.db.execute("SELECT size, mtime, sha1 FROM hashes WHERE path = ?", (path,)).fetchone()
        if row is not None and tuple(row[:2]) == stamp:
            digest = row[2]
        else:
            digest = sha1_file(path)
            self.new.append((path, *stamp, digest))
            if len(self.new) >= self.batch:
                self.commit()
        self.mem[path] = (*stamp, digest)
        if len(self.mem) > self.memory_items:
            self.mem.popitem(last=False)
        return digest

    def commit(self) -> None:
        """Write the new hashes in one short transaction."""
        if self.new:
            self.db.execute("BEGIN IMMEDIATE")
            self.db.executemany("INSERT OR REPLACE INTO hashes VALUES (?, ?, ?, ?)", self.new)
            self.db.execute("COMMIT")
            self.new.clear()

    def close(self) -> None:
        self.commit()
        self.db.close()


def sha1_file(path: str) -> str:
    h = hashlib.sha1()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


class ContentKeys:
    """A set of seen content keys in an on-disk SQLite table (memory does not grow with the record count)."""

    def __init__(self, db_path: Path):
        self.db = sqlite3.connect(str(db_path))
        self.db.execute("PRAGMA journal_mode = OFF")
        self.db.execute("PRAGMA synchronous = OFF")
        self.db.execute("CREATE TABLE seen (k BLOB PRIMARY KEY) WITHOUT ROWID")
        self.db.execute("CREATE TABLE images (h TEXT PRIMARY KEY, source INTEGER) WITHOUT ROWID")

    def add(self, key: bytes) -> bool:
        """Add ``key``; True if it was new."""
        return self.db.execute("INSERT OR IGNORE INTO seen VALUES (?)", (key,)).rowcount == 1

    def image_from_other_source(self, digest: str, source: int) -> bool:
        """Record that ``source`` uses image ``digest``; True if an earlier source used it first."""
        self.db.execute("INSERT OR IGNORE INTO images VALUES (?, ?)", (digest, source))
        return self.db.execute("SELECT source FROM images WHERE h = ?", (digest,)).fetchone()[0] != source

    def commit(self) -> None:
        self.db.commit()

    def close(self) -> None:
        self.db.close()


def content_key(s: Sample, hashes: list[str]) -> bytes:
    """What makes two records the same: image bytes, frames, task, question, answer, options, boxes, report."""
    frames = [ref.frame for ref in s.images]
    boxes = [(b.label, [round(float(v), 2) for v in b.box], b.image) for b in s.boxes]
    body = [hashes, frames, s.task, s.question.strip(), s.answer.strip(), s.options, boxes, s.findings, s.impression]
    return hashlib.sha1(json.dumps(body, ensure_ascii=False, sort_keys=True).encode("utf-8")).digest()


def scan_name(index: int, k: int, n: int) -> str:
    return f"source-{index:03d}.shard-{k:04d}-of-{n:04d}.jsonl"


SourceReader = Callable[[SourceSpec, tuple[int, int], dict[str, Any], bool], Iterator[tuple[tuple[int, int], Sample]]]


def note_skips(stats: dict[str, Any], reasons: Mapping[str, int], problems: Iterable[str]) -> None:
    """Add skipped records to a source's counts: ``reasons`` counts them, ``problems`` says where and why."""
    for reason, n in reasons.items():
        stats["skipped"] += n
        stats["skip_reasons"][reason] = stats["skip_reasons"].get(reason, 0) + n
    for problem in problems:
        if len(stats["problems"]) >= MAX_PROBLEMS:
            break
        stats["problems"].append(str(problem))


def scan(spec: SourceSpec, index: int, shard: tuple[int, int], out_dir: Path, hasher: ImageHasher,
         evals: EvalIndex, read: SourceReader, strict: bool = False) -> dict[str, Any]:  # fmt: skip
    """Scan shard ``(k, n)`` of source ``index`` into ``out_dir``; return (and write) its counts.

    A bad record is skipped and counted (with where it is, in ``problems``); with ``strict`` it raises
    :class:`~medmo.records.RecordError` instead.
    """
    path = out_dir / scan_name(index, *shard)
    stats: dict[str, Any] = {"source": spec.label, "index": index, "shard": list(shard), "read": 0, "skipped": 0,
                             "skip_reasons": {}, "problems": []}  # fmt: skip
    out_dir.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        for position, s in read(spec, shard, stats, strict):
            stats["read"] += 1
            try:
                hashes = [hasher(ref.path) for ref in s.images]
            except OSError as e:
                problem = (f"{spec.label}: record {s.id!r}: image {e.filename} cannot be read ({e.strerror or e}); "
                           "check the path")  # fmt: skip
                if strict:
                    raise RecordError(problem) from None
                note_skips(stats, {"missing_image": 1}, [problem])
                continue
            image_sets, text_sets = evals.overlap(s, hashes) if evals else (set(), set())
            line = {"p": list(position), "k": content_key(s, hashes).hex(), "h": hashes, "ie": sorted(image_sets),
                    "te": sorted(text_sets), "s": sample_dict(s)}  # fmt: skip
            f.write(json.dumps(line, ensure_ascii=False) + "\n")
    hasher.commit()
    os.replace(tmp, path)
    path.with_suffix(STATS_SUFFIX).write_text(json.dumps(stats), encoding="utf-8")  # last: marks the scan complete
    return stats


def _lines(path: Path) -> Iterator[tuple[tuple[int, int], dict[str, Any]]]:
    with open(path, encoding="utf-8") as f:
        for line in f:
            d = json.loads(line)
            yield tuple(d["p"]), d


def merge(spec: SourceSpec, index: int, scans: list[Path], spill: Path, keys: ContentKeys, cfg: MixtureConfig,
          labels: list[str], contamination: dict[str, Any]) -> dict[str, Any]:  # fmt: skip
    """Merge one source's scan files in position order; drop or keep contaminated records; dedup; spill the rest."""
    parts = [json.loads(p.with_suffix(STATS_SUFFIX).read_text(encoding="utf-8")) for p in scans]
    stats: dict[str, Any] = {
        "source": spec.label, "weight": spec.weight, "max_samples": spec.max_samples,
        "read": sum(p["read"] for p in parts), "skipped": 0, "skip_reasons": {}, "problems": [],
        "duplicates": 0, "contaminated": 0, "kept_contaminated": 0, "contaminated_by": {}, "available": 0,
        "allow_contamination": spec.allow_contamination, "note": spec.note, "spill": str(spill),
    }  # fmt: skip
    for p in parts:
        note_skips(stats, p["skip_reasons"], p.get("problems", []))
    stats["missing"] = next((p["missing"] for p in parts if p.get("missing")), None)
    keep_contaminated = cfg.report_only_contamination or spec.allow_contamination
    with open(spill, "w", encoding="utf-8") as out:
        for _pos, d in heapq.merge(*(_lines(p) for p in scans), key=lambda x: x[0]):
            if d["ie"] or d["te"]:
                _count_contamination(stats, d, labels, contamination)
                if not keep_contaminated:
                    continue
                stats["kept_contaminated"] += 1
            if cfg.dedup == "image" and any(keys.image_from_other_source(h, index) for h in d["h"]):
                stats["duplicates"] += 1
                continue
            if cfg.dedup and not keys.add(bytes.fromhex(d["k"])):
                stats["duplicates"] += 1
                continue
            out.write(json.dumps(d["s"], ensure_ascii=False) + "\n")
            stats["available"] += 1
    keys.commit()
    return stats


def _count_contamination(stats: dict[str, Any], d: dict[str, Any], labels: list[str], contamination: dict[str, Any]) -> None:
    stats["contaminated"] += 1
    contamination["count"] += 1
    hit = []
    for kind, sets in (("image", d["ie"]), ("text", d["te"])):
        for i in sets:
            by = stats["contaminated_by"].setdefault(labels[i], {"image": 0, "text": 0})
            by[kind] += 1
            hit.append(labels[i])
    if len(contamination["samples"]) < MAX_LISTED:
        s = d["s"]
        contamination["samples"].append({"id": s["id"], "source": s["source"], "split": s["split"],
                                         "images": [r["path"] for r in s["images"]], "eval": sorted(set(hit))})  # fmt: skip
