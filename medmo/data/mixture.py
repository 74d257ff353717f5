"""Training mixtures: weighted, deduplicated, decontaminated, shuffled Parquet shards from many sources.

A mixture is a YAML file (or the same dict)::

    # medmo data build mixture.yaml --out data/mix
    seed: 0
    shard_size: 10000
    sources:
      - {name: vqa_rad, root: /data/vqa_rad, split: train, weight: 2.0}   # a registered source
      - {name: slake, root: /data/slake, split: train, max_samples: 5000, options: {lang: en}}
      - {records: cells/cells.jsonl, weight: 0.5}                        # a records file or shard folder
    decontaminate_against: [eval/vqa_rad_test.jsonl, eval/slake_test.jsonl]
    report_only_contamination: false

Relative paths are relative to the YAML file's folder, except in the mixtures shipped in ``medmo/recipes``
(``medmo data build nano/mixture``), where they are relative to the working directory, the run folder.
A source's ``tasks: [grounding]`` keeps only records of those tasks (e.g. to repeat one task of a file).

Semantics (decided here):

- ``weight`` w: a source with N usable records contributes ``round(w * N)`` of them; w < 1 draws a uniform
  subset, w > 1 repeats every record ``floor(w)`` times plus a uniform subset (repeats get ``-r<j>`` id
  suffixes). ``max_samples`` caps the count after weighting.
- Deduplication (``dedup: true``, the default): a record whose *content* (image bytes, task, question,
  answer, options, boxes) was already seen, in this or an earlier source, is dropped. Several questions
  about one image are kept; the same question from two collections is not. ``dedup: image`` also drops
  every record of a source whose image already appeared in an *earlier* source (one dataset re-packaged
  inside another); ``dedup: false`` keeps everything. Images are compared by the sha1 of their file bytes
  (cached by path, size and mtime in ``out_dir/.image_hashes.sqlite``).
- Decontamination: a training record sharing any image (by content hash) with a record of the evaluation
  files in ``decontaminate_against`` is dropped, and listed in the report; with
  ``report_only_contamination`` it is kept and only listed.
- Shuffle: an exact uniform shuffle in bounded memory (a two-pass external shuffle: each selected record
  goes to a random bucket file, then each bucket, about one shard in size, is shuffled in memory).
  Memory is bounded by ``shard_size`` and the hash cache, not by the number of records; the set of
  seen content keys lives in an on-disk SQLite table.

The report (``out_dir/mixture_report.json``) lists per source what was read, skipped (and why), dropped as
duplicate or contaminated, and selected, plus the contaminated records themselves.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import random
import shutil
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from medmo import recipes
from medmo.data.io import ReadStats, read_records, sample_dict, write_parquet
from medmo.data.sources import SourceStats, load_source
from medmo.records import Sample

log = logging.getLogger(__name__)

REPORT_NAME = "mixture_report.json"
MAX_LISTED = 10000  # contaminated records listed by id in the report (all are counted)
SPILL_LINES = 20000  # bucket lines buffered in memory before they are appended to the bucket files


@dataclass
class SourceSpec:
    """One entry of a mixture: a registered source (``name`` + ``root``) or a ``records`` file/folder."""

    name: str | None = None
    root: str | None = None
    split: str | None = "train"
    records: str | None = None
    weight: float = 1.0
    max_samples: int | None = None
    options: dict[str, Any] = field(default_factory=dict)
    tasks: list[str] = field(default_factory=list)  # keep only these record tasks (empty: all)

    @property
    def label(self) -> str:
        return self.name if self.name else str(self.records)


@dataclass
class MixtureConfig:
    """A parsed mixture (see the module docstring for the YAML)."""

    sources: list[SourceSpec]
    seed: int = 0
    shard_size: int = 10000
    prefix: str = "part"
    dedup: bool | str = True
    decontaminate_against: list[str] = field(default_factory=list)
    report_only_contamination: bool = False


def load_config(config: str | Path | dict[str, Any]) -> MixtureConfig:
    """Parse and check a mixture YAML file or dict; relative paths resolve against the YAML's folder.

    Raises:
        ValueError: unknown keys, a source with neither/both of ``name`` and ``records``, bad weights.
    """
    base = Path.cwd()
    if not isinstance(config, dict):
        import yaml

        path = recipes.path(config)
        base = Path.cwd() if recipes.is_shipped(path) else path.parent
        config = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        if not isinstance(config, dict):
            raise ValueError(f"{path}: a mixture is a mapping with a 'sources' list")
    raw = dict(config)
    _no_unknown(raw, MixtureConfig.__dataclass_fields__, "mixture")
    specs = []
    for i, s in enumerate(raw.pop("sources", None) or []):
        if not isinstance(s, dict):
            raise ValueError(f"mixture source #{i + 1} must be a mapping, got {s!r}")
        _no_unknown(s, SourceSpec.__dataclass_fields__, f"mixture source #{i + 1}")
        spec = SourceSpec(**s)
        if bool(spec.name) == bool(spec.records):
            raise ValueError(f"mixture source #{i + 1}: give either 'name' (+ 'root') or 'records', not {s}")
        if spec.name and not spec.root:
            raise ValueError(f"mixture source #{i + 1} ({spec.name}): 'root' (dataset folder or hub id) is missing")
        if isinstance(spec.tasks, str):
            spec.tasks = [spec.tasks]
        if not (spec.weight >= 0) or (spec.max_samples is not None and spec.max_samples < 0):
            raise ValueError(f"mixture source #{i + 1}: weight and max_samples must be >= 0")
        spec.records = _resolve(base, spec.records)
        if spec.root and not _looks_like_hub_id(spec.root):
            spec.root = _resolve(base, spec.root)
        specs.append(spec)
    if not specs:
        raise ValueError("the mixture lists no sources")
    raw["decontaminate_against"] = [_resolve(base, p) for p in raw.get("decontaminate_against") or []]
    if raw.get("dedup", True) not in (True, False, "record", "image"):
        raise ValueError(f"mixture: dedup must be true, false or 'image', got {raw['dedup']!r}")
    return MixtureConfig(sources=specs, **raw)


def _no_unknown(d: dict, fields: dict, what: str) -> None:
    unknown = set(d) - set(fields)
    if unknown:
        raise ValueError(f"{what}: unknown keys {sorted(unknown)}; allowed: {sorted(fields)}")


def _resolve(base: Path, p: str | None) -> str | None:
    return None if p is None else str(Path(p) if Path(p).is_absolute() else base / p)


def _looks_like_hub_id(root: str) -> bool:
    return "/" in root and not root.startswith((".", "/", "~")) and not Path(root).exists() and root.count("/") == 1


# ----------------------------------------------------------------------------------------------------
# on-disk state: image hashes and seen content keys


class ImageHasher:
    """sha1 of an image file's bytes, cached by (path, size, mtime) in SQLite and a bounded in-memory LRU.

    The on-disk cache makes a rebuild of a mixture over the same images nearly free; the LRU keeps shared
    images (many questions about one image) from touching SQLite at all.
    """

    def __init__(self, db_path: Path, memory_items: int = 65536):
        import sqlite3
        from collections import OrderedDict

        db_path.parent.mkdir(parents=True, exist_ok=True)
        self.db = sqlite3.connect(str(db_path))
        self.db.execute("CREATE TABLE IF NOT EXISTS hashes (path TEXT PRIMARY KEY, size INTEGER, mtime INTEGER, sha1 TEXT)")
        self.mem: OrderedDict[str, tuple[int, int, str]] = OrderedDict()
        self.memory_items = memory_items
        self.pending = 0

    def __call__(self, path: str) -> str:
        """The file's sha1 hex digest; raises OSError (FileNotFoundError) when it cannot be read."""
        import os

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
            digest = _sha1_file(path)
            self.db.execute("INSERT OR REPLACE INTO hashes VALUES (?, ?, ?, ?)", (path, *stamp, digest))
            self.pending += 1
            if self.pending >= 10000:
                self.commit()
        self.mem[path] = (*stamp, digest)
        if len(self.mem) > self.memory_items:
            self.mem.popitem(last=False)
        return digest

    def commit(self) -> None:
        self.db.commit()
        self.pending = 0

    def close(self) -> None:
        self.db.commit()
        self.db.close()


