"""score_file: rescoring predictions JSONL files with any metric, no model needed."""

from __future__ import annotations

import json

import pytest

from medmo.answers import PARSER_VERSION
from medmo.boxes import to_grid
from medmo.eval.metrics.cider import cider
from medmo.eval.score import infer_task, read_predictions, score_file


def _write(path, rows, bad_lines=()):
    with open(path, "w", encoding="utf-8") as f:
        for r in rows:
            f.write(json.dumps(r) + "\n")
        for line in bad_lines:
            f.write(line + "\n")
    return path


def test_vqa_file_default_preset_and_problems(tmp_path):
    rows = [
        {"id": "a", "task": "closed_vqa", "prediction": "Yes.", "answer": "yes"},
        {"id": "b", "task": "open_vqa", "prediction": "right lower lobe", "answer": "right lower lobe"},
        {"id": "c", "task": "mcq", "prediction": "The answer is B", "answer": "B", "options": ["x", "y", "z"]},
        {"id": "d", "task": "closed_vqa", "prediction": "No", "reference": "yes"},
    ]
    path = _write(tmp_path / "p.jsonl", rows, bad_lines=["{not json", '{"answer": "no prediction"}', "[1, 2]"])
    res = score_file(path)
    assert res["n"] == 4 and res["task"] == "mixed" and res["metrics"] == ["vqa"]
    agg = res["aggregate"]
    assert agg["closed_acc"] == 0.5 and agg["open_acc"] == 1.0 and agg["mcq_acc"] == 1.0
    assert [r["id"] for r in res["per_sample"]] == ["a", "b", "c", "d"]
    assert res["per_sample"][2]["parsed"] == "B"
    assert [p["line"] for p in res["problems"]] == [5, 6, 7]
    assert "not JSON" in res["problems"][0]["reason"] and "prediction" in res["problems"][1]["reason"]
    assert res["versions"]["parser"] == PARSER_VERSION and "vqa" in res["versions"]


def test_medevalkit_preset_and_explicit_metrics(tmp_path):
    rows = [{"task": "closed_vqa", "prediction": "Yes, it is normal.", "answer": "yes"}]
    path = _write(tmp_path / "p.jsonl", rows)
    assert score_file(path)["aggregate"]["closed_acc"] == 1.0
    assert score_file(path, preset="medevalkit")["aggregate"]["closed_acc"] == 0.0  # substring rule
    res = score_file(path, metrics=["rougeL", "bleu"])
    assert res["metrics"] == ["rougeL", "bleu"] and "bleu4" in res["aggregate"]
    assert res["per_sample"][0]["id"] == "line1"


def test_caption_file_is_scored_as_one_corpus(tmp_path):
    preds = ["no pleural effusion", "mild cardiomegaly", "clear lungs", "right lower lobe opacity"]
    refs = [["no effusion", "no pleural effusion seen"], ["cardiomegaly"], ["the lungs are clear"], ["opacity"]]
    path = _write(tmp_path / "c.jsonl", [{"prediction": p, "reference": r} for p, r in zip(preds, refs)])
    res = score_file(path)
    assert res["task"] == "caption"
    assert res["aggregate"]["cider_d"] == pytest.approx(cider(preds, refs)["aggregate"]["cider_d"], abs=1e-12)
    assert {"bleu1", "rougeL", "rougeL_coco"} <= set(res["aggregate"])
    assert "cider_d" in res["per_sample"][0]


def test_report_file_adds_finding_f1(tmp_path):
    rows = [
        {"task": "report", "prediction": "Small effusion. No pneumothorax.", "findings": "Small left effusion.",
         "impression": "No pneumothorax."},
        {"task": "report", "prediction": "Cardiomegaly.", "reference": "Normal heart size."},
    ]
    res = score_file(_write(tmp_path / "r.jsonl", rows))
    assert res["per_sample"][0]["finding_f1"] == 1.0 and res["per_sample"][1]["finding_f1"] == 0.0
    assert res["aggregate"]["finding_f1"] == 0.5


def test_grounding_file_from_text_and_sample_records(tmp_path):
    gold = [64.0, 48.0, 320.0, 240.0]
    g = to_grid(gold, 640, 480)
    rows = [
        {"sample": {"id": "s1", "task": "grounding", "boxes": [{"label": "mass", "box": gold, "image": 0}],
                    "images": [{"path": "x.png", "width": 640, "height": 480}]},
         "prediction": f"mass <box>[{g}]</box>"},
        {"id": "s2", "prediction": "nothing", "boxes": [gold], "width": 640, "height": 480},
        {"id": "s3", "prediction": '[{"bbox_2d": %s}]' % g, "reference": gold, "image_size": [640, 480],
         "task": "grounding"},
    ]
    res = score_file(_write(tmp_path / "g.jsonl", rows))
    assert res["task"] == "grounding"
    assert [r["iou_first"] for r in res["per_sample"]] == [1.0, 0.0, 1.0]
    assert res["aggregate"]["acc@0.5(first)"] == pytest.approx(2 / 3)


def test_a_missing_plugin_reads_na_with_its_reason(tmp_path, monkeypatch):
    monkeypatch.delenv("MEDMO_RATESCORE_WEIGHTS", raising=False)
    from medmo.eval.metrics.plugins import MissingWeightsError

    path = _write(tmp_path / "r.jsonl", [{"prediction": "a", "reference": "a"}])
    res = score_file(path, metrics=["ratescore"])  # no weights here: n/a with the reason, never a crash
    assert res["aggregate"]["ratescore"] is None and "weights" in res["notes"]["ratescore"]
    assert issubclass(MissingWeightsError, ImportError)


def test_infer_task_and_reader(tmp_path):
    assert infer_task({"boxes": [[0, 0, 1, 1]]}) == "grounding"
    assert infer_task({"options": {"A": "x"}}) == "mcq"
    assert infer_task({"reference": ["a", "b"]}) == "caption"
    assert infer_task({"reference": "a"}) == "open_vqa"
    records, problems = read_predictions(_write(tmp_path / "e.jsonl", [], bad_lines=["", "  "]))
    assert records == [] and problems == []
