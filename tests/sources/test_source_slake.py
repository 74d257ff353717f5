"""SLAKE: language filter, yes/no casing, and detection.json boxes as grounding records."""

from __future__ import annotations

import pytest

from medmo.data.sources import SourceStats, load_source
from medmo.data.sources.slake import to_xyxy
from medmo.records import RecordError

IMAGES = {
    "Slake1.0/imgs/xmlab1/source.jpg": (100, 80),
    "Slake1.0/imgs/xmlab102/source.jpg": (64, 64),
    "Slake1.0/imgs/xmlab7/source.jpg": (50, 50),
}


def _vqa(samples):
    return [s for s in samples if s.task != "grounding"]


def test_english_by_default_and_yes_no_lower_cased(dataset_root):
    root = dataset_root("slake", IMAGES)
    got = _vqa(load_source("slake", root, grounding=False))
    assert {s.meta["qid"] for s in got} == {0, 3, 12, 11934, 11990}
    by = {s.meta["qid"]: s for s in got}
    assert by[3].answer == "yes" and by[3].task == "closed_vqa" and by[3].modality == "mri"
    assert by[11990].split == "test" and by[11990].answer == "no"
    assert by[12].modality == "x-ray" and by[11934].modality == "ct"


def test_all_languages_keep_language_field(dataset_root):
    root = dataset_root("slake", IMAGES)
    zh = [s for s in load_source("slake", root, lang=None, grounding=False) if s.language == "zh"]
    assert [(s.meta["qid"], s.answer) for s in zh] == [(4922, "否")]


def test_detection_boxes_become_grounding_records_once(dataset_root):
    root = dataset_root("slake", IMAGES)
    stats = SourceStats()
    ground = [s for s in load_source("slake", root, stats=stats) if s.task == "grounding"]
    by = {s.answer: s for s in ground}
    # xmlab1 is used by train and test: its boxes come once, in train
    assert {s.split for s in ground if "xmlab1" in s.images[0].path} == {"train"}
    assert by["Liver"].boxes[0].box == [10.0, 20.0, 40.0, 60.0]  # fits both ways -> xywh
    assert by["Spleen"].boxes[0].box == [60.0, 10.0, 95.0, 30.0]  # only fits as xyxy
    assert [b.box for b in by["Kidney"].boxes] == [[5.0, 50.0, 15.0, 60.0], [70.0, 50.0, 80.0, 60.0]]
    assert by["Liver"].images[0].width == 100 and "inferred" in by["Liver"].meta["box_format"]
    # xmlab102's detection.json has an unreadable value: the record is skipped and reported
    assert "Heart" not in by and stats.skipped == 1 and "unrecognised box value" in stats.problems[0].reason


def test_explicit_format_and_impossible_boxes():
    assert to_xyxy([10, 20, 30, 40], 100, 80, "xyxy") == ([10.0, 20.0, 30.0, 40.0], "xyxy")
    with pytest.raises(RecordError, match="neither"):
        to_xyxy([90, 70, 50, 60], 100, 80)
