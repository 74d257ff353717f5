"""Throughput and peak memory of ``medmo.data.mixture.build_mixture`` at growing record counts.

Run:  .venv/bin/python bench/data_build_bench.py [--sizes 50000 200000] [--shard-size 10000]

For each size it writes a synthetic records JSONL (two sources; mixed tasks; 200 small shared PNG images,
so image hashing is cached as in real VQA sets with many questions per image), then runs
``build_mixture`` (weights, a cap, deduplication, decontamination against an evaluation file) in a fresh
subprocess and reports records/s and the child's peak resident memory (``ru_maxrss``). Memory should stay
flat as the record count grows: the build keeps at most about one shard of records in memory.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

N_IMAGES = 200

CHILD = r"""
import json, resource, sys, time
t0 = time.perf_counter()
from medmo.data.mixture import build_mixture
import pyarrow.parquet, yaml  # the build's own imports, so the baseline below includes them
base_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
cfg, out = json.loads(sys.argv[1]), sys.argv[2]
t1 = time.perf_counter()
report = build_mixture(cfg, out)
t2 = time.perf_counter()
rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps({"seconds": t2 - t1, "import_s": t1 - t0, "peak_rss_mb": rss_mb, "base_rss_mb": base_mb, "written": report["written"],
                  "read": sum(s["read"] for s in report["sources"]),
                  "duplicates": report["duplicates"], "contaminated": report["contamination"]["count"]}))
"""


def make_images(folder: Path) -> None:
    import numpy as np
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for i in range(N_IMAGES):
        Image.fromarray(rng.integers(0, 255, (32, 32), dtype=np.uint8)).save(folder / f"{i}.png")


def make_records(path: Path, n: int, source: str, dup_every: int = 50) -> None:
    """``n`` JSON lines of mixed tasks over the shared images; every ``dup_every``-th line repeats the previous one."""
    tasks = ("open_vqa", "closed_vqa", "mcq", "grounding", "caption")
    with open(path, "w", encoding="utf-8") as f:
        for i in range(n):
            k = i - 1 if i and i % dup_every == 0 else i
            task = tasks[k % len(tasks)]
            rec = {"id": f"{source}-{i}", "task": task, "source": source, "split": "train",
                   "question": f"{source} question {k} about the image?", "answer": f"answer {k % 97}",
                   "images": [{"path": f"images/{k % N_IMAGES}.png", "width": 32, "height": 32}],
                   "modality": "x-ray", "meta": {"n": k}}  # fmt: skip
            if task == "closed_vqa":
                rec["answer"] = "yes" if k % 2 else "no"
            elif task == "mcq":
                rec["options"], rec["answer"] = {"A": "one", "B": "two", "C": "three"}, "ABC"[k % 3]
            elif task == "grounding":
                rec["answer"], rec["boxes"] = "lesion", [{"label": "lesion", "box": [2, 3, 20 + k % 10, 25]}]
            f.write(json.dumps(rec) + "\n")


def run_size(root: Path, n: int, shard_size: int) -> dict:
    d = root / f"n{n}"
    d.mkdir()
    (d / "images").symlink_to(root / "images", target_is_directory=True)
    make_records(d / "a.jsonl", int(n * 0.75), "srcA")
    make_records(d / "b.jsonl", n - int(n * 0.75), "srcB")
    (d / "eval.jsonl").write_text(json.dumps({"id": "e0", "task": "open_vqa", "source": "ev", "split": "test",
                                              "answer": "x", "images": [{"path": "images/7.png"}]}) + "\n")  # fmt: skip
    cfg = {"seed": 0, "shard_size": shard_size, "decontaminate_against": [str(d / "eval.jsonl")],
           "sources": [{"records": str(d / "a.jsonl")}, {"records": str(d / "b.jsonl"), "weight": 1.5}]}  # fmt: skip
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[1]))
    t = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", CHILD, json.dumps(cfg), str(d / "out")], env=env,
                          capture_output=True, text=True, check=True)  # fmt: skip
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    result.update(n=n, wall_s=time.perf_counter() - t, records_per_s=result["read"] / result["seconds"])
    return result


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[50_000, 200_000])
    ap.add_argument("--shard-size", type=int, default=10_000)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="medmo-bench-") as tmp:
        root = Path(tmp)
        make_images(root / "images")
        rows = []
        for n in args.sizes:
            r = run_size(root, n, args.shard_size)
            rows.append(r)
            print(f"n={n:>8,d}  read={r['read']:>8,d}  written={r['written']:>8,d}  dup={r['duplicates']:>6,d}  "
                  f"contaminated={r['contaminated']:>6,d}  build={r['seconds']:6.1f}s  "
                  f"{r['records_per_s']:>8,.0f} records/s  peak RSS={r['peak_rss_mb']:6.1f} MB "
                  f"(after imports {r['base_rss_mb']:.1f} MB)", flush=True)  # fmt: skip
    if len(rows) > 1:
        growth = rows[-1]["peak_rss_mb"] - rows[0]["peak_rss_mb"]
        ratio = rows[-1]["n"] / rows[0]["n"]
        print(f"peak RSS change from {rows[0]['n']:,} to {rows[-1]['n']:,} records ({ratio:.0f}x): {growth:+.1f} MB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
