"""Grounding sources: NIH ChestX-ray14 boxes, DeepLesion, MedSG-Bench / MedSG-188K."""

from __future__ import annotations

import pytest

from medmo.data.sources import SourceStats, load_source
from medmo.data.sources.deeplesion import slice_path
from medmo.data.sources.medsg_bench import clean_question
from medmo.prompts import target_text


def test_nih_boxes_xywh_in_1024_and_label_spelling(dataset_root):
    images = {f"images/{n}": (1024, 1024) for n in ("00013118_008.png", "00010575_002.png", "00099999_000.png")}
    images["images/00026920_000.png"] = (512, 512)  # a user-resized copy: boxes are scaled to it
    root = dataset_root("nih", images)
    stats = SourceStats()
    got = {(s.meta["image_index"], s.answer): s for s in load_source("nih_chestxray14", root, stats=stats)}
    a = got[("00013118_008.png", "Atelectasis")]
    assert a.boxes[0].box == pytest.approx([225.084745762712, 547.019216763771, 311.864406779661, 626.205657204412])
    assert a.split == "test" and (a.images[0].width, a.images[0].height) == (1024, 1024)
    assert ("00010575_002.png", "Effusion") in got and ("00010575_002.png", "Atelectasis") in got
    inf = got[("00026920_000.png", "Infiltration")]  # "Infiltrate" in the box file
    assert inf.meta["box_label"] == "Infiltrate" and inf.split == "train"
    assert inf.boxes[0].box == pytest.approx([171.7191, 223.0993, 232.0213, 249.8370], abs=1e-3)
    assert target_text(a).startswith("Atelectasis <box>[[220, 534, 305, 612]]</box>")
    reasons = " | ".join(str(p) for p in stats.problems)
    assert stats.skipped == 2 and "expected 6 fields" in reasons and "BBox_List_2017.csv:6" in reasons
    assert "empty after clipping" in reasons



NIH_IMAGES = {f"images/{n}": (1024, 1024) for n in ("00013118_008.png", "00010575_002.png", "00026920_000.png")}


def test_nih_split_all_reads_every_box_when_the_official_lists_are_present(dataset_root):
    root = dataset_root("nih", NIH_IMAGES)
    every = list(load_source("nih_chestxray14", root, split="all"))
    assert len(every) == 4 and {s.split for s in every} == {"train", "test"}  # records keep their own split
    assert {s.id for s in every} == {s.id for s in load_source("nih_chestxray14", root)}
    assert [s.split for s in load_source("nih_chestxray14", root, split="train")] == ["train"]
    assert len(list(load_source("nih_chestxray14", root, split="test"))) == 3


def test_nih_split_without_its_list_names_the_missing_file(dataset_root):
    root = dataset_root("nih", NIH_IMAGES)
    (root / "test_list.txt").unlink()
    with pytest.raises(FileNotFoundError, match="split 'test' .* test_list.txt .* missing in"):
        list(load_source("nih_chestxray14", root, split="test"))
    assert len(list(load_source("nih_chestxray14", root, split="all"))) == 4  # no list needed for 'all'


def test_nih_medmo_styles_ask_for_pixels_and_record_their_convention(dataset_root):
    root = dataset_root("nih", NIH_IMAGES)
    (sft,) = [s for s in load_source("nih_chestxray14", root, style="medmo-sft") if s.answer == "Infiltration"]
    assert sft.meta["box_convention"] == "pixel@768x768" and "in pixel values" in sft.question
    assert target_text(sft) == "Infiltration: [ [258, 335, 348, 375] ]"  # MedMO's 1024 -> 768 boxes
    (grpo,) = [s for s in load_source("nih_chestxray14", root, style="medmo-grpo") if s.answer == "Infiltration"]
    assert grpo.meta["box_convention"] == "pixel" and "<box>" in grpo.question and grpo.id == sft.id
    assert target_text(grpo) == "Infiltration: [ [343, 446, 464, 500] ]"
    with pytest.raises(ValueError, match="style must be one of qwen, medmo-sft, medmo-grpo"):
        list(load_source("nih_chestxray14", root, style="medmo"))

