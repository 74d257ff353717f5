"""Training mixtures: weighted, deduplicated, decontaminated, shuffled Parquet shards from many sources.

A mixture is a YAML file (or the same dict; :mod:`medmo.data.mixture_config` parses and checks it)::

    # medmo data build mixture.yaml --out data/mix
    seed: 0
    shard_size: 10000
    sources:
      - {name: vqa_rad, root: /data/vqa_rad, split: train, weight: 2.0}   # a registered source
      - {name: slake, root: /data/slake, split: train, max_samples: 5000, options: {lang: en}}
      - {records: cells/cells.jsonl, weight: 0.5}                        # a records file or shard folder
    decontaminate_against:                                               # evaluation sets
      - eval/vqa_rad_test.jsonl
      - {name: medqa, root: /data/medqa, split: test}

A file may instead hold one mixture per training stage under ``stages:`` (build one with ``stage=``).
Relative paths are relative to the YAML file's folder, except in the mixtures shipped in ``medmo/recipes``
(``medmo data build nano/mixture``), where they are relative to the working directory, the run folder.
A source's ``tasks: [grounding]`` keeps only records of those tasks (e.g. to repeat one task of a file), and
its ``where:`` only records whose fields match (``{modality: [ct, mri], meta.background: flat}``).

Semantics (decided here):

- ``weight`` w: a source with N usable records contributes ``round(w * N)`` of them; w < 1 draws a uniform
  subset, w > 1 repeats every record ``floor(w)`` times plus a uniform subset (repeats get ``-r<j>`` id
  suffixes). ``max_samples`` caps the count after weighting.
- Deduplication (``dedup: true``, the default): a record whose *content* (image bytes, task, question,
  answer, options, boxes) was already seen, in this or an earlier source, is dropped. ``dedup: image`` also
  drops every record of a source whose image already appeared in an *earlier* source; ``dedup: false``
  keeps everything. Images are compared by the sha1 of their file bytes (cached by path, size and mtime in
  ``out_dir/.image_hashes.sqlite``).
- Decontamination (:mod:`medmo.data.decontam`): a training record sharing an image (by content) with an
  evaluation record, or, for a record without images, a question n-gram with a text-only evaluation
  question, is dropped; ``report_only_contamination`` (or a source's ``allow_contamination``) keeps it.
  The report counts overlaps per (training source, evaluation set) pair either way.
- Shuffle: an exact uniform shuffle in bounded memory (records go to random bucket files of about one
  shard each; each bucket is shuffled in memory).
- Parallel and distributed (``workers``; :func:`scan_jobs` + :func:`merge_scans` across machines): pass 1 is
  split into scan jobs of one shard of one source each (:mod:`medmo.data.mixture_scan`); their outputs are
  merged in record order, so any number of workers or machines gives the very same shards.
- A build writes into a temporary folder beside ``out_dir`` and swaps it in when complete, so a killed
  (re)build leaves the previous build whole, never a half-written one.
- Bad records (malformed, wrong field types, a repeated id, a missing image) are skipped; each source's report
  counts them by reason and lists the first ones with file and line. ``strict: true`` (``strict=True``,
  ``medmo data build --strict``) stops the build at the first one instead, with a
  :class:`~medmo.records.RecordError` naming file, line and reason (a bad evaluation record stops it too);
  ``out_dir`` stays as it was.
- An evaluation record whose id an earlier record of its set has is still indexed (its images and question
  are what decontamination needs) and reported: the set's ``duplicate_ids`` and ``duplicate_id_examples``
  (file, line and where the id was first used), beside its ``skipped`` records and their ``problems``.

The report (``out_dir/mixture_report.json``) lists per source what was read, skipped (and why), dropped as
duplicate or contaminated (by evaluation set), and selected, plus the contaminated records themselves.
"""

from __future__ import annotations

import json
import logging
import math
import multiprocessing
import os
import random
import re
import shutil
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import asdict
from pathlib import Path
from typing import Any

