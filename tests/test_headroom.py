"""Sampling headroom (greedy vs sampled vs best-of-k reward) and the report section built on it."""

from __future__ import annotations

import json

import pytest

from medmo.pages import to_markdown
from medmo.records import Box, ImageRef, Sample
from medmo.speedrun_report import _results, grpo_diagnosis
from medmo.train import headroom as hr
from medmo.train.rewards import box_reward


def test_group_stats_from_per_prompt_rewards():
    out = hr.group_stats([0.5, 1.0], [[0.2, 0.6], [1.0, 1.0]])
    assert out["prompts"] == 2 and out["k"] == 2
    assert out["greedy"] == pytest.approx(0.75)
    assert out["sample_mean"] == pytest.approx(0.7)
    assert out["best_of_k"] == pytest.approx(0.8)
    assert out["group_std"] == pytest.approx(0.1)
    assert out["zero_spread"] == pytest.approx(0.5)  # the second group teaches GRPO nothing


@pytest.mark.parametrize("greedy,samples", [([], []), ([0.1], []), ([0.1], [[]])])
def test_group_stats_refuses_missing_rewards(greedy, samples):
    with pytest.raises(ValueError, match="one greedy reward"):
        hr.group_stats(greedy, samples)


def _grounding(tmp_path, sid: str, box: list[float]) -> Sample:
    from PIL import Image

    path = tmp_path / f"{sid}.png"
    Image.new("RGB", (100, 100), (90, 90, 90)).save(path)
    return Sample(sid, "grounding", "nano_synth", "test", images=[ImageRef(str(path), 100, 100)], answer="mass",
                  boxes=[Box("mass", box)])


def test_headroom_scores_greedy_and_sampled_answers_per_task(tmp_path, monkeypatch):
    # Scripted generations: greedy hits the gold box on one prompt of two; of the samples, the second
    # draw hits it on both prompts. Rewards come from the real box reward.
    recs = [_grounding(tmp_path, "a", [10, 10, 50, 50]), _grounding(tmp_path, "b", [40, 40, 90, 90])]
    recs.append(Sample("c", "closed_vqa", "nano_synth", "test", images=recs[0].images, question="Mass?", answer="yes"))
    hit = {"a": "<box>(100,100),(500,500)</box>", "b": "<box>(400,400),(900,900)</box>", "c": "yes"}
    miss = {"a": "<box>(600,600),(900,900)</box>", "b": "<box>(0,0),(100,100)</box>", "c": "no"}
    calls = []

    def fake_generate(model, processor, convs, images, do_sample=False, **kw):
        calls.append(do_sample)
        draw = len(calls) - 1  # 0: greedy, 1..k: samples
        pick = [hit if (draw == 0 and r.id == "a") or draw == 2 else miss for r in recs]
        return [p[r.id] for p, r in zip(pick, recs)]

    monkeypatch.setattr(hr, "generate", fake_generate)
    out = hr.headroom((_Net(), object()), recs, k=3, temperature=0.7)
    assert calls == [False, True, True, True]
    a_miss, b_miss = box_reward(miss["a"], [[100, 100, 500, 500]]), box_reward(miss["b"], [[400, 400, 900, 900]])
    assert 0 < b_miss < a_miss < 0.5  # GIoU still ranks misses by distance
    g, c = out["grounding"], out["closed_vqa"]
    assert g["prompts"] == 2 and g["k"] == 3
    assert g["greedy"] == pytest.approx((1.0 + b_miss) / 2)  # a hit, b missed
    assert g["sample_mean"] == pytest.approx(((2 * a_miss + 1) / 3 + (2 * b_miss + 1) / 3) / 2)
    assert g["best_of_k"] == pytest.approx(1.0) and g["zero_spread"] == 0.0
    assert c["greedy"] == 0.0 and c["best_of_k"] == 1.0 and c["sample_mean"] == pytest.approx(1 / 3)


class _Net:
    def eval(self):
        return self


def test_headroom_runs_a_real_checkpoint(tiny_model_dir, tmp_path):
    recs = [_grounding(tmp_path, "a", [10, 10, 50, 50])]
    out = hr.headroom(str(tiny_model_dir), recs, k=2, temperature=1.0, max_new_tokens=4)
    g = out["grounding"]
    assert g["prompts"] == 1 and g["k"] == 2
    assert 0.0 <= g["sample_mean"] <= g["best_of_k"] <= 1.0


def test_headroom_refuses_bad_arguments(tmp_path):
    with pytest.raises(ValueError, match="no record with a reward"):
        hr.headroom((_Net(), object()), [], k=2)
    with pytest.raises(ValueError, match="k must be"):
        hr.headroom((_Net(), object()), [_grounding(tmp_path, "a", [1, 1, 5, 5])], k=0)


def test_grpo_diagnosis_sets_the_iou_change_beside_the_headroom(tmp_path):
    stats = {"prompts": 10, "k": 4, "greedy": 0.7, "sample_mean": 0.65, "best_of_k": 0.78, "group_std": 0.06,
             "zero_spread": 0.1}
    after = {**stats, "sample_mean": 0.69}
    metrics = [{"step": i, "reward/box": 0.7 + 0.01 * i, "entropy": 0.4 - 0.01 * i} for i in range(10)]
    blocks = grpo_diagnosis({"sft": stats, "grpo": after}, metrics, {"sft": 0.55, "grpo": 0.56}, 1600)
    text = to_markdown(blocks, tmp_path)
    assert "55.00 after instruction tuning, 56.00 after GRPO (+1.00), from 1,600 sampled completions" in text
    assert "| after instruction tuning | 0.700 | 0.650 | 0.780 | 0.060 | 10% |" in text
    assert "| after GRPO | 0.700 | 0.690 |" in text
    assert "0.705 -> 0.785" in text and "0.395 -> 0.315" in text  # first vs last fifth (2 steps each)
    assert grpo_diagnosis({}, [], {}, 0) == []


def test_report_finds_eval_results_from_another_working_directory(tmp_path, monkeypatch):
    # The eval stage records paths relative to the directory the speedrun ran in.
    run = tmp_path / "clone" / "runs" / "nano"
    (run / "stages").mkdir(parents=True)
    (run / "eval" / "predictions" / "m").mkdir(parents=True)
    (run / "eval" / "predictions" / "m" / "g.jsonl").write_text("{}\n")
    res = {"model": "nano-sft",
           "benchmarks": {"nano_grounding": {"predictions_file": "runs/nano/eval/predictions/m/g.jsonl"}}}
    (run / "eval" / "results-nano-sft-standard.json").write_text(json.dumps(res))
    monkeypatch.chdir(tmp_path)
    found = _results(run)
    assert list(found) == ["sft"]
    pred = found["sft"]["benchmarks"]["nano_grounding"]["predictions_file"]
    assert pred == str(run / "eval" / "predictions" / "m" / "g.jsonl")