def test_deeplesion_quoted_xyxy_boxes_grouped_per_slice(dataset_root):
    root = dataset_root(
        "deeplesion",
        {
            "Images_png/000089_01_01/037.png": (8, 8),
            "Images_png/000097_01_01/055.png": (8, 8),
            "Images_png/000090_01_01/115.png": (8, 8),
        },
    )
    stats = SourceStats()
    got = {s.meta["file_name"]: s for s in load_source("deeplesion", root, stats=stats)}
    first = got["000089_01_01_037.png"]
    assert first.boxes[0].box == [132.977, 171.808, 165.939, 214.029]  # x1y1x2y2, not xywh
    assert (first.images[0].width, first.images[0].height) == (512, 512)  # Image_size, not the file's size
    assert first.split == "train" and first.meta["coarse_lesion_type"] == [None] and first.meta["window"] == [-175, 275]
    two = got["000097_01_01_055.png"]
    assert two.split == "test" and len(two.boxes) == 2 and two.meta["coarse_lesion_type"] == [4, 8]
    assert stats.skipped == 1 and "expected 4 numbers" in stats.problems[0].reason
    assert stats.problems[0].line == 5
    assert slice_path(root, "000089_01_01_037.png") == root / "Images_png" / "000089_01_01" / "037.png"


def test_medsg_bench_items_and_sizes(dataset_root):
    root = dataset_root(
        "medsg",
        {
            "bench/images/ref_a.png": (336, 336),
            "bench/images/view_1.png": (640, 480),
            "bench/images/view_2.png": (320, 240),
        },
    )
    stats = SourceStats()
    got = list(load_source("medsg_bench", root / "bench", split="test", stats=stats))
    by = {s.meta["medsg_task"]: s for s in got}
    ref = by["referring"]
    assert ref.answer == "Skin" and ref.boxes[0].box == [91.0, 52.0, 229.0, 258.0]
    assert ref.question == "Please find the bounding box coordinates for the area described by: Skin."
    mv = by["multi_view"]
    assert len(mv.images) == 2 and mv.boxes[0].image == 1 and mv.meta["declared_size"] == [640, 480]
    assert mv.boxes[0].box == [50.0, 60.0, 150.0, 180.0]  # declared 640x480, file is 320x240
    assert mv.question.startswith("The region <box>[[100, 100, 500, 500]]</box> in the first image shows the Liver.")
    assert stats.skipped == 1 and "inverted" in stats.problems[0].reason


def test_medsg_training_conversations_give_image_index(dataset_root):
    names = ("AbdomenCT1K_CT_RightKidney.png", "4C2021_CT_PharynxCancer.png", "ACDC_MRI_RightVentricle.png")
    root = dataset_root("medsg", {f"MedSG-Train/Task8/{n}": (336, 336) for n in names})
    stats = SourceStats()
    got = list(load_source("medsg_bench", root, split="train", stats=stats))
    assert stats.skipped == 1 and "turn 2: no <|box_start|>" in stats.problems[0].reason  # only that turn is lost
    assert [(s.answer, s.boxes[0].image, s.boxes[0].box) for s in got] == [
        ("RightVentricle", 2, [92.0, 150.0, 164.0, 224.0]),
        ("PharynxCancer", 1, [136.0, 225.0, 152.0, 254.0]),
    ]
    assert len(got[0].images) == 3 and got[0].images[2].path.endswith("ACDC_MRI_RightVentricle.png")
    assert got[0].question.startswith("Identify the bounding box") and "<image>" not in got[0].question
    assert clean_question("<image>\nfind <|object_ref_start|>A<|object_ref_end|>", (336, 336)) == "find A"


def test_medsg_medmo_style_keeps_pixels_and_says_so(dataset_root):
    names = ("AbdomenCT1K_CT_RightKidney.png", "4C2021_CT_PharynxCancer.png", "ACDC_MRI_RightVentricle.png")
    root = dataset_root("medsg", {f"MedSG-Train/Task8/{n}": (336, 336) for n in names})
    plain = list(load_source("medsg_bench", root, split="train"))
    got = list(load_source("medsg_bench", root, split="train", style="medmo-grpo"))
    assert [(s.id, s.boxes[0].box) for s in got] == [(s.id, s.boxes[0].box) for s in plain]
    first = got[0]
    assert first.answer == "Difference detected" and first.meta["box_convention"] == "pixel"
    assert "<image>" not in first.question
    assert target_text(first) == "Difference detected: [ [92, 150, 164, 224] ]"