def _sha1_file(path: str) -> str:
    h = hashlib.sha1()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


class ContentKeys:
    """A set of seen content keys in an on-disk SQLite table (memory does not grow with the record count)."""

    def __init__(self, db_path: Path):
        import sqlite3

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


# ----------------------------------------------------------------------------------------------------
# the build


def build_mixture(
    config: str | Path | dict[str, Any], out_dir: str | Path, *, report_only_contamination: bool | None = None
) -> dict[str, Any]:
    """Build a mixture into ``out_dir`` (``part-*.parquet`` shards + ``mixture_report.json``).

    Args:
        config: a mixture YAML path or dict (see the module docstring).
        out_dir: output folder.
        report_only_contamination: overrides the config's flag (keep contaminated records, only list them).

    Returns:
        the report (also written to ``out_dir/mixture_report.json``).
    """
    cfg = load_config(config)
    if report_only_contamination is not None:
        cfg.report_only_contamination = report_only_contamination
    out = Path(out_dir)
    work = out / ".build"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    rng = random.Random(cfg.seed)
    hasher = ImageHasher(out / ".image_hashes.sqlite")
    keys = ContentKeys(work / "seen.sqlite")
    try:
        eval_hashes = _eval_hashes(cfg.decontaminate_against, hasher)
        contamination: dict[str, Any] = {"count": 0, "samples": []}
        per_source = [
            _filter_source(spec, i, work, hasher, keys, eval_hashes, cfg, contamination)
            for i, spec in enumerate(cfg.sources)
        ]
        hasher.commit()
        buckets = _select_into_buckets(per_source, work, cfg, rng)

        shards = write_parquet(_shuffled(buckets, rng), out, shard_size=cfg.shard_size, prefix=cfg.prefix)
        report = _report(cfg, per_source, contamination, shards, out)
    finally:
        keys.close()
        hasher.close()
        shutil.rmtree(work, ignore_errors=True)
    (out / REPORT_NAME).write_text(json.dumps(report, indent=2, ensure_ascii=False), encoding="utf-8")
    log.info("mixture: %d records in %d shards under %s", report["written"], len(shards), out)
    return report