from medmo.data.decontam import EvalIndex, build_index
from medmo.data.io import ReadStats, read_records, write_parquet
from medmo.data.mixture_config import EvalSpec, MixtureConfig, SourceSpec, load_config, looks_like_hub_id
from medmo.data.mixture_scan import MAX_PROBLEMS, STATS_SUFFIX, ContentKeys, ImageHasher, merge, note_skips, scan
from medmo.data.sources import SourceStats, load_source
from medmo.records import Sample

__all__ = ["ImageHasher", "MixtureConfig", "SourceSpec", "build_mixture", "load_config", "merge_scans", "scan_jobs"]

log = logging.getLogger(__name__)

REPORT_NAME = "mixture_report.json"
CACHE_NAME = ".image_hashes.sqlite"
SPILL_LINES = 20000  # bucket lines buffered in memory before they are appended to the bucket files
OUTPUTS = re.compile(r"^(.*\.parquet|mixture_report\.json|\.image_hashes\.sqlite.*|\.build)$")

_EVALS: EvalIndex = EvalIndex()  # the evaluation index forked worker processes inherit


# ----------------------------------------------------------------------------------------------------
# reading sources and evaluation sets


def _iter_source(spec: SourceSpec, shard: tuple[int, int], stats: dict[str, Any],
                 strict: bool = False) -> Iterator[tuple[tuple[int, int], Sample]]:  # fmt: skip
    """``(position, record)`` of one shard of a mixture entry (the loaders convert only their own rows).

    Skipped records are added to ``stats``; with ``strict`` the first one raises instead.
    """
    k, n = shard
    if spec.optional and not _present(spec):
        stats["missing"] = f"{spec.records or spec.root} does not exist"
        return
    if spec.records:
        records, rs = _records_file(spec.records, strict)
        for i, s in enumerate(records):
            if i % n == k and spec.keeps(s):
                yield (i, 0), s
        if k == 0:  # every shard reads the file: shard 0 reports its problems
            note_skips(stats, rs.counts, rs.problems)
        return
    ss = SourceStats()
    records = _load(spec, strict=strict, stats=ss, shard=shard, with_positions=True)
    yield from ((pos, s) for pos, s in records if spec.keeps(s))
    note_skips(stats, {"source_problem": ss.skipped} if ss.skipped else {}, ss.problems)


# Mixtures often list one records file several times (task filters, up-weighted subsets: the nano sft
# mixture reads data/train.jsonl in five sources). A file up to this size is parsed once per process and
# its records reused while the file is unchanged; larger files and folders of shards stream every time.
_REUSE_MAX_BYTES = 32 << 20
_reused: tuple[tuple, list[Sample], ReadStats] | None = None


def _records_file(path: str | Path, strict: bool) -> tuple[Iterator[Sample] | list[Sample], ReadStats]:
    """The records of ``path`` and their read counts: the last small file's records again if it is unchanged."""
    global _reused
    p = Path(path).expanduser()
    st = p.stat() if p.is_file() else None
    key = (str(p.resolve()), st.st_size, st.st_mtime_ns, strict) if st and st.st_size <= _REUSE_MAX_BYTES else None
    if key is not None and _reused is not None and _reused[0] == key:
        return _reused[1], _reused[2]
    rs = ReadStats(max_problems=MAX_PROBLEMS)
    records = read_records(path, stats=rs, strict=strict)
    if key is None:
        return records, rs
    _reused = (key, list(records), rs)
    return _reused[1], rs


def _load(spec: SourceSpec | EvalSpec, **kw: Any) -> Iterator[Any]:
    """The records of a registered source (``load_source`` with the entry's options)."""
    try:
        return load_source(spec.name, spec.root, spec.split, **kw, **spec.options)
    except KeyError as e:  # unknown source name: a configuration error, reported like one
        raise ValueError(str(e.args[0])) from None


def _present(spec: SourceSpec | EvalSpec) -> bool:
    """The entry's records file or dataset folder exists (a hub id counts as present)."""
    where = spec.records or spec.root or ""
    return Path(where).expanduser().exists() or (not spec.records and looks_like_hub_id(where))


