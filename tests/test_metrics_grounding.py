"""Grounding metrics: first / best / matched IoU per sample, Acc@t and F1@0.5 over a set."""

from __future__ import annotations

import pytest

from medmo.boxes import iou, to_grid
from medmo.eval.metrics.grounding import grounding, pred_boxes_px, sample_scores

W, H = 640, 480
GOLD = [64.0, 48.0, 320.0, 240.0]


def test_text_prediction_in_grid_units_maps_to_pixels():
    text = f"lesion <box>[{to_grid(GOLD, W, H)}]</box>"  # lesion <box>[[100, 100, 500, 500]]</box>
    boxes = pred_boxes_px(text, W, H)
    assert boxes == [[64.0, 48.0, 320.0, 240.0]]
    assert pred_boxes_px([[1, 2, 3, 4]], None, None, units="pixel") == [[1.0, 2.0, 3.0, 4.0]]
    with pytest.raises(ValueError, match="units"):
        pred_boxes_px("", W, H, units="cm")


def test_first_best_matched_differ_as_documented():
    gold = [[0, 0, 10, 10], [20, 20, 30, 30]]
    pred = [[100, 100, 110, 110], [20, 20, 30, 30], [0, 0, 10, 5]]
    s = sample_scores(pred, gold)
    assert s["iou_first"] == 0.0  # MedSG-Bench: the first predicted box only
    assert s["iou_best"] == 1.0
    assert s["iou_matched"] == pytest.approx((1.0 + 0.5) / 3)  # extra prediction costs
    assert s["tp@0.5"] == 2.0 and s["n_pred"] == 3.0 and s["n_gold"] == 2.0


def test_empty_cases():
    assert sample_scores([], [[0, 0, 1, 1]])["iou_first"] == 0.0
    assert sample_scores([], [])["iou_matched"] == 1.0
    assert sample_scores([[0, 0, 1, 1]], [])["iou_matched"] == 0.0


def test_corpus_aggregates_from_text_predictions():
    g = to_grid(GOLD, W, H)
    shifted = [GOLD[0] + 64, GOLD[1], GOLD[2] + 64, GOLD[3]]  # IoU 0.6
    preds = [
        f"mass <box>[{g}]</box>",
        '```json\n[{"bbox_2d": ' + str(to_grid(shifted, W, H)) + ', "label": "mass"}]\n```',
        "I cannot find it.",
        "<|box_start|>(0,0),(10,10)<|box_end|>",
    ]
    res = grounding(preds, [[GOLD]] * 4, image_sizes=[(W, H)] * 4)
    first = [r["iou_first"] for r in res["per_sample"]]
    assert first[0] == pytest.approx(1.0)
    assert first[1] == pytest.approx(iou(shifted, GOLD), abs=1e-3)
    assert first[2] == 0.0 and first[3] == 0.0
    agg = res["aggregate"]
    assert agg["acc@0.5(first)"] == 0.5 and agg["acc@0.7(first)"] == 0.25 and agg["acc@0.3(first)"] == 0.5
    assert agg["f1@0.5(matched)"] == pytest.approx(2 * 2 / (3 + 4))
    assert agg["iou_first_mean"] == pytest.approx(sum(first) / 4)
    assert res["version"].startswith("grounding-")


def test_single_gold_box_and_missing_size():
    res = grounding([[GOLD]], [GOLD], units="pixel")
    assert res["per_sample"][0]["iou_first"] == 1.0
    with pytest.raises(ValueError, match="image size"):
        grounding(["<box>[[1,2,3,4]]</box>"], [[GOLD]])