def _iter_source(spec: SourceSpec, stats: dict[str, Any]) -> Iterator[Sample]:
    samples = _read_source(spec, stats)
    yield from (s for s in samples if s.task in spec.tasks) if spec.tasks else samples


def _read_source(spec: SourceSpec, stats: dict[str, Any]) -> Iterator[Sample]:
    if spec.records:
        rs = ReadStats()
        yield from read_records(spec.records, stats=rs)
        stats["skipped"] += rs.skipped
        for reason, n in rs.counts.items():
            stats["skip_reasons"][reason] = stats["skip_reasons"].get(reason, 0) + n
        return

    ss = SourceStats()
    try:
        records = load_source(spec.name, spec.root, spec.split, stats=ss, **spec.options)
    except KeyError as e:  # unknown source name: a configuration error, reported like one
        raise ValueError(str(e.args[0])) from None
    yield from records
    stats["skipped"] += ss.skipped
    if ss.skipped:
        stats["skip_reasons"]["source_problem"] = stats["skip_reasons"].get("source_problem", 0) + ss.skipped


def _filter_source(
    spec: SourceSpec, index: int, work: Path, hasher: ImageHasher, keys: ContentKeys, eval_hashes: set[str],
    cfg: MixtureConfig, contamination: dict[str, Any],
) -> dict[str, Any]:  # fmt: skip
    """Pass 1: stream one source, drop unusable / duplicate / contaminated records, spill the rest to disk."""
    stats: dict[str, Any] = {"source": spec.label, "weight": spec.weight, "max_samples": spec.max_samples,
                             "read": 0, "skipped": 0, "skip_reasons": {}, "duplicates": 0, "contaminated": 0,
                             "available": 0, "spill": str(work / f"source-{index:03d}.jsonl")}  # fmt: skip
    with open(stats["spill"], "w", encoding="utf-8") as spill:
        for s in _iter_source(spec, stats):
            stats["read"] += 1
            try:
                hashes = [hasher(ref.path) for ref in s.images]
            except OSError:
                stats["skipped"] += 1
                stats["skip_reasons"]["missing_image"] = stats["skip_reasons"].get("missing_image", 0) + 1
                continue
            if eval_hashes and any(h in eval_hashes for h in hashes):
                stats["contaminated"] += 1
                contamination["count"] += 1
                if len(contamination["samples"]) < MAX_LISTED:
                    contamination["samples"].append({"id": s.id, "source": s.source, "split": s.split,
                                                     "images": [r.path for r in s.images]})  # fmt: skip
                if not cfg.report_only_contamination:
                    continue
            if cfg.dedup == "image" and any(keys.image_from_other_source(h, index) for h in hashes):
                stats["duplicates"] += 1
                continue
            if cfg.dedup and not keys.add(_content_key(s, hashes)):
                stats["duplicates"] += 1
                continue
            spill.write(json.dumps(sample_dict(s), ensure_ascii=False) + "\n")
            stats["available"] += 1
            if stats["read"] % 100_000 == 0:
                log.info("mixture: %s: %d records read", spec.label, stats["read"])
    keys.commit()
    return stats