def _eval_records(spec: EvalSpec, missing: dict[str, str], read: dict[str, Any], strict: bool) -> Iterator[Sample]:
    """The records of one evaluation set; what was skipped or repeated is put in ``read`` once they are all read.

    A record whose id repeats an earlier one is kept: decontamination needs its images and question.
    """
    if spec.optional and not _present(spec):
        missing[spec.label] = f"{spec.records or spec.root} does not exist"
        return
    if spec.records:
        rs = ReadStats(max_problems=MAX_PROBLEMS)
        records = read_records(spec.records, stats=rs, strict=strict, unique_ids="report")
        yield from (s for s in records if spec.split is None or s.split == spec.split)
        read.update(duplicate_ids=rs.duplicates, duplicate_id_examples=[str(p) for p in rs.duplicate_problems])
        note_skips(read, rs.counts, rs.problems)
        return
    ss = SourceStats()
    yield from _load(spec, strict=strict, stats=ss, check_images=False)
    note_skips(read, {"source_problem": ss.skipped} if ss.skipped else {}, ss.problems)


def eval_index(cfg: MixtureConfig, hasher: ImageHasher) -> EvalIndex:
    """The decontamination index of the mixture's evaluation sets (image hashes and question n-grams).

    An optional set whose folder does not exist is left out, with ``missing`` set in its counts. Each set's
    counts say how many of its records were skipped (``skipped``, ``skip_reasons``, ``problems``) and how many
    repeat an earlier record's id (``duplicate_ids``, ``duplicate_id_examples``); both are logged too.
    """
    missing: dict[str, str] = {}
    reads = [{"skipped": 0, "skip_reasons": {}, "problems": [], "duplicate_ids": 0, "duplicate_id_examples": []}
             for _ in cfg.decontaminate_against]  # fmt: skip
    sets = ((e.label, _eval_records(e, missing, r, cfg.strict)) for e, r in zip(cfg.decontaminate_against, reads))
    index = build_index(sets, hasher, cfg.ngram, warn=log.warning)
    for label, n, read in zip(index.labels, index.counts, reads):
        n.update(read)
        if label in missing:
            n["missing"] = missing[label]
            log.warning("decontamination: %s is not checked: %s", label, missing[label])
        if read["skipped"]:
            log.warning("decontamination: %d records of %s are skipped and not checked against, e.g. %s",
                        read["skipped"], label, read["problems"][0])  # fmt: skip
        if read["duplicate_ids"]:
            log.warning("decontamination: %d records of %s repeat an earlier record's id (still checked against), "
                        "e.g. %s", read["duplicate_ids"], label, read["duplicate_id_examples"][0])  # fmt: skip
    return index


# ----------------------------------------------------------------------------------------------------
# scan jobs (pass 1a) and their merge (pass 1b)


def _scan_job(cfg: MixtureConfig, index: int, shard: tuple[int, int], scans: Path, cache: Path) -> dict[str, Any]:
    hasher = ImageHasher(cache)
    try:
        return scan(cfg.sources[index], index, shard, scans, hasher, _EVALS, _iter_source, cfg.strict)
    finally:
        hasher.close()


def _run_scans(cfg: MixtureConfig, scans: Path, cache: Path, workers: int, evals: EvalIndex) -> None:
    """Every source in ``workers`` shards; jobs run in forked processes (or here, for one worker)."""
    global _EVALS
    _EVALS = evals
    jobs = [(i, (k, workers)) for i in range(len(cfg.sources)) for k in range(workers)]
    if workers == 1:
        for i, shard in jobs:
            _scan_job(cfg, i, shard, scans, cache)
        return
    with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("fork")) as pool:
        futures = [pool.submit(_scan_job, cfg, i, shard, scans, cache) for i, shard in jobs]
        try:
            for f in as_completed(futures):
                f.result()  # re-raises a job's error here, as soon as one fails
        except BaseException:
            pool.shutdown(cancel_futures=True)  # the jobs not yet started never start
            raise


