"""Tests for medmo.answers: a table of realistic model outputs plus fuzzing that nothing raises."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from medmo.answers import (
    PARSER_VERSION,
    ParsedBox,
    extract_choice,
    normalize_text,
    parse_boxes,
    split_think,
    yes_no,
)

# ----------------------------------------------------------------------------------------- boxes

BOX_CASES = [
    ("liver <box>[[120, 340, 560, 780]]</box>", [("liver", [120, 340, 560, 780])]),
    (
        "nodule <box>[[10, 20, 30, 40], [50, 60, 70, 80]]</box>",
        [("nodule", [10, 20, 30, 40]), ("nodule", [50, 60, 70, 80])],
    ),
    (
        "left kidney <box>[[100, 200, 300, 400]]</box>\nright kidney <box>[[600, 210, 800, 390]]</box>",
        [("left kidney", [100, 200, 300, 400]), ("right kidney", [600, 210, 800, 390])],
    ),
    ("Pneumothorax: <box>[[700,100,950,500]]</box>", [("Pneumothorax", [700, 100, 950, 500])]),
    ("<box>[[1, 2, 3, 4]]</box>", [(None, [1, 2, 3, 4])]),
    (
        "liver <box>[[1, 2, 3, 4]]</box> spleen <box>[[5, 6, 7, 8]]</box>",
        [("liver", [1, 2, 3, 4]), ("spleen", [5, 6, 7, 8])],
    ),
    ("mass <box>[12.5, 30.0, 44.25, 90]</box>", [("mass", [12.5, 30.0, 44.25, 90])]),
    ("lesion <box>[[100, 100, 200, 200]]", [("lesion", [100, 100, 200, 200])]),  # truncated generation
    ("<ref>tumor</ref><box>(10,20),(30,40)</box>", [("tumor", [10, 20, 30, 40])]),
    (
        '[{"bbox_2d": [91, 52, 229, 258], "label": "Skin"}]',
        [("Skin", [91, 52, 229, 258])],
    ),
    (
        '```json\n[\n\t{"bbox_2d": [0, 0, 336, 336], "label": "area described by: Skin"}\n]\n```',
        [("area described by: Skin", [0, 0, 336, 336])],
    ),
    ('{"bbox_2d": [5, 6, 7, 8], "label": "cell"}', [("cell", [5, 6, 7, 8])]),
    ('{"bbox_2d": [5, 6, 7, 8]}', [(None, [5, 6, 7, 8])]),
    (
        '```json\n[{"bbox_2d": [1, 2, 3, 4], "label": "a"}, {"label": "b", "bbox_2d": [5, 6, 7, 8]}]\n```',
        [("a", [1, 2, 3, 4]), ("b", [5, 6, 7, 8])],
    ),
    (
        '```json\n[{"bbox_2d": [1, 2, 3, 4], "label": "a"}, {"bbox_2d": [5, 6, 7',  # truncated
        [("a", [1, 2, 3, 4])],
    ),
    ('[{"bbox_2d": [1, 2, 3, 4], "label": "caf\\u00e9"}]', [("café", [1, 2, 3, 4])]),
    (
        "<|object_ref_start|>Skin<|object_ref_end|><|box_start|>(91,52),(229,258)<|box_end|>",
        [("Skin", [91, 52, 229, 258])],
    ),
    ("It's in the third image. <|box_start|>(92,150),(164,224)<|box_end|>", [(None, [92, 150, 164, 224])]),
    ("<|box_start|>(136,225),(152,254)<|box_start|>", [(None, [136, 225, 152, 254])]),  # MedSG typo
    (
        "<|object_ref_start|>cyst<|object_ref_end|><|box_start|>(1,2),(3,4)<|box_end|>"
        "<|box_start|>(5,6),(7,8)<|box_end|>",
        [("cyst", [1, 2, 3, 4]), ("cyst", [5, 6, 7, 8])],
    ),
    ("[123, 456, 789, 999]", [(None, [123, 456, 789, 999])]),
    ("The lesion is at [[10, 20, 30, 40], [50, 60, 70, 80]].", [(None, [10, 20, 30, 40]), (None, [50, 60, 70, 80])]),
    ("Coordinates: (10, 20), (30, 40)", [(None, [10, 20, 30, 40])]),
    ("I cannot find any lesion in this image.", []),
    ("<box>[[1, 2, 3]]</box>", []),
    ('{"bbox_2d": [1, 2, "x", 4]}', []),
    ("", []),
]


@pytest.mark.parametrize("text,expected", BOX_CASES)
def test_parse_boxes_table(text, expected):
    got = parse_boxes(text)
    assert [(b.label, b.box) for b in got] == [(lab, [float(v) for v in box]) for lab, box in expected]
    assert all(isinstance(b, ParsedBox) for b in got)


# ------------------------------------------------------------------------------- multiple choice

OPTS = {"A": "Pneumonia", "B": "Pleural effusion", "C": "Pneumothorax", "D": "Viral pneumonia"}

CHOICE_CASES = [
    ("C", None, "C"),
    ("c", None, "C"),
    ("(C)", None, "C"),
    ("C.", None, "C"),
    ("**C**", None, "C"),
    ("Option C", None, "C"),
    ("C. Pneumothorax", None, "C"),
    ("(B) Pleural effusion", None, "B"),
    ("B) Pleural effusion", None, "B"),
    ("The answer is C.", None, "C"),
    ("The correct answer is (D).", None, "D"),
    ("Answer: B", None, "B"),
    ("Answer: (C)", None, "C"),
    ("answer: c", None, "C"),
    ("The answer is A because the opacity is lobar.", None, "A"),
    ("Final answer: \\boxed{C}", None, "C"),
    ("$\\boxed{\\text{B}}$", None, "B"),
    ("\\boxed{D. Viral pneumonia}", None, "D"),
    ("Looking at the image, option A is unlikely; the answer is B.", None, "B"),
    ("<think>Option A is wrong. C fits best.</think><answer>C</answer>", None, "C"),
    ("<think>maybe A</think>\nThe answer is D", None, "D"),
    ("I believe (B) is correct.", None, "B"),
    ("Pneumothorax", OPTS, "C"),
    ("pleural effusion.", OPTS, "B"),
    ("The image shows viral pneumonia.", OPTS, "D"),  # contains "pneumonia" too: most specific wins
    ("A chest radiograph shows an effusion.", None, None),  # the article "A" is not a choice
    ("A large mass is seen in the right lung.", None, None),
    ("The answer is a tumor.", None, None),
    ("I think it is E.", OPTS, None),  # not among the options
    ("I cannot determine the answer from this image.", None, None),
    ("", None, None),
    ("None of the above", OPTS, None),
    ("E", {"A": "x", "B": "y", "C": "z", "D": "w", "E": "v"}, "E"),
]


@pytest.mark.parametrize("text,options,expected", CHOICE_CASES)
def test_extract_choice_table(text, options, expected):
    assert extract_choice(text, options) == expected


# ---------------------------------------------------------------------------------------- yes/no

YES_NO_CASES = [
    ("Yes", "yes"),
    ("yes.", "yes"),
    ("Yes, there is a pleural effusion.", "yes"),
    ("No", "no"),
    ("No.", "no"),
    ("No, the heart size is normal.", "no"),
    ("True", "yes"),
    ("FALSE", "no"),
    ("**Yes**", "yes"),
    ("The answer is yes.", "yes"),
    ("Based on the image, the answer is no", "no"),
    ("是", "yes"),
    ("是的，存在积液。", "yes"),
    ("否", "no"),
    ("不是", "no"),
    ("没有", "no"),
    ("<think>The lung is clear.</think><answer>no</answer>", "no"),
    ("Maybe, it is hard to say.", None),
    ("The liver", None),
    ("", None),
]


@pytest.mark.parametrize("text,expected", YES_NO_CASES)
def test_yes_no_table(text, expected):
    assert yes_no(text) == expected


# ------------------------------------------------------------------------------------ think split

THINK_CASES = [
    ("<think>reasoning</think><answer>B</answer>", "reasoning", "B", True),
    ("<think>\nstep 1\n</think>\n<answer> yes </answer>\n", "step 1", "yes", True),
    ("reasoning</think>\n<answer>no</answer>", "reasoning", "no", False),
    ("<think>reasoning</think> The answer is C", "reasoning", "The answer is C", False),
    ("<think>never finished", "never finished", "", False),
    ("<answer>A</answer>", None, "A", False),
    ("plain answer", None, "plain answer", False),
    ("<think>a</think><answer>b</answer><answer>c</answer>", "a", "c", False),
    ("<think>a</think><answer>truncated", "a", "truncated", False),
]


@pytest.mark.parametrize("text,think,answer,ok", THINK_CASES)
def test_split_think_table(text, think, answer, ok):
    got = split_think(text)
    assert (got.think, got.answer, got.well_formed) == (think, answer, ok)


@pytest.mark.parametrize(
    "text,expected",
    [
        ("The Left-sided  pleural effusion!", "left sided pleural effusion"),
        ("An X-ray.", "x ray"),
        ("  A  ", ""),
        ("肺部，正常。", "肺部 正常"),
        ("CT 3.5 cm", "ct 3 5 cm"),
    ],
)
def test_normalize_text(text, expected):
    assert normalize_text(text) == expected


def test_table_is_large_enough_and_versioned():
    n = len(BOX_CASES) + len(CHOICE_CASES) + len(YES_NO_CASES) + len(THINK_CASES)
    assert n >= 60
    assert PARSER_VERSION.startswith("medmo-answers-")


# -------------------------------------------------------------------------------------------- fuzz

TOKENS = st.sampled_from(
    ["<box>", "</box>", "[[", "]]", "[", "]", "(", ")", ",", "1", "23.5", "-4", "e9", '{"bbox_2d": ', '"label": "',
     '"', "}", "{", "<|box_start|>", "<|box_end|>", "<|object_ref_start|>", "<|object_ref_end|>", "<think>",
     "</think>", "<answer>", "</answer>", "A", "I", "answer is", "\\boxed{", "yes", "no", "是", " ", "\n", "```json"]
)


@settings(max_examples=300, deadline=None)
@given(st.one_of(st.text(max_size=200), st.lists(TOKENS, max_size=40).map("".join)))
def test_nothing_raises(text):
    boxes = parse_boxes(text)
    assert all(len(b.box) == 4 for b in boxes)
    assert extract_choice(text) in (None, *"ABCDEFGHIJ")
    assert extract_choice(text, OPTS) in (None, *"ABCD")
    assert yes_no(text) in (None, "yes", "no")
    assert isinstance(split_think(text).answer, str)
    assert isinstance(normalize_text(text), str)


@pytest.mark.parametrize("bad", [None, 123, b"bytes", ["list"]])
def test_non_string_input_is_tolerated(bad):
    assert parse_boxes(bad) == []
    assert yes_no(bad) in (None, "yes", "no")
    assert extract_choice(bad) in (None, *"ABCDEFGHIJ")


def test_long_adversarial_text_is_fast():
    import time

    text = "<|object_ref_start|>" * 2000 + "<box>" * 2000 + "[1, 2, 3, " * 2000 + "answer is " * 2000
    t0 = time.perf_counter()
    parse_boxes(text), extract_choice(text), yes_no(text), split_think(text)
    assert time.perf_counter() - t0 < 2.0
