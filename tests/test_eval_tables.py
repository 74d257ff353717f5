"""Result tables in MedMO's layout (Markdown, CSV, bar chart) and the grounding HTML page."""

from __future__ import annotations

import csv
import io
import json

import pytest
from PIL import Image

from medmo.eval.report_html import grounding_page
from medmo.eval.tables import build_tables, to_csv, to_markdown, write_tables


def entry(name: str, metrics: dict, **extra) -> dict:
    from medmo.eval.registry import get

    return {"benchmark": get(name).to_dict(), "metrics": metrics, "limit": None, **extra}


def results(model: str, preset: str = "standard", **benches) -> dict:
    return {"model": model, "preset": preset, "judge": None, "benchmarks": benches}


A = results(
    "MedMO-4B",
    vqa_rad=entry("vqa_rad", {"overall_acc": 0.60, "closed_acc": 0.70}, ci={"overall_acc": [0.5, 0.7]}),
    slake=entry("slake", {"overall_acc": 0.80, "closed_acc": 0.90}),
    nih_chestxray14=entry("nih_chestxray14", {"iou_matched_mean": 0.25}),
    medsg_referring=entry("medsg_referring", {"iou_first_mean": 0.5}),
    iu_xray=entry("iu_xray", {"rougeL": 0.3, "cider_d": 0.5, "bleu4": 0.1, "ratescore": None, "semb_score": None},
                  notes={"ratescore": "not computed: needs weights"}),
)
B = results("Qwen3-VL-4B", vqa_rad=entry("vqa_rad", {"overall_acc": 0.50, "closed_acc": 0.55}))


def test_rows_are_models_columns_benchmarks_then_average():
    tables = {t.group: t for t in build_tables([A, B])}
    assert list(tables) == ["vqa", "report", "grounding"]  # MedMO's table order
    md = to_markdown(tables["vqa"])
    lines = [x for x in md.splitlines() if x.startswith("|")]
    assert lines[0] == ("| Model | VQA-RAD closed | VQA-RAD all | SLAKE closed | SLAKE all | Mean over benchmarks "
                        "| Avg. |")  # MedMO's closed/all columns, both averages named
    assert lines[2] == "| MedMO-4B | 70.0 | 60.0 [50.0, 70.0] | 90.0 | 80.0 | 70.0 | 75.0 |"
    assert lines[3] == "| Qwen3-VL-4B | 55.0 | 50.0 | - | - | - | - |"  # not run: no average over a partial row
    assert "Mean over benchmarks: one value per benchmark" in md and "Avg.: MedMO's average over every column" in md


def test_csv_has_one_row_per_model_and_empty_missing_cells():
    rows = list(csv.reader(io.StringIO(to_csv(build_tables([A, B])[0]))))
    assert rows[0] == ["model", "VQA-RAD closed", "VQA-RAD all", "SLAKE closed", "SLAKE all", "Mean over benchmarks",
                       "Avg."]
    assert rows[1] == ["MedMO-4B", "70.0000", "60.0000", "90.0000", "80.0000", "70.0000", "75.0000"]
    assert rows[2] == ["Qwen3-VL-4B", "55.0000", "50.0000", "", "", "", ""]


def test_report_table_has_a_column_per_metric_and_says_why_one_is_missing():
    t = {t.group: t for t in build_tables([A])}["report"]
    md = to_markdown(t)
    assert "IU-Xray ROUGE-L" in md and "IU-Xray CIDEr" in md and "Avg. ROUGE-L" in md
    assert "| MedMO-4B | 30.0 | 50.0 | 10.0 | n/a | n/a |" in md
    assert "needs weights" in md


def test_grounding_table_names_the_iou_each_column_shows():
    md = to_markdown({t.group: t for t in build_tables([A])}["grounding"])
    assert "NIH ChestX-ray14" in md and "MedSG referring" in md
    assert "NIH ChestX-ray14: iou_matched_mean" in md and "MedSG referring: iou_first_mean" in md