def _scan_files(cfg: MixtureConfig, scans: Path) -> list[list[Path]]:
    """Each source's complete scan files (every shard ``k`` of one ``n``); names the missing jobs otherwise."""
    out = []
    for i in range(len(cfg.sources)):
        done = sorted(p for p in scans.glob(f"source-{i:03d}.shard-*.jsonl") if p.with_suffix(STATS_SUFFIX).is_file())
        ns = {int(p.stem.split("-of-")[1]) for p in done}
        if len(ns) != 1 or len(done) != next(iter(ns)):
            have = ", ".join(p.name for p in done) or "none"
            raise FileNotFoundError(f"source #{i + 1} ({cfg.sources[i].label}): the scans under {scans} are incomplete "
                                    f"(finished: {have}); run its missing scan jobs (medmo data scan --source {i} "
                                    "--shard K/N) and merge again")  # fmt: skip
        out.append(done)
    return out


# ----------------------------------------------------------------------------------------------------
# the build


def build_mixture(
    config: str | Path | dict[str, Any], out_dir: str | Path, *, report_only_contamination: bool | None = None,
    workers: int = 1, stage: str | None = None, data_dir: str | None = None, strict: bool | None = None,
) -> dict[str, Any]:  # fmt: skip
    """Build a mixture into ``out_dir`` (``part-*.parquet`` shards + ``mixture_report.json``).

    Args:
        config: a mixture YAML path or dict (see the module docstring).
        out_dir: output folder; the build happens in a temporary folder beside it and replaces it at the end.
        report_only_contamination: overrides the config's flag (keep contaminated records, only list them).
        workers: processes for pass 1 (reading, image hashing, decontamination); the output does not depend on it.
        stage: for a file with ``stages:``, which mixture.
        data_dir: replaces the file's ``data_dir``.
        strict: overrides the config's ``strict`` (stop at the first bad record instead of skipping it).

    Returns:
        the report (also written to ``out_dir/mixture_report.json``).

    Raises:
        RecordError: a bad record, when strict; it names the file, the line and the reason, and ``out_dir``
            is left as it was.
    """
    cfg = load_config(config, stage, data_dir)
    for key, value in (("report_only_contamination", report_only_contamination), ("strict", strict)):
        if value is not None:
            setattr(cfg, key, value)
    if workers < 1:
        raise ValueError(f"workers must be >= 1, got {workers}")
    return _build(cfg, Path(out_dir), lambda scans, cache, evals: _run_scans(cfg, scans, cache, workers, evals))


def merge_scans(config: str | Path | dict[str, Any], scans_dir: str | Path, out_dir: str | Path, *,
                stage: str | None = None, data_dir: str | None = None) -> dict[str, Any]:  # fmt: skip
    """Finish a build whose scan jobs (:func:`scan_jobs`) ran elsewhere: merge ``scans_dir`` into ``out_dir``.

    The result equals :func:`build_mixture` of the same config on one machine.
    """
    cfg = load_config(config, stage, data_dir)
    scans = Path(scans_dir)
    _scan_files(cfg, scans)  # refuse before touching out_dir when a job is missing
    return _build(cfg, Path(out_dir), None, scans=scans)


def scan_jobs(config: str | Path | dict[str, Any], scans_dir: str | Path, shard: tuple[int, int], *,
              source: int | None = None, stage: str | None = None, data_dir: str | None = None) -> list[dict[str, Any]]:  # fmt: skip
    """Run scan jobs on this machine: shard ``(k, n)`` of one source (``source``, its index) or of every source.

    One job per (source, shard) is the unit a scheduler array or Ray runs; :func:`merge_scans` finishes.
    """
    cfg = load_config(config, stage, data_dir)
    if source is not None and not 0 <= source < len(cfg.sources):
        raise ValueError(f"--source {source}: the mixture has sources 0 to {len(cfg.sources) - 1}")
    scans = Path(scans_dir)
    scans.mkdir(parents=True, exist_ok=True)
    # one hash cache per machine: SQLite locking is not safe across machines on a shared file system
    hasher = ImageHasher(scans / f".image_hashes.{_host()}.sqlite")
    try:
        evals = eval_index(cfg, hasher)
        indices = range(len(cfg.sources)) if source is None else [source]
        return [scan(cfg.sources[i], i, shard, scans, hasher, evals, _iter_source, cfg.strict) for i in indices]
    finally:
        hasher.close()


