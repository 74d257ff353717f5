"""Reward functions for GRPO: box GIoU matching, accuracy, factuality, format, weights, TRL callables."""

from __future__ import annotations

import json
import math

import pytest

from medmo.gold import gold_for
from medmo.records import Box, ImageRef, Sample
from medmo.train import rewards as R

GOLD = [[100, 100, 300, 300]]


def test_box_reward_perfect_partial_and_missing():
    assert R.box_reward("lesion <box>[[100, 100, 300, 300]]</box>", GOLD) == pytest.approx(1.0)
    half = R.box_reward("lesion <box>[[100, 100, 200, 300]]</box>", GOLD)  # IoU 0.5, hull = gold
    assert half == pytest.approx((0.5 + 1) / 2)
    far = R.box_reward("<box>[[800, 800, 900, 900]]</box>", GOLD)
    assert 0 < far < 0.25  # GIoU still ranks a far miss above no answer
    assert R.box_reward("there is a lesion", GOLD) == 0.0
    assert R.box_reward("<box>[[garbage]]</box>", GOLD) == 0.0
    assert R.box_reward("", []) == 0.0


def test_box_reward_penalizes_extra_and_missing_boxes():
    two_gold = [[100, 100, 300, 300], [600, 600, 800, 800]]
    one = R.box_reward("<box>[[100, 100, 300, 300]]</box>", two_gold)
    both = R.box_reward("<box>[[100, 100, 300, 300], [600, 600, 800, 800]]</box>", two_gold)
    extra = R.box_reward("<box>[[100, 100, 300, 300], [600, 600, 800, 800], [0, 0, 50, 50]]</box>", two_gold)
    assert one == pytest.approx(0.5)
    assert both == pytest.approx(1.0)
    assert extra == pytest.approx(2 / 3)
    # order of predicted boxes does not matter (Hungarian matching)
    assert R.box_reward("<box>[[600, 600, 800, 800], [100, 100, 300, 300]]</box>", two_gold) == pytest.approx(1.0)
    # other syntaxes are read too; degenerate boxes score as the worst GIoU
    assert R.box_reward('[{"bbox_2d": [100, 100, 300, 300], "label": "x"}]', GOLD) == pytest.approx(1.0)
    assert R.box_reward("<box>[[300, 300, 100, 100]]</box>", GOLD) == 0.0


def test_accuracy_reward():
    assert R.accuracy_reward("closed_vqa", "Yes, there is.", "yes") == 1.0
    assert R.accuracy_reward("closed_vqa", "no", "yes") == 0.0
    assert R.accuracy_reward("closed_vqa", "maybe", "no") == 0.0
    opts = {"A": "CT", "B": "MRI", "C": "X-ray"}
    assert R.accuracy_reward("mcq", "B", "B", opts) == 1.0
    assert R.accuracy_reward("mcq", "The answer is (C).", "B", opts) == 0.0
    assert R.accuracy_reward("mcq", "<think>hmm A or B</think><answer>B</answer>", "B", opts) == 1.0
    assert R.accuracy_reward("open_vqa", "A nodule.", "nodule") == 1.0
    assert R.accuracy_reward("open_vqa", "nodule and mass", "nodule") == pytest.approx(0.5)  # P 1/3, R 1
    assert R.accuracy_reward("open_vqa", "cyst", "nodule") == 0.0
    assert R.token_f1("", "") == 1.0 and R.token_f1("x", "") == 0.0


def test_format_reward():
    assert R.format_reward("grounding", "lesion <box>[[1, 2, 30, 40]]</box>") == 1.0
    assert R.format_reward("grounding", "[1, 2, 30, 40]") == 0.0  # a box, but not the asked syntax
    assert R.format_reward("mcq", "C", options={"A": "x", "B": "y", "C": "z"}) == 1.0
    assert R.format_reward("mcq", "C because it is", options={"A": "x", "C": "z"}) == 0.0
    assert R.format_reward("mcq", "D", options={"A": "x", "B": "y"}) == 0.0
    assert R.format_reward("closed_vqa", "no") == 1.0
    assert R.format_reward("closed_vqa", "there is no lesion to be seen here") == 0.0
    assert R.format_reward("report", "Findings: clear.\nImpression: normal.") == 1.0
    assert R.format_reward("report", "clear") == 0.0
    think = "<think>look</think><answer>yes</answer>"
    assert R.format_reward("closed_vqa", think, think=True) == 1.0
    assert R.format_reward("closed_vqa", "yes", think=True) == 0.5
    assert R.format_reward("open_vqa", "") == 0.0


def _grounding_sample() -> Sample:
    return Sample(
        "s1", "grounding", "unit", "test", answer="nodule",
        boxes=[Box("nodule", [10, 20, 30, 40])], images=[ImageRef("a.png", 100, 200)],
    )  # fmt: skip


def test_gold_for_converts_boxes_to_the_grid():
    gold = gold_for(_grounding_sample())
    assert gold["boxes"] == [[100, 100, 300, 200]]
    assert gold["task"] == "grounding" and gold["answer"] == "nodule"
    json.dumps(gold)  # travels as JSON in dataset columns and verl parquet


def test_compute_rewards_applies_task_rewards_and_weights():
    gold = gold_for(_grounding_sample())
    out = R.compute_rewards("grounding", "nodule <box>[[100, 100, 300, 200]]</box>", gold, {"giou": 2.0, "format": 0.5})
    assert set(out) == {"box", "format", "total"}
    assert out["box"] == pytest.approx(1.0) and out["total"] == pytest.approx(2.5)
    closed = R.compute_rewards("closed_vqa", [{"role": "assistant", "content": "yes"}], {"answer": "yes"})
    assert closed["accuracy"] == 1.0 and "box" not in closed
    with pytest.raises(ValueError, match="unknown reward"):
        R.compute_rewards("closed_vqa", "yes", {"answer": "yes"}, {"bleu": 1.0})
    with pytest.raises(ValueError, match="no rewards defined"):
        R.compute_rewards("dance", "yes", {"answer": "yes"})


def test_trl_reward_funcs_follow_trl_signature_and_skip_other_tasks():
    funcs = R.trl_reward_funcs(["accuracy", "giou", "format"])
    assert [f.__name__ for f in funcs] == ["accuracy_reward", "box_reward", "format_reward"]
    golds = [json.dumps(gold_for(_grounding_sample())), json.dumps({"answer": "no", "task": "closed_vqa"})]
    completions = [[{"role": "assistant", "content": "<box>[[100, 100, 300, 200]]</box>"}], "No."]
    kwargs = {"task": ["grounding", "closed_vqa"], "gold": golds, "trainer_state": None}
    acc, box, fmt = (f(prompts=[None, None], completions=completions, **kwargs) for f in funcs)
    assert acc == [None, 1.0]
    assert box[0] == pytest.approx(1.0) and box[1] is None
    assert fmt == [1.0, 1.0]


def test_factuality_reward_uses_finding_f1():
    pytest.importorskip("medmo.findings")
    ref = "Findings: There is a nodule in the upper left. No mass. No cyst.\nImpression: Nodule."
    same = R.factuality_reward(ref, ref)
    wrong = R.factuality_reward("Findings: There is a mass. No nodule.\nImpression: Mass.", ref)
    assert same == pytest.approx(1.0)
    assert wrong < same and not math.isnan(wrong)
