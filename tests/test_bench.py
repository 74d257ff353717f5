"""Every bench script runs: its --quick mode (tiny sizes, seconds) finishes and prints its figures."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BENCH = sorted((ROOT / "bench").glob("*.py"))
COVERED = {"serve_load_bench.py": "tests/test_serve_bench.py checks its figures too"}


def test_every_bench_has_a_quick_mode():
    assert BENCH and all("--quick" in p.read_text() for p in BENCH), [p.name for p in BENCH if "--quick" not in p.read_text()]


@pytest.mark.slow
@pytest.mark.parametrize("script", [p for p in BENCH if p.name not in COVERED], ids=lambda p: p.name)
def test_bench_quick_mode_runs(script, tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "2", "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    done = subprocess.run([sys.executable, str(script), "--quick"], capture_output=True, text=True, timeout=600,
                          cwd=tmp_path, env=env)  # fmt: skip
    assert done.returncode == 0, done.stdout[-1500:] + done.stderr[-3000:]
    assert any(ch.isdigit() for ch in done.stdout), done.stdout  # it printed its figures
