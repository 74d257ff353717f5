"""Throughput and peak memory of ``medmo data build``: with 1 and 2 workers, and at growing record counts.

Run:  .venv/bin/python bench/data_build_bench.py [--frames 400] [--workers 1 2] [--scale 50000 200000]

1. **Workers** (the default section): a Cell Tracking Challenge dataset in its published layout (16-bit
   ``tNNN.tif`` frames and ``man_segNNN.tif`` instance masks, ``--frames`` of them, 512 x 512 with about 60
   cells each) is built into a mixture with the ``ctc`` loader, once per worker count, each in a fresh
   subprocess and a fresh output folder (no hash cache). Per record the work is the real one of such a
   build: decode the mask, find the cells' boxes, read the frame's header, hash both files, check the
   evaluation index; it is what ``--workers`` spreads over processes. Prints records/s, the speed-up over
   one worker (target >= 1.7x on 2 cores), that the outputs are identical, peak memory (the main
   process and the largest worker, ``ru_maxrss``), CPU seconds, and the machine's ceiling: how much faster
   the same number of processes of pure arithmetic run than one, measured before and after (on a shared
   machine other jobs take cores, and no build can beat that ceiling).
2. **Scale** (``--scale N ...``): a records JSONL of N records over 200 shared small images, built with one
   worker; peak memory should stay flat as N grows (the build keeps about one shard of records in memory).
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
ROOT = Path(__file__).resolve().parents[1]

CHILD = r"""
import json, resource, sys, time
import pyarrow.parquet, pandas, yaml, numpy, tifffile, scipy.ndimage  # the build's own imports, loaded before timing
import medmo.data.sources.ctc  # (forked workers inherit them: the timing is of the work, not of imports)
base_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
import medmo.data.mixture as mixture
cfg, out, workers = json.loads(sys.argv[1]), sys.argv[2], int(sys.argv[3])
scan_s, run_scans = [0.0], mixture._run_scans
def timed_scans(*a, **k):  # the parallel pass (read, convert, hash, check), timed apart from the serial rest
    t0 = time.perf_counter()
    run_scans(*a, **k)
    scan_s[0] += time.perf_counter() - t0
mixture._run_scans = timed_scans
cpu0 = sum(u.ru_utime + u.ru_stime for u in map(resource.getrusage, (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN)))
t = time.perf_counter()
report = mixture.build_mixture(cfg, out, workers=workers)
seconds = time.perf_counter() - t
cpu = [resource.getrusage(w) for w in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN)]
print(json.dumps({"seconds": seconds, "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                  "worker_peak_rss_mb": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024,
                  "base_rss_mb": base_mb, "written": report["written"],
                  "cpu_s": sum(u.ru_utime + u.ru_stime for u in cpu) - cpu0, "scan_s": scan_s[0],
                  "read": sum(s["read"] for s in report["sources"]), "duplicates": report["duplicates"],
                  "contaminated": report["contamination"]["count"]}))
