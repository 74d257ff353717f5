"""``bench/serve_load_bench.py --quick`` runs against the real (tiny) model and reports no error, loss or duplicate."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[1] / "bench" / "serve_load_bench.py"


@pytest.mark.slow
def test_quick_load_bench_answers_every_request_once(tiny_model_dir):
    env = {**os.environ, "PYTHONPATH": str(BENCH.parents[1]) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    proc = subprocess.run([sys.executable, str(BENCH), "--quick", "--model", str(tiny_model_dir)], capture_output=True,
                          text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    lines = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
    assert [s["clients"] for s in lines] == [4, 8]
    for s in lines:
        assert s["answered"] == s["requests"] == 16 and s["errors"] == s["lost"] == s["duplicated"] == 0
        assert s["requests_per_s"] > 0 and 0 < s["p50_ms"] <= s["p99_ms"]
