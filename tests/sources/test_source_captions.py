"""Captions, reports and VQA MedMO trains on: ROCO, ROCOv2, MedPix ClinQA, MIMIC-CXR-VQA (fixtures written here)."""

from __future__ import annotations

import io
import json
from pathlib import Path

from source_helpers import write_image

from medmo.data.sources import SourceStats, load_source
from medmo.data.sources._medmo_style import CAPTION_PROMPTS, REPORT_PROMPTS


def png_bytes(size=(12, 10)) -> dict:
    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", size, (90, 30, 10)).save(buf, format="PNG")
    return {"bytes": buf.getvalue(), "path": None}


def write_parquet(path: Path, rows: list[dict]) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pylist(rows), path)


def test_roco_github_layout_with_fetched_images_and_the_csv_export(tmp_path):
    d = tmp_path / "data" / "validation" / "radiology"
    d.mkdir(parents=True)
    (d / "captions.txt").write_text("ROCO_00020\t Axial CT of the pelvis.\nROCO_00027\t Postoperative radiograph.\n")
    url = "ftp://ftp.ncbi.nlm.nih.gov/pub/pmc/oa_package/08/e0/PMC3970251.tar.gz"
    (d / "dlinks.txt").write_text(f"ROCO_00020\t wget -nd {url}\t CRIONM2014-931546.003.jpg\n")
    write_image(d / "images" / "PMC3970251_CRIONM2014-931546.003.jpg", (20, 16))
    write_image(d / "images" / "ROCO_00027.jpg", (8, 8))
    stats = SourceStats()
    a, b = load_source("roco", tmp_path, stats=stats)
    assert (a.task, a.answer, a.split, a.images[0].width) == ("caption", "Axial CT of the pelvis.", "validation", 20)
    assert a.question in CAPTION_PROMPTS and b.images[0].path.endswith("ROCO_00027.jpg")
    assert not list(load_source("roco", tmp_path, split="train", subset="both"))

    e = tmp_path / "csv" / "train" / "radiology"
    e.mkdir(parents=True)
    (e / "traindata.csv").write_text("id,name,caption\nROCO_1,PMC1_a.jpg,A chest film.\nROCO_2,PMC2_missing.jpg,x\n")
    write_image(e / "images" / "PMC1_a.jpg")
    stats = SourceStats()
    (c,) = load_source("roco", tmp_path / "csv", stats=stats)
    assert c.answer == "A chest film." and stats.skipped == 1 and "image not found" in str(stats.problems[0])


def test_rocov2_hub_parquet_snapshot_and_zenodo_csv(tmp_path):
    rows = [{"image": png_bytes(), "image_id": "ROCOv2_2023_train_000001", "caption": "Head CT.", "cui": ["C0040405"]}]
    write_parquet(tmp_path / "hub" / "data" / "train-00000-of-00001.parquet", rows)
    (s,) = load_source("rocov2", tmp_path / "hub", image_dir=tmp_path / "img")
    assert (s.answer, s.meta["cui"], s.split, s.images[0].width) == ("Head CT.", ["C0040405"], "train", 12)
    z = tmp_path / "zenodo"
    (z / "test").mkdir(parents=True)
    (z / "test_captions.csv").write_text("ID,Caption\nROCOv2_2023_test_000001,Knee MRI.\n")
    (z / "test_concepts.csv").write_text("ID,CUIs\nROCOv2_2023_test_000001,C0024485;C0022742\n")
    write_image(z / "test" / "ROCOv2_2023_test_000001.jpg")
    (t,) = load_source("rocov2", z, split="test")
    assert (t.answer, t.split, t.meta["cui"]) == ("Knee MRI.", "test", ["C0024485", "C0022742"])


def test_medpix_clinqa_parquet_questions_and_medmo_report_style(tmp_path):
    rows = [{"image_id": png_bytes(), "case_id": "MPX1001", "question": "What is the diagnosis?",
             "answer": "Meningioma.", "mode": "diagnosis", "split": "train"}]  # fmt: skip
    write_parquet(tmp_path / "data" / "train-00000-of-00007-x.parquet", rows)
    (q,) = load_source("medpix", tmp_path, image_dir=tmp_path / "img")
    assert (q.task, q.question, q.answer, q.meta["case_id"]) == ("open_vqa", "What is the diagnosis?", "Meningioma.", "MPX1001")
    (r,) = load_source("medpix", tmp_path, image_dir=tmp_path / "img", style="medmo")
    assert r.task == "report" and r.question in REPORT_PROMPTS and r.answer == "Meningioma."
    c = tmp_path / "medmo" / "data_csv"
    c.mkdir(parents=True)
    write_image(c / "a.png")
    (c / "validation.csv").write_text("image_path,answer\na.png,A report text.\n")
    (v,) = load_source("medpix", tmp_path / "medmo")
    assert (v.task, v.split) == ("report", "validation")


def test_mimic_cxr_vqa_official_json_without_patient_ids(tmp_path):
    rel = "p10/p10000032/s50414267/34c81443-5a19ccad-7b5e431c-4e1dbb28-42a325c0.jpg"
    write_image(tmp_path / "files" / rel, (30, 30))
    rows = [{"split": "test", "idx": 13280, "image_id": "34c81443", "question": "Are there signs of pleural effusion?",
             "content_type": "attribute", "semantic_type": "verify", "template": "Are there signs of ${attribute}?",
             "template_program": "program_5", "template_arguments": {}, "answer": ["Yes"], "subject_id": "10000032",
             "study_id": "50414267", "image_path": rel},
            {"split": "test", "idx": 13281, "question": "Which anatomical locations are related to the tube?",
             "semantic_type": "query", "answer": ["left lung", "trachea"], "subject_id": "10000032", "image_path": rel}]  # fmt: skip
    (tmp_path / "mimiccxrvqa" / "dataset").mkdir(parents=True)
    (tmp_path / "mimiccxrvqa" / "dataset" / "test.json").write_text(json.dumps(rows))
    a, b = load_source("mimic_cxr_vqa", tmp_path, split="test")
    assert (a.task, a.answer, a.meta["content_type"]) == ("closed_vqa", "yes", "attribute")
    assert (b.task, b.answer) == ("open_vqa", "left lung, trachea")
    dumped = json.dumps([a.to_dict(), b.to_dict()])
    assert "subject_id" not in dumped and "study_id" not in dumped and '"10000032"' not in dumped