def _host() -> str:
    import socket

    return re.sub(r"[^A-Za-z0-9_.-]", "_", socket.gethostname()) or "host"


def _build(cfg: MixtureConfig, out: Path, run: Any, scans: Path | None = None) -> dict[str, Any]:
    tmp = _prepare(out)
    cache = tmp / CACHE_NAME
    work = tmp / ".build"
    work.mkdir()
    keys = ContentKeys(work / "seen.sqlite")
    try:
        hasher = ImageHasher(cache)
        evals = eval_index(cfg, hasher)
        hasher.close()
        if run is not None:
            scans = work / "scans"
            run(scans, cache, evals)
        contamination: dict[str, Any] = {"count": 0, "samples": []}
        per_source = [merge(spec, i, files, work / f"source-{i:03d}.jsonl", keys, cfg, evals.labels, contamination)
                      for i, (spec, files) in enumerate(zip(cfg.sources, _scan_files(cfg, scans)))]  # fmt: skip
        rng = random.Random(cfg.seed)
        buckets = _select_into_buckets(per_source, work, cfg, rng)
        shards = write_parquet(_shuffled(buckets, rng), tmp, shard_size=cfg.shard_size, prefix=cfg.prefix)
        report = _report(cfg, per_source, contamination, evals, shards, out)
        keys.close()
        shutil.rmtree(work, ignore_errors=True)
        (tmp / REPORT_NAME).write_text(json.dumps(report, indent=2, ensure_ascii=False), encoding="utf-8")
    except BaseException:
        keys.close()
        _abandon(tmp, out)
        raise
    _swap(tmp, out)
    log.info("mixture: %d records in %d shards under %s", report["written"], len(shards), out)
    return report


# ----------------------------------------------------------------------------------------------------
# the output folder: build beside it, swap when complete


def _prepare(out: Path) -> Path:
    """A fresh temporary build folder beside ``out`` (stale ones of killed builds removed); the hash cache moved in."""
    if out.exists() and not out.is_dir():
        raise ValueError(f"--out {out} is a file; give a folder")
    if out.is_dir():
        foreign = sorted(p.name for p in out.iterdir() if not OUTPUTS.match(p.name))
        if foreign:
            raise ValueError(f"--out {out} holds files a mixture build did not write ({', '.join(foreign[:5])}); a "
                             "build replaces the whole folder, so give an empty or new folder")  # fmt: skip
    out.parent.mkdir(parents=True, exist_ok=True)
    for stale in out.parent.glob(f".{out.name}.building-*"):
        if not _alive(stale.name.rsplit("-", 1)[-1]):
            shutil.rmtree(stale, ignore_errors=True)
    tmp = out.parent / f".{out.name}.building-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    for f in out.glob(CACHE_NAME + "*") if out.is_dir() else []:
        f.replace(tmp / f.name)
    return tmp


def _alive(pid: str) -> bool:
    try:
        os.kill(int(pid), 0)
    except (ValueError, ProcessLookupError):
        return False
    except PermissionError:
        return True
    return True


def _swap(tmp: Path, out: Path) -> None:
    """Replace ``out`` by the finished build ``tmp`` (two renames; the old build is removed after)."""
    old = out.parent / f".{out.name}.old-{os.getpid()}"
    if out.exists():
        out.rename(old)
    tmp.rename(out)
    shutil.rmtree(old, ignore_errors=True)


def _abandon(tmp: Path, out: Path) -> None:
    """A failed build: keep the previous output untouched (its hash cache put back), drop the temporary folder."""
    if out.is_dir():
        for f in tmp.glob(CACHE_NAME + "*"):
            f.replace(out / f.name)
    shutil.rmtree(tmp, ignore_errors=True)