"""


def make_ctc(root: Path, frames: int, size: int = 512, cells: int = 60) -> Path:
    """A CTC dataset: ``frames`` frames split over sequences 01 and 02, each with a gold instance mask."""
    import numpy as np
    import tifffile

    rng = np.random.default_rng(0)
    ds = root / "Fluo-N2DH-BENCH"
    for t in range(frames):
        seq = "01" if t % 2 == 0 else "02"
        frame = rng.integers(0, 4096, (size, size), dtype=np.uint16)
        mask = np.zeros((size, size), np.uint16)
        for c in range(cells):
            y, x = rng.integers(0, size - 24, 2)
            h, w = rng.integers(6, 24, 2)
            mask[y : y + h, x : x + w] = c + 1
        for path, arr in ((ds / seq / f"t{t:03d}.tif", frame), (ds / f"{seq}_GT" / "SEG" / f"man_seg{t:03d}.tif", mask)):
            path.parent.mkdir(parents=True, exist_ok=True)
            tifffile.imwrite(path, arr)
    return ds


def _spin(n: int) -> int:
    s = 0
    for i in range(n):
        s += i * i
    return s


def cpu_ceiling(workers: int, n: int = 8_000_000) -> float:
    """Speed-up this machine gives ``workers`` processes of pure Python arithmetic now (the best any build gets)."""
    import multiprocessing

    t = time.perf_counter()
    for _ in range(workers):
        _spin(n)
    serial = time.perf_counter() - t
    with multiprocessing.get_context("fork").Pool(workers) as pool:
        t = time.perf_counter()
        pool.map(_spin, [n] * workers)
        parallel = time.perf_counter() - t
    return serial / parallel


def run_child(cfg: dict, out: Path, workers: int) -> dict:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    proc = subprocess.run([sys.executable, "-c", CHILD, json.dumps(cfg), str(out), str(workers)], env=env,
                          capture_output=True, text=True, check=True)  # fmt: skip
    r = json.loads(proc.stdout.strip().splitlines()[-1])
    r["records_per_s"] = r["read"] / r["seconds"]
    return r


def workers_section(tmp: Path, frames: int, worker_counts: list[int]) -> None:
    t = time.perf_counter()
    ds = make_ctc(tmp / "ctc", frames)
    print(f"workload: CTC layout, {frames} frames of 512 x 512 (16-bit TIFF + instance mask, ~60 cells), "
          f"written in {time.perf_counter() - t:.1f}s; {os.cpu_count()} CPUs")  # fmt: skip
    cfg = {"seed": 0, "shard_size": 1000,
           "sources": [{"name": "ctc", "root": str(ds), "split": None, "options": {"style": "medmo-sft"}}]}  # fmt: skip
    results = {}
    top = max(worker_counts)
    before = cpu_ceiling(top) if top > 1 else 1.0
    for w in worker_counts:
        out = tmp / f"out-w{w}"
        r = results[w] = run_child(cfg, out, w)
        speed = f"  {r['records_per_s'] / results[worker_counts[0]]['records_per_s']:.2f}x" if w != worker_counts[0] else ""
        print(f"workers={w}: {r['read']} records in {r['seconds']:.1f}s = {r['records_per_s']:.1f} records/s{speed}  "
              f"peak RSS main {r['peak_rss_mb']:.0f} MB, largest worker {r['worker_peak_rss_mb']:.0f} MB "
              f"(after imports {r['base_rss_mb']:.0f} MB); build CPU {r['cpu_s']:.1f}s", flush=True)  # fmt: skip
    import pyarrow.parquet as pq

    tables = [pq.read_table(sorted((tmp / f"out-w{w}").glob("*.parquet"))).to_pylist() for w in worker_counts]
    print(f"identical output across worker counts: {all(t == tables[0] for t in tables)}")
    one = results[worker_counts[0]]
    serial = one["seconds"] - one["scan_s"]
    for w in worker_counts[1:]:
        bound = one["seconds"] / (serial + one["scan_s"] / w)
        print(f"workers={w} on {w} free cores (Amdahl, from the 1-worker run: parallel scan {one['scan_s']:.1f}s, "
              f"serial rest {serial:.1f}s): at most {bound:.2f}x")  # fmt: skip
    if top > 1:
        after = cpu_ceiling(top)
        print(f"machine ceiling: {top} processes of pure arithmetic ran {before:.2f}x / {after:.2f}x faster than one "
              f"(before / after); load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")  # fmt: skip


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


def scale_section(tmp: Path, sizes: list[int]) -> None:
    import numpy as np
    from PIL import Image

    (tmp / "images").mkdir(parents=True)
    rng = np.random.default_rng(0)
    for i in range(N_IMAGES):
        Image.fromarray(rng.integers(0, 255, (32, 32), dtype=np.uint8)).save(tmp / "images" / f"{i}.png")
    rows = []
    for n in sizes:
        d = tmp / f"n{n}"
        d.mkdir()
        (d / "images").symlink_to(tmp / "images", target_is_directory=True)
        make_records(d / "a.jsonl", int(n * 0.75), "srcA")
        make_records(d / "b.jsonl", n - int(n * 0.75), "srcB")
        (d / "eval.jsonl").write_text(json.dumps({"id": "e0", "task": "open_vqa", "source": "ev", "split": "test",
                                                  "answer": "x", "images": [{"path": "images/7.png"}]}) + "\n")  # fmt: skip
        cfg = {"seed": 0, "shard_size": 10000, "decontaminate_against": [str(d / "eval.jsonl")],
               "sources": [{"records": str(d / "a.jsonl")}, {"records": str(d / "b.jsonl"), "weight": 1.5}]}  # fmt: skip
        r = run_child(cfg, d / "out", 1)
        rows.append((n, r))
        print(f"n={n:>8,d}  read={r['read']:>8,d}  written={r['written']:>8,d}  build={r['seconds']:6.1f}s  "
              f"{r['records_per_s']:>8,.0f} records/s  peak RSS={r['peak_rss_mb']:6.1f} MB", flush=True)  # fmt: skip
    if len(rows) > 1:
        growth = rows[-1][1]["peak_rss_mb"] - rows[0][1]["peak_rss_mb"]
        print(f"peak RSS change from {rows[0][0]:,} to {rows[-1][0]:,} records: {growth:+.1f} MB")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=400, help="CTC frames of the workers section (default 400)")
    ap.add_argument("--workers", type=int, nargs="+", default=[1, 2], help="worker counts to compare (default 1 2)")
    ap.add_argument("--scale", type=int, nargs="*", default=[], help="also run the memory section at these sizes")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="medmo-bench-") as tmp:
        workers_section(Path(tmp), args.frames, args.workers)
        if args.scale:
            scale_section(Path(tmp) / "scale", args.scale)
    return 0


if __name__ == "__main__":
    sys.exit(main())
