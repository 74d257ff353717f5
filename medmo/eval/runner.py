"""The evaluation runner: benchmarks x one model -> cached predictions -> scores -> a results file.

Per benchmark: load the samples (:mod:`medmo.eval.data`), skip those already in the prediction cache
(:mod:`medmo.eval.cache`), generate the rest in length-sorted batches (each batch is written to the
cache before the next starts, so a killed run loses at most one batch), then score every sample with
the benchmark's declared metrics (:mod:`medmo.eval.scoring`) under the chosen preset.

A sample that cannot be generated (an unreadable image, a bad request) fails alone: its batch is retried
one sample at a time, the failing sample is recorded as failed (cache and results, scored by
:data:`medmo.eval.scoring.FAILED_RULE`) and the run goes on; a rerun resumes without retrying it unless
``retry_failed``. A backend that cannot answer at all (:class:`BackendError`) still stops the run.

``shard=(i, n)`` evaluates every n-th sample from the i-th (0-based) and writes a shard results file;
:func:`medmo.eval.merge.merge` joins the shards and scores once, so corpus metrics see the whole set.

The results file records every setting and version in its ``manifest`` (:mod:`medmo.eval.manifest`).
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Mapping, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from medmo import __version__
from medmo.answers import PARSER_VERSION
from medmo.data.images import ImageLoadError
from medmo.eval import scoring, tasks
from medmo.eval.backends.base import Backend, Request
from medmo.eval.backends.hf import HFBackend
from medmo.eval.cache import PredictionCache, cache_key, slug
from medmo.eval.data import data_root, load_samples
from medmo.eval.manifest import manifest
from medmo.eval.metrics.judge import apply_judge, judge_info
from medmo.eval.registry import Benchmark, resolve
from medmo.prompts import PROMPT_VERSION
from medmo.records import RECORD_VERSION, Sample

log = logging.getLogger("medmo.eval")
RESULTS_VERSION = "2"
SAMPLE_ERRORS = (ImageLoadError, OSError)  # what one sample can cause (an unreadable image): it fails alone
PRESETS = ("standard", "medevalkit")


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def as_backend(model_or_backend: Any, name: str | None = None) -> Backend:
    """A backend from a backend, a ``(model, processor)`` pair, or a model folder / hub id (hf)."""
    if hasattr(model_or_backend, "generate") and hasattr(model_or_backend, "info"):
        if name:
            model_or_backend.name = name
        return model_or_backend
    if isinstance(model_or_backend, (tuple, list)) and len(model_or_backend) == 2:
        return HFBackend(*model_or_backend, name=name or "model")
    if isinstance(model_or_backend, (str, Path)):
        backend = HFBackend.from_pretrained(str(model_or_backend))
        backend.name = name or backend.name
        return backend
    raise TypeError(
        "evaluate() takes a backend, a (model, processor) pair or a model path; "
        f"got {type(model_or_backend).__name__}"
    )


def _bench_list(benchmarks: str | Sequence[str | Benchmark]) -> list[Benchmark]:
    if isinstance(benchmarks, Benchmark):
        return [benchmarks]
    if isinstance(benchmarks, str):
        return resolve(benchmarks)
    out: list[Benchmark] = []
    for b in benchmarks:
        out += [b] if isinstance(b, Benchmark) else resolve(b)
    return out


def _chunks(items: list, size: int):
    for i in range(0, len(items), size):
        yield items[i : i + size]


def _generate(backend: Backend, reqs: list[Request], batch_size: int) -> list[str]:
    texts = backend.generate(reqs, batch_size=batch_size)
    if len(texts) != len(reqs):
        raise RuntimeError(f"backend {backend.name} returned {len(texts)} answers for {len(reqs)} prompts")
    return texts


def _one_by_one(backend: Backend, chunk: list[Sample], reqs: list[Request], cache: PredictionCache,
                batch_size: int) -> None:
    """After a failed batch: each sample alone; one that still fails is recorded as failed, never fatal."""
    for s, r in zip(chunk, reqs):
        try:
            cache.add([(s.id, _generate(backend, [r], batch_size)[0])])
        except SAMPLE_ERRORS as e:
            log.warning("sample %s failed: %s: %s", s.id, type(e).__name__, e)
            cache.add_failed([(s.id, f"{type(e).__name__}: {e}")])


def generate_missing(
    backend: Backend, bench: Benchmark, samples: list[Sample], cache: PredictionCache, batch_size: int,
    prompts: str = "ours",
) -> int:
    """Generate the samples not in ``cache``, longest prompts first, caching each batch; returns how many."""
    pending = [s for s in samples if s.id not in cache]
    # Length-sorted batches waste little on padding; longest first shows memory trouble at once.
    pending.sort(key=tasks.length_hint, reverse=True)
    step = max(int(batch_size), int(getattr(backend, "concurrency", 1)))
    done = 0
    for chunk in _chunks(pending, step):
        reqs: list[Request] = [tasks.to_request(s, bench, prompts) for s in chunk]
        try:
            cache.add(zip((s.id for s in chunk), _generate(backend, reqs, batch_size)))
        except SAMPLE_ERRORS as e:  # find the sample(s) to blame, keep the rest
            log.warning("%s: a batch failed (%s); retrying its samples one at a time", bench.name, e)
            _one_by_one(backend, chunk, reqs, cache, batch_size)
        done += len(chunk)
        log.info("%s: %d/%d generated", bench.name, done, len(pending))
    return done


def _write_predictions(path: Path, rows: list[dict[str, Any]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as f:
        for r in rows:
            f.write(json.dumps(r, ensure_ascii=False) + "\n")


def shard_of(samples: list[Sample], shard: tuple[int, int] | None) -> list[Sample]:
    """Every ``n``-th sample from the ``i``-th for ``shard=(i, n)`` (all samples for None)."""
    if shard is None:
        return samples
    i, n = shard
    if not (n >= 1 and 0 <= i < n):
        raise ValueError(f"shard must be I/N with 0 <= I < N, got {i}/{n}")
    return samples[i::n]


def run_benchmark(
    backend: Backend,
    bench: Benchmark,
    *,
    out_dir: Path,
    limit: int | None,
    batch_size: int,
    preset: str,
    data: Mapping[str, str | Path] | None,
    judge: Any = None,
    prompts: str = "ours",
    seed: int = 0,
    shard: tuple[int, int] | None = None,
    retry_failed: bool = False,
) -> dict[str, Any]:
    """Evaluate one benchmark; returns its entry of the results file."""
    started, t0 = _now(), time.perf_counter()
    bench = bench.for_preset(preset)  # the data a preset reads (MedEvalKit: PMC-VQA's test_2.csv)
    samples = load_samples(bench, data, limit)
    if not samples:
        raise ValueError(f"{bench.name}: no samples after filters {bench.dataset.get('filters')}; check the data folder")
    samples = shard_of(samples, shard)
    key = cache_key(bench.version, tasks.prompt_version(bench, prompts), bench.generation,
                    getattr(backend, "fingerprint", None))
    cache = PredictionCache(out_dir / "cache", backend.name, bench.name, key)
    if retry_failed:
        cache.forget_failures()
    n_cached = sum(s.id in cache for s in samples)
    t_gen = time.perf_counter()
    n_gen = generate_missing(backend, bench, samples, cache, batch_size, prompts)
    gen_s = time.perf_counter() - t_gen
    preds = [cache.get(s.id) or "" for s in samples]
    failed = {s.id: cache.failures[s.id] for s in samples if s.id in cache.failures}
    if samples:
        entry = score_entry(bench, samples, preds, preset=preset, failed=failed, seed=seed, judge=judge)
    else:  # a shard past the end of a small benchmark
        entry = {"benchmark": bench.to_dict(), "n": 0, "metrics": {}, "headline": list(bench.headline),
                 "preset": preset, "rows": []}
    suffix = f".shard-{shard[0]}-of-{shard[1]}" if shard else ""
    pred_file = out_dir / "predictions" / slug(backend.name) / f"{bench.name}{suffix}.jsonl"
    _write_predictions(pred_file, entry.pop("rows"))
    return {
        **entry,
        "n_cached": n_cached,
        "n_generated": n_gen,
        "prompts": prompts,
        "prompt_version": tasks.prompt_version(bench, prompts),
        "limit": limit,
        "shard": f"{shard[0]}/{shard[1]}" if shard else None,
        "predictions_file": str(pred_file),
        "started": started,
        "finished": _now(),
        "seconds": round(time.perf_counter() - t0, 3),
        "generation_samples_per_s": round(n_gen / gen_s, 3) if n_gen and gen_s > 0 else None,
    }


def score_entry(bench: Benchmark, samples: list[Sample], preds: list[str], *, preset: str,
                failed: dict[str, str] | None = None, seed: int = 0, judge: Any = None) -> dict[str, Any]:
    """A benchmark's results entry (with its per-sample ``rows``) from predictions: the one scoring path."""
    scored = scoring.score(bench, samples, preds, preset=preset, failed=failed, seed=seed)
    entry: dict[str, Any] = {"judge": None}
    if judge is not None:
        entry["judge"] = apply_judge(judge, bench, samples, scored, preset=preset)
    return {
        "benchmark": bench.to_dict(),
        "n": len(samples),
        "metrics": scored.metrics,
        "ci": scored.ci,
        "breakdown": scored.breakdown,
        "headline": list(bench.headline),
        "metric_versions": scored.versions,
        "notes": scored.notes,
        "deviations": scored.deviations,
        "failed": [{"id": k, "error": v} for k, v in (failed or {}).items()],
        "preset": preset,
        **entry,
        "rows": scored.rows,
    }


