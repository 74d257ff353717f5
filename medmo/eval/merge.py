"""``medmo eval merge``: join shard results (``medmo eval run --shard I/N``) into the one-process results.

Shard ``i`` of ``n`` holds samples ``i, i + n, i + 2n, ...`` of each benchmark; its predictions file keeps
every record and answer. Merging puts the rows back in dataset order and scores the whole set once through
:func:`medmo.eval.runner.score_entry`, so corpus metrics (CIDEr's document frequencies, MedEvalKit's
seeded MMMU guesses, bootstrap intervals) are computed over the merged set, never averaged per shard: the
merged file equals what one process writes, apart from timings.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from medmo.eval.registry import get
from medmo.eval.runner import _write_predictions, load_results, results_path, score_entry
from medmo.records import Sample


def _rows(path: str) -> list[dict[str, Any]]:
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def interleave(shards: Sequence[list[Any]]) -> list[Any]:
    """Rows of shards ``0..n-1`` back in dataset order (shard i holds items i, i + n, ...)."""
    out = []
    for k in range(max((len(s) for s in shards), default=0)):
        out += [s[k] for s in shards if k < len(s)]
    return out


def merge(paths: Sequence[str | Path], out_dir: str | Path | None = None) -> dict[str, Any]:
    """Merge shard results files of one model and preset; writes and returns the merged results."""
    shards = [load_results(p) for p in paths]
    keys = {(r["model"], r["preset"], r.get("prompts")) for r in shards}
    if len(keys) != 1:
        raise ValueError(f"shards disagree on model / preset / prompts: {sorted(map(str, keys))}")
    total = {int(str(r["manifest"]["shard"]).split("/")[1]) for r in shards if (r.get("manifest") or {}).get("shard")}
    seen = sorted(int(str(r["manifest"]["shard"]).split("/")[0]) for r in shards)
    if len(total) != 1 or seen != list(range(next(iter(total)))):
        raise ValueError(f"need every shard 0..N-1 exactly once; got {seen} of {sorted(total)}")
    shards.sort(key=lambda r: int(str(r["manifest"]["shard"]).split("/")[0]))
    first = shards[0]
    out = Path(out_dir) if out_dir else Path(paths[0]).parent
    merged = {k: v for k, v in first.items() if k not in ("benchmarks", "path")}
    merged["manifest"] = {**first["manifest"], "shard": None, "merged_from": [str(p) for p in paths]}
    merged["benchmarks"] = {}
    for name in first["benchmarks"]:
        entries = [r["benchmarks"][name] for r in shards]
        rows = interleave([_rows(e["predictions_file"]) for e in entries])
        samples = [Sample.from_dict(r["sample"]) for r in rows]
        failed = {r["id"]: r["failed"] for r in rows if r.get("failed")}
        entry = score_entry(get(name).for_preset(merged["preset"]), samples, [r.get("prediction") or "" for r in rows],
                            preset=merged["preset"], failed=failed, seed=int(merged["manifest"].get("seed") or 0))
        pred_file = Path(entries[0]["predictions_file"]).with_name(f"{name}.jsonl")
        _write_predictions(pred_file, entry.pop("rows"))
        keep = {k: entries[0].get(k) for k in ("prompts", "prompt_version", "limit")}
        merged["benchmarks"][name] = {**entry, **keep, "shard": None, "predictions_file": str(pred_file),
                                      "n_generated": sum(e.get("n_generated") or 0 for e in entries),
                                      "n_cached": sum(e.get("n_cached") or 0 for e in entries)}
    path = results_path(out, merged["model"], merged["preset"])
    path.write_text(json.dumps(merged, indent=2, ensure_ascii=False, default=str), encoding="utf-8")
    return {**merged, "path": str(path)}
