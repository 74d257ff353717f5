"""Box conventions: the 0-1000 grid and MedMO's pixel conventions, converted by one module everywhere."""

from __future__ import annotations

import pytest

from medmo.boxes import BoxConvention, BoxError, convention_of, from_grid, to_grid
from medmo.eval.tasks import predicted_boxes
from medmo.gold import gold_for
from medmo.infer.api import boxes_from_text
from medmo.prompts import grounding_prompt, question_text, target_text
from medmo.records import Box, ImageRef, Sample

BOX = [100.0, 50.0, 900.0, 700.0]  # in a 1000 x 800 image


def cell_sample(convention: str | None) -> Sample:
    meta = {"box_convention": convention} if convention else {}
    return Sample("c1", "grounding", "ctc", "train", answer="Cell", boxes=[Box("Cell", list(BOX))],
                  images=[ImageRef("x.png", 1000, 800)], modality="microscopy", meta=meta)  # fmt: skip


@pytest.mark.parametrize("spec,text", [("grid", "grid"), (None, "grid"), ("pixel", "pixel"),
                                       ("pixel@768", "pixel@768x768"), ("PIXEL@640x480", "pixel@640x480")])  # fmt: skip
def test_conventions_parse_and_print(spec, text):
    assert str(BoxConvention.parse(spec)) == text


@pytest.mark.parametrize("bad", ["pixels", "pixel@0", "pixel@x", "grid@5", "pixel@12x"])
def test_unknown_conventions_are_refused_with_the_accepted_forms(bad):
    with pytest.raises(BoxError, match="use 'grid', 'pixel' or 'pixel@WxH'"):
        BoxConvention.parse(bad)


def test_grid_convention_is_exactly_to_grid_and_from_grid():
    g = BoxConvention.parse("grid")
    assert g.to_target(BOX, 1000, 800) == to_grid(BOX, 1000, 800)
    assert g.from_target([1, 2, 3, 4], 1000, 800) == from_grid([1, 2, 3, 4], 1000, 800)


def test_pixel_conventions_scale_each_axis_and_round_trip_within_half_a_unit():
    c = BoxConvention.parse("pixel@768x768")
    t = c.to_target(BOX, 1000, 800)
    assert t == [77, 48, 691, 672]  # x * 0.768, y * 0.96, rounded half up
    back = c.from_target(t, 1000, 800)
    assert all(abs(a - b) <= 0.5 * s for a, b, s in zip(back, BOX, (1000 / 768, 800 / 768) * 2))
    assert BoxConvention.parse("pixel").to_target([1.5, 2.4, 9.5, 20.0], 30, 30) == [2, 2, 10, 20]
    assert BoxConvention.parse("pixel@100").to_target([-5, 0, 2000, 800], 1000, 800) == [0, 0, 100, 100]  # clamped


def test_records_are_taught_and_rewarded_in_their_convention():
    grid, pixel = cell_sample(None), cell_sample("pixel@768x768")
    assert target_text(grid) == "Cell <box>[[100, 63, 900, 875]]</box>"
    assert target_text(pixel) == "Cell: [ [77, 48, 691, 672] ]"  # MedMO's training-data syntax
    assert gold_for(pixel)["boxes"] == [[77, 48, 691, 672]] and gold_for(pixel)["box_convention"] == "pixel@768x768"
    assert gold_for(grid)["box_convention"] == "grid"
    assert "0-1000 grid" in question_text(grid) and "pixel values" in question_text(pixel)
    assert "pixel values" in grounding_prompt("cell", "pixel") and "0-1000" in grounding_prompt("cell")


def test_evaluation_and_inference_read_boxes_back_to_original_pixels():
    pixel = cell_sample("pixel@768x768")
    (box,) = predicted_boxes("Cell: [ [77, 48, 691, 672] ]", pixel)
    assert all(abs(a - b) < 1.5 for a, b in zip(box, BOX))
    (grid_box,) = predicted_boxes("Cell <box>[[100, 63, 900, 875]]</box>", cell_sample(None))
    assert all(abs(a - b) < 1.0 for a, b in zip(grid_box, BOX))
    (g,) = boxes_from_text("Cell: [ [77, 48, 691, 672] ]", "cell", (1000, 800), "pixel@768x768")
    assert g.convention == "pixel@768x768" and g.grid_box == [77, 48, 691, 672]
    assert all(abs(a - b) < 1.5 for a, b in zip(g.box, BOX))
    assert convention_of({"box_convention": "pixel"}).kind == "pixel"