def _versions() -> dict[str, str]:
    return {
        "medmo": __version__,
        "results": RESULTS_VERSION,
        "prompt": PROMPT_VERSION,
        "parser": PARSER_VERSION,
        "record": RECORD_VERSION,
    }


def results_path(out_dir: str | Path, model: str, preset: str, shard: tuple[int, int] | None = None) -> Path:
    suffix = f".shard-{shard[0]}-of-{shard[1]}" if shard else ""
    return Path(out_dir) / f"results-{slug(model)}-{preset}{suffix}.json"


def evaluate(
    model_or_backend: Any,
    benchmarks: str | Sequence[str | Benchmark],
    *,
    out_dir: str | Path,
    limit: int | None = None,
    batch_size: int = 8,
    preset: str = "standard",
    data: Mapping[str, str | Path] | None = None,
    judge: Any = None,
    model_name: str | None = None,
    prompts: str = "ours",
    seed: int = 0,
    shard: tuple[int, int] | None = None,
    retry_failed: bool = False,
) -> dict[str, Any]:
    """Evaluate a model on benchmarks; write predictions, a cache and ``results-<model>-<preset>.json``.

    Args:
        model_or_backend: a backend (:mod:`medmo.eval.backends`), a ``(model, processor)`` pair, or a
            model folder / hub id loaded with :func:`medmo.model.load`.
        benchmarks: names (``"vqa_rad,slake"``, a list, or a group such as ``"nano"``) or Benchmark objects.
        out_dir: folder for the results file, ``cache/`` and ``predictions/``. Reusing it resumes.
        limit: evaluate only the first ``limit`` samples of each benchmark (quick looks).
        batch_size: prompts per generation batch (also how often the cache is written).
        preset: VQA scoring preset, ``standard`` or ``medevalkit``.
        data: data folders by key (``{"vqa_rad": "/data/rad"}``); else ``MEDMO_DATA_<KEY>``.
        judge: an optional LLM judge (:class:`medmo.eval.metrics.judge.JudgeConfig`); None = rule-based.
        model_name: name for results and cache (default: the backend's own, e.g. the model folder's name).
        prompts: ``ours`` (MedMO's documented prompts), ``medevalkit`` or ``medevalkit_reasoning``.
        seed: seed of the bootstrap confidence intervals (MedEvalKit's MMMU guesses use its own 42).
        shard: ``(i, n)``: only every n-th sample from the i-th; join shards with ``medmo eval merge``.
        retry_failed: generate again the samples an earlier run recorded as failed.

    Returns:
        The results dict (also written to disk; its ``path`` key says where). Benchmarks from earlier
        runs of the same model and preset in ``out_dir`` are kept, the ones run now replaced.
    """
    if preset not in PRESETS:
        raise ValueError(f"unknown preset {preset!r}; use one of {', '.join(PRESETS)}")
    if limit is not None and limit < 1:
        raise ValueError(f"limit must be a positive number of samples, got {limit}")
    benches = _bench_list(benchmarks)
    if not benches:
        raise ValueError("no benchmark given; see `medmo eval list`")
    for bench in benches:  # every data folder is checked before a model is loaded or anything generated
        data_root(bench, data)
    backend = as_backend(model_or_backend, model_name)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    path = results_path(out, backend.name, preset, shard)
    info = backend.info()
    results = {
        "model": backend.name,
        "backend": info,
        "preset": preset,
        "prompts": prompts,
        "judge": judge_info(judge),
        "limit": limit,
        "batch_size": batch_size,
        "versions": _versions(),
        "manifest": manifest(info, preset=preset, prompts=prompts, judge=judge_info(judge), seed=seed,
                             shard=f"{shard[0]}/{shard[1]}" if shard else None),
        "started": _now(),
        "finished": None,
        "benchmarks": {},
    }
    for bench in benches:
        log.info("%s: evaluating %s", bench.name, backend.name)
        results["benchmarks"][bench.name] = run_benchmark(
            backend, bench, out_dir=out, limit=limit, batch_size=batch_size, preset=preset, data=data, judge=judge,
            prompts=prompts, seed=seed, shard=shard, retry_failed=retry_failed,
        )
        results["finished"] = _now()
        written = _merge_previous(path, results)  # after every benchmark: a later crash keeps this one
        tmp = path.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(written, indent=2, ensure_ascii=False, default=str), encoding="utf-8")
        tmp.replace(path)  # atomic: a kill mid-write never leaves a torn results file
    return {**written, "path": str(path)}


def _merge_previous(path: Path, new: dict[str, Any]) -> dict[str, Any]:
    """Keep benchmarks of an earlier results file for the same model and preset (new runs win)."""
    if not path.exists():
        return new
    try:
        old = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return new
    if old.get("model") != new["model"] or old.get("preset") != new["preset"] or old.get("prompts") != new.get("prompts"):
        return new
    merged = dict(old.get("benchmarks") or {})
    merged.update(new["benchmarks"])
    return {**new, "benchmarks": merged}


def load_results(path: str | Path) -> dict[str, Any]:
    """Read a results file, naming the file when it is not one."""
    p = Path(path)
    try:
        d = json.loads(p.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as e:
        raise ValueError(f"{p}: cannot read a results file ({e})") from None
    if not isinstance(d, dict) or "benchmarks" not in d or "model" not in d:
        raise ValueError(f"{p}: not a medmo results file (needs 'model' and 'benchmarks'); make one with `medmo eval run`")
    return d