# ----------------------------------------------------------------------------------------------------
# selection (pass 2) and shuffle (pass 3)


def _target(n: int, spec: SourceSpec) -> int:
    k = round(spec.weight * n)
    return min(k, spec.max_samples) if spec.max_samples is not None else k


def _select_into_buckets(per_source: list[dict], work: Path, cfg: MixtureConfig, rng: random.Random) -> list[Path]:
    """Pass 2: pick each source's target count (exact, uniform, streaming) and scatter to random buckets."""
    targets = [_target(st["available"], spec) for st, spec in zip(per_source, cfg.sources)]
    total = sum(targets)
    n_buckets = max(1, math.ceil(total / max(cfg.shard_size, 1)))
    paths = [work / f"bucket-{b:05d}.jsonl" for b in range(n_buckets)]
    pending: list[list[str]] = [[] for _ in paths]
    buffered = 0
    seen: dict[tuple, int] = {}
    for i, (st, k, spec) in enumerate(zip(per_source, targets, cfg.sources)):
        st["selected"] = k
        # The same records listed again (e.g. to repeat one task of a file) would repeat their ids: the
        # later entry's copies are told apart by their entry number, so every id stays unique.
        what = (spec.records, spec.name, spec.root, spec.split)
        tag = f"-s{i}" if seen.setdefault(what, i) != i else ""
        for line in _pick(Path(st.pop("spill")), st["available"], k, rng, tag):
            b = rng.randrange(n_buckets)
            pending[b].append(line)
            buffered += 1
            if buffered >= SPILL_LINES:
                _flush(paths, pending)
                buffered = 0
    _flush(paths, pending)
    return [p for p in paths if p.exists()]


def _pick(spill: Path, n: int, k: int, rng: random.Random, tag: str = "") -> Iterator[str]:
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
                yield line if j == 0 and not tag else _renamed(line, j, tag)
    spill.unlink()


def _renamed(line: str, j: int, tag: str = "") -> str:
    d = json.loads(line)
    d["id"] = f"{d['id']}{tag}" + (f"-r{j}" if j else "")
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


# ----------------------------------------------------------------------------------------------------
# the report


def _report(cfg: MixtureConfig, per_source: list[dict], contamination: dict, evals: EvalIndex, shards: list[Path],
            out: Path) -> dict:  # fmt: skip
    mode = "reported" if cfg.report_only_contamination else "dropped"
    pairs = [{"train": st["source"], "eval": label, "image": n["image"], "text": n["text"],
              "kept": cfg.report_only_contamination or st["allow_contamination"]}
             for st in per_source for label, n in st["contaminated_by"].items()]  # fmt: skip
    trained_on = [{"source": st["source"], "split": spec.split, "kept_contaminated": st["kept_contaminated"],
                   "overlaps": st["contaminated_by"], "note": st["note"]}
                  for st, spec in zip(per_source, cfg.sources) if st["allow_contamination"] and st["contaminated"]]  # fmt: skip
    written = sum(st["selected"] for st in per_source)
    return {
        "written": written,
        "shards": [p.name for p in shards],
        "seed": cfg.seed,
        "stage": cfg.stage,
        "expected_records": cfg.expected_records,
        "sources": per_source,
        "duplicates": sum(st["duplicates"] for st in per_source),
        "contamination": {
            "mode": mode,
            "ngram": cfg.ngram,
            "eval_files": [e.label for e in cfg.decontaminate_against],
            "eval_sets": [{"eval": label, **n} for label, n in zip(evals.labels, evals.counts)],
            "pairs": pairs,
            "trained_on_evaluation_data": trained_on,
            **contamination,
        },
        "config": {k: v for k, v in asdict(cfg).items() if k not in ("sources", "decontaminate_against")}
        | {"sources": [asdict(s) for s in cfg.sources], "decontaminate_against": [asdict(e) for e in cfg.decontaminate_against]},
        "out_dir": str(out),
    }