def test_presets_are_told_apart_when_results_mix_them():
    labels = [r[0] for r in build_tables([A, results("MedMO-4B", "medevalkit", vqa_rad=entry("vqa_rad", {}))])[0].rows]
    assert labels == ["MedMO-4B [standard]", "MedMO-4B [medevalkit]"]


def test_write_tables_and_cli(tmp_path, capsys):
    written = write_tables([A, B], tmp_path / "t")
    png = written["vqa.png"].read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 1000
    assert (tmp_path / "t" / "tables.md").read_text().count("###") == 3
    for i, r in enumerate((A, B)):
        (tmp_path / f"r{i}.json").write_text(json.dumps(r))
    from medmo.cli import main

    assert main(["eval", "table", str(tmp_path / "r0.json"), str(tmp_path / "r1.json"), "--out", str(tmp_path / "c"),
                 "--no-plots"]) == 0
    assert "| Qwen3-VL-4B | 55.0 | 50.0 | - | - | - | - |" in capsys.readouterr().out
    assert (tmp_path / "c" / "grounding.csv").exists() and not (tmp_path / "c" / "vqa.png").exists()
    (tmp_path / "bad.json").write_text("{}")
    assert main(["eval", "table", str(tmp_path / "bad.json")]) == 2


def test_grounding_page_draws_gold_and_predicted_boxes(tmp_path):
    Image.new("RGB", (200, 100), (50, 50, 50)).save(tmp_path / "img.png")
    rows = [{"id": "g1", "label": "nodule", "image": str(tmp_path / "img.png"), "boxes": [[20, 10, 120, 60]],
             "pred_boxes": [[0, 0, 50, 100]], "iou_matched": 0.1, "iou_first": 0.1, "prediction": "nodule <box>"},
            {"id": "g2", "label": "mass", "image": str(tmp_path / "gone.png"), "boxes": [[0, 0, 5, 5]],
             "pred_boxes": [], "iou_matched": 0.0, "iou_first": 0.0, "prediction": ""}]
    (tmp_path / "p.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    res = results("m", nih_chestxray14=entry("nih_chestxray14", {"iou_matched_mean": 0.05},
                                             predictions_file=str(tmp_path / "p.jsonl")))
    page = grounding_page(res, tmp_path / "g.html").read_text()
    assert page.count("data:image/png;base64,") == 1 and 'viewBox="0 0 200 100"' in page
    assert '<rect class="gold" x="20.0" y="10.0" width="100.0" height="50.0"/>' in page
    assert '<rect class="pred" x="0.0" y="0.0" width="50.0" height="100.0"/>' in page
    assert "image not readable" in page  # a missing image does not sink the page
    assert grounding_page(results("m", vqa_rad=entry("vqa_rad", {})), tmp_path / "none.html") is None
    from medmo.cli import main

    (tmp_path / "r.json").write_text(json.dumps(res))
    assert main(["eval", "table", str(tmp_path / "r.json"), "--out", str(tmp_path / "t"), "--no-plots"]) == 0
    assert "<svg" in (tmp_path / "t" / "grounding-m.html").read_text()


@pytest.mark.parametrize("bad", ["[]", "not json"])
def test_load_results_names_a_bad_file(tmp_path, bad):
    from medmo.eval.runner import load_results

    (tmp_path / "r.json").write_text(bad)
    with pytest.raises(ValueError, match="r.json"):
        load_results(tmp_path / "r.json")


def test_report_section_adds_breakdowns():
    from medmo.eval.tables import report_section

    r = results("m", vqa_rad=entry("vqa_rad", {"overall_acc": 0.5, "closed_acc": 0.5},
                                   breakdown={"kind": {"closed": {"acc": 0.5, "n": 2}, "open": {"acc": 0.5, "n": 2}}}))
    md = report_section([r])
    assert "### Medical VQA" in md and "m / vqa_rad by kind: closed 50.0 (n=2), open 50.0 (n=2)" in md
