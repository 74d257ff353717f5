"""The main job's pipeline, shortened: `medmo speedrun --quick` runs every stage and writes the report."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from medmo.speedrun import STAGES, SpeedrunConfig


@pytest.mark.slow
def test_quick_speedrun_writes_the_report(tmp_path):
    cmd = [sys.executable, "-m", "medmo.cli", "speedrun", "--quick", "--out", str(tmp_path), "--name", "ci"]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    run = tmp_path / "ci"
    for stage in STAGES:
        marker = json.loads((run / "stages" / f"{stage}.json").read_text())
        assert marker["seconds"] > 0 and marker["peak_rss_mb"] > 0, stage
    for stage in ("align", "sft", "grpo"):
        assert (run / stage / "config.json").is_file(), f"{stage} saved no loadable model"
    report = (run / "report.md").read_text()
    for row in ("trivial baseline", "after alignment", "after instruction tuning", "after GRPO"):
        assert row in report
    assert "nano grounding" in report and "peak RSS" in report
    assert (run / "report" / "curves.png").stat().st_size > 1000
    page = (run / "report.html").read_text()
    assert "<table>" in page and "data:image/png;base64," in page

    # A second run resumes: every stage is already done, nothing is recomputed.
    again = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0
    assert again.stdout.count("done earlier, skipping") == len(STAGES)


def test_quick_config_is_smaller_than_the_demo():
    quick, full = SpeedrunConfig.quick(), SpeedrunConfig()
    assert quick.sft_steps < full.sft_steps and quick.n_train < full.n_train
    assert quick.run_dir.name == "nano"
