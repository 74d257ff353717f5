"""VQA presets: ``standard`` (medmo.answers based) and ``medevalkit`` (MedEvalKit's judging rules)."""

from __future__ import annotations

import pytest

from medmo.eval.metrics import medevalkit as mek
from medmo.eval.metrics.vqa import gold_letter, infer_kind, preset_version, score_standard, token_scores, vqa

OPTS = {"A": "Pneumonia", "B": "Pleural effusion", "C": "Pneumothorax", "D": "Viral pneumonia"}


@pytest.mark.parametrize(
    "pred,gold,options,kind,correct",
    [
        ("Yes, there is a pleural effusion.", "yes", None, "closed", 1.0),
        ("No.", "yes", None, "closed", 0.0),
        ("<think>looks clear</think><answer>No</answer>", "no", None, "closed", 1.0),
        ("It is normal.", "no", None, "closed", 0.0),  # no yes/no said: wrong
        ("Left lung", "left", None, "closed", 0.0),  # normalized exact match for non yes/no closed golds
        ("The Left.", "left", None, "closed", 1.0),
        ("The answer is C.", "C", OPTS, "mcq", 1.0),
        ("Pneumothorax", "C", OPTS, "mcq", 1.0),
        ("I am not sure.", "C", OPTS, "mcq", 0.0),  # nothing extractable counts as wrong
        ("B", "Pleural effusion", OPTS, "mcq", 1.0),  # gold given as option text
    ],
)
def test_standard_closed_and_mcq(pred, gold, options, kind, correct):
    row = score_standard(pred, gold, options, kind)
    assert row["kind"] == kind and row["correct"] == correct


def test_standard_open_token_scores():
    row = score_standard("A right lower lobe pneumonia", "right lower lobe", None, "open")
    assert row["recall"] == 1.0
    assert row["precision"] == pytest.approx(3 / 4)
    assert row["f1"] == pytest.approx(2 * 0.75 / 1.75)
    assert row["correct"] == 0.0 and row["em"] == 0.0
    assert token_scores("the Liver.", "liver")["em"] == 1.0
    assert token_scores("", "")["f1"] == 1.0  # SQuAD convention: both empty agree
    assert token_scores("", "liver") == {"em": 0.0, "recall": 0.0, "precision": 0.0, "f1": 0.0}


def test_kind_inference_and_gold_letter():
    assert infer_kind("Yes") == "closed"
    assert infer_kind("liver") == "open"
    assert infer_kind("A", {"A": "x"}) == "mcq"
    assert gold_letter("(b)", OPTS) == "B"
    assert gold_letter("viral pneumonia", OPTS) == "D"
    assert gold_letter("edema", OPTS) is None


def test_vqa_aggregates_per_kind():
    res = vqa(
        ["yes", "no", "right lobe", "C"],
        ["yes", "yes", "right lower lobe", "C"],
        options=[None, None, None, OPTS],
    )
    agg = res["aggregate"]
    assert agg["closed_acc"] == 0.5 and agg["closed_n"] == 2
    assert agg["open_recall"] == pytest.approx(2 / 3)
    assert agg["mcq_acc"] == 1.0
    assert agg["overall_acc"] == pytest.approx(2 / 4)
    assert res["version"] == preset_version("standard")
    with pytest.raises(ValueError, match="preset"):
        vqa(["a"], ["a"], preset="nope")
    with pytest.raises(ValueError, match="predictions"):
        vqa(["a"], [])


# ------------------------------------------------------------------------------------- medevalkit


@pytest.mark.parametrize(
    "text,want",
    [
        ("so \\boxed{B} is it", "B"),
        ("\\boxed{\\frac{1}{2}} then \\boxed{C}", "C"),
        ("\\boxed{unclosed", "None"),
        ("no box", "None"),
    ],
)
def test_boxed_content(text, want):
    assert mek.boxed_content(text) == want


@pytest.mark.parametrize(
    "pred,gold,correct",
    [
        ("Yes", "yes", 1.0),
        ("No, it is normal.", "no", 1.0),  # "normal" contains "no": still only "no" present
        ("Yes, the study is normal.", "yes", 0.0),  # substring quirk: "yes" and "no" (in normal) both present
        ("The answer is yes", "yes", 1.0),
        ("<answer>no</answer>", "no", 1.0),
        ("\\boxed{yes}", "yes", 1.0),
        ("Nope, nothing.", "no", 1.0),  # substring "no" suffices
    ],
)
def test_medevalkit_yes_no_substring_rule(pred, gold, correct):
    assert mek.score_medevalkit(pred, gold)["correct"] == correct


def test_medevalkit_closed_non_yes_no_and_open():
    assert mek.score_medevalkit("Left.", "left", kind="closed")["correct"] == 1.0
    assert mek.score_medevalkit("the left", "left", kind="closed")["correct"] == 0.0
    row = mek.score_medevalkit("Answer: right lower lobe", "right lower lobe", kind="open")
    assert row["em"] == 0.0  # the space after "answer:" stays, as in MedEvalKit
    assert row["recall"] == 1.0 and row["precision"] == 1.0 and row["printed_f1"] == row["recall"]
    assert mek.score_medevalkit("right lower lobe", "right lower lobe", kind="open")["correct"] == 1.0


@pytest.mark.parametrize(
    "pred,gold,correct",
    [
        ("B", "B", 1.0),
        ("b. Pleural effusion", "B", 1.0),
        ("The answer is C", "C", 1.0),
        ("Explanation first.\n\nD. Viral pneumonia", "D", 1.0),
        ("Pleural effusion", "B", 1.0),  # option text -> letter
        ("I think it's a pneumothorax on the left", "C", 1.0),  # difflib fallback
        ("A", "B", 0.0),
    ],
)
def test_medevalkit_multiple_choice(pred, gold, correct):
    assert mek.score_medevalkit(pred, gold, OPTS)["correct"] == correct


def test_vqa_medevalkit_preset_runs_end_to_end():
    res = vqa(["Yes", "liver", "B"], ["yes", "liver", "B"], options=[None, None, OPTS], preset="medevalkit")
    assert res["aggregate"]["overall_acc"] == 1.0
    assert "MedEvalKit" in res["version"]
