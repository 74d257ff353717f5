"""The main job's pipeline, shortened: `medmo speedrun --quick` runs every stage and writes the report."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from medmo.records import Box, ImageRef, Sample
from medmo.speedrun import STAGES, SpeedrunConfig, stage_data
from medmo.speedrun_report import breakdown


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
    assert "By question type and findings count" in report and "mcq: modality" in report
    headroom = json.loads((run / "stages" / "eval.json").read_text())["headroom"]
    assert set(headroom) == {"sft", "grpo"} and headroom["sft"]["prompts"] == 4
    assert "What GRPO had to learn from" in report and "| after GRPO |" in report
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


def test_breakdown_splits_accuracy_by_question_type_and_iou_by_findings(tmp_path):
    from medmo.data.io import write_jsonl

    img, opts = [ImageRef("a.png", 128, 128)], {"A": "CT", "B": "MRI", "C": "X-ray"}

    def mcq(sid: str, kind: str) -> Sample:
        return Sample(sid, "mcq", "nano_synth", "test", images=img, question="Which?", options=opts, answer="A",
                      meta={"question_type": kind})

    recs = [
        mcq("q1", "modality"), mcq("q2", "modality"), mcq("q3", "quadrant"),
        Sample("g1", "grounding", "nano_synth", "test", images=img, answer="mass", boxes=[Box("mass", [0, 0, 9, 9])],
               meta={"findings": [["mass", 0, 0, 9, 9], ["nodule", 50, 50, 60, 60]]}),
    ]
    write_jsonl(recs, tmp_path / "test.jsonl")
    mcq = tmp_path / "mcq.jsonl"
    mcq.write_text("\n".join(json.dumps({"id": i, "correct": c}) for i, c in (("q1", 1.0), ("q2", 0.0), ("q3", 1.0))))
    ground = tmp_path / "ground.jsonl"
    ground.write_text(json.dumps({"id": "g1", "iou_matched": 0.25}))
    results = {"sft": {"benchmarks": {"nano_mcq": {"predictions_file": str(mcq)},
                                      "nano_grounding": {"predictions_file": str(ground)}}}}
    cols, table = breakdown(results, tmp_path / "test.jsonl")
    assert table["sft"]["mcq: modality"] == "50.0 (2)"
    assert table["sft"]["mcq: quadrant"] == "100.0 (1)"
    assert table["sft"]["grounding IoU, 2 findings"] == "25.0 (1)"
    assert set(cols) == {"mcq: modality", "mcq: quadrant", "grounding IoU, 2 findings"}


def test_data_stage_repeats_records_from_a_relative_run_folder(tmp_path, monkeypatch):
    # `make demo` writes under the relative folder runs/: the repeated grounding and caption records
    # must still find their images (they once resolved against the wrong folder and were all dropped).
    monkeypatch.chdir(tmp_path)
    stage_data(SpeedrunConfig.quick(out="runs", n_train=12, n_val=2, n_test=2))
    report = json.loads((tmp_path / "runs" / "nano" / "data" / "sft" / "mixture_report.json").read_text())
    assert [src["skipped"] for src in report["sources"]] == [0, 0, 0]
    base, grounding, caption = (src["selected"] for src in report["sources"])
    assert grounding > 0 and caption == 2 * 12 and report["written"] == base + grounding + caption


def test_settings_override_config_fields_with_their_types():
    from medmo.speedrun import parse_settings

    got = parse_settings(["grpo_steps=150", "grpo_batch=16", "caption_weight=2.5", "eval_limit=none"])
    assert got == {"grpo_steps": 150, "grpo_batch": 16, "caption_weight": 2.5, "eval_limit": None}
    assert SpeedrunConfig.quick(**got).grpo_batch == 16
    for bad, why in (("grpo_step=1", "KEY one of"), ("grpo_steps", "KEY one of"), ("sft_steps=1.5", "takes int"),
                     ("name=x", "KEY one of")):
        with pytest.raises(ValueError, match=why):
            parse_settings([bad])


def test_grpo_stage_gets_the_configured_prompts_per_step(tmp_path, monkeypatch):
    import medmo.train.grpo as grpo_mod
    from medmo.speedrun import stage_grpo

    seen = {}

    def fake_run(recipe):
        seen["recipe"] = recipe
        return tmp_path

    monkeypatch.setattr(grpo_mod, "run", fake_run)
    stage_grpo(SpeedrunConfig.quick(out=str(tmp_path), grpo_batch=16, grpo_steps=7))
    recipe = seen["recipe"]
    assert recipe.batch_size == 16 and recipe.max_steps == 7 and recipe.stage == "grpo"
    assert recipe.data.tasks == ["grounding"]