def _content_key(s: Sample, hashes: list[str]) -> bytes:
    frames = [ref.frame for ref in s.images]
    boxes = [(b.label, [round(float(v), 2) for v in b.box], b.image) for b in s.boxes]
    body = [hashes, frames, s.task, s.question.strip(), s.answer.strip(), s.options, boxes, s.findings, s.impression]
    return hashlib.sha1(json.dumps(body, ensure_ascii=False, sort_keys=True).encode("utf-8")).digest()


def _eval_hashes(files: list[str], hasher: ImageHasher) -> set[str]:
    """Content hashes of every image of the evaluation files (evaluation sets are small)."""
    found: set[str] = set()
    for f in files:
        for s in read_records(f):
            for ref in s.images:
                try:
                    found.add(hasher(ref.path))
                except OSError:
                    log.warning("decontamination: image %s of %s is missing; it cannot be matched", ref.path, f)
    return found


def _target(n: int, spec: SourceSpec) -> int:
    k = int(round(spec.weight * n))
    return min(k, spec.max_samples) if spec.max_samples is not None else k


def _select_into_buckets(per_source: list[dict], work: Path, cfg: MixtureConfig, rng: random.Random) -> list[Path]:
    """Pass 2: pick each source's target count (exact, uniform, streaming) and scatter to random buckets."""
    targets = [_target(st["available"], spec) for st, spec in zip(per_source, cfg.sources)]
    total = sum(targets)
    n_buckets = max(1, math.ceil(total / max(cfg.shard_size, 1)))
    paths = [work / f"bucket-{b:05d}.jsonl" for b in range(n_buckets)]
    pending: list[list[str]] = [[] for _ in paths]
    buffered = 0
    for st, k in zip(per_source, targets):
        st["selected"] = k
        for line in _pick(Path(st.pop("spill")), st["available"], k, rng):
            b = rng.randrange(n_buckets)
            pending[b].append(line)
            buffered += 1
            if buffered >= SPILL_LINES:
                _flush(paths, pending)
                buffered = 0
    _flush(paths, pending)
    return [p for p in paths if p.exists()]


def _pick(spill: Path, n: int, k: int, rng: random.Random) -> Iterator[str]:
    """``k`` of the ``n`` lines of ``spill``: full repeats plus Knuth's selection sampling (TAOCP 3.4.2, Algorithm S)."""
    if n == 0 or k == 0:
        return
    full, rest = divmod(k, n)
    seen = chosen = 0
    with open(spill, encoding="utf-8") as f:
        for line in f:
            extra = chosen < rest and rng.random() * (n - seen) < (rest - chosen)
            chosen += extra
            seen += 1
            copies = full + extra
            for j in range(copies):
                yield line if j == 0 else _renamed(line, j)
    spill.unlink()


def _renamed(line: str, j: int) -> str:
    d = json.loads(line)
    d["id"] = f"{d['id']}-r{j}"
    return json.dumps(d, ensure_ascii=False) + "\n"


def _flush(paths: list[Path], pending: list[list[str]]) -> None:
    for path, lines in zip(paths, pending):
        if lines:
            with open(path, "a", encoding="utf-8") as f:
                f.writelines(lines)
            lines.clear()


def _shuffled(buckets: list[Path], rng: random.Random) -> Iterator[Sample]:
    """Pass 3: each bucket (about one shard) shuffled in memory, buckets in order."""
    for path in buckets:
        with open(path, encoding="utf-8") as f:
            lines = f.readlines()
        rng.shuffle(lines)
        for line in lines:
            yield Sample.from_dict(json.loads(line))
        del lines
        path.unlink()


def _report(cfg: MixtureConfig, per_source: list[dict], contamination: dict, shards: list[Path], out: Path) -> dict:
    mode = "reported" if cfg.report_only_contamination else "dropped"
    return {
        "written": sum(st["selected"] for st in per_source),
        "shards": [p.name for p in shards],
        "seed": cfg.seed,
        "sources": per_source,
        "duplicates": sum(st["duplicates"] for st in per_source),
        "contamination": {"mode": mode, "eval_files": cfg.decontaminate_against, **contamination},
        "config": {k: v for k, v in asdict(cfg).items() if k != "sources"}
        | {"sources": [asdict(s) for s in cfg.sources]},
        "out_dir": str(out),
    }
