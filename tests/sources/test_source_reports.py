"""Report and caption sources: IU X-Ray (R2Gen + XML), MIMIC-CXR, CheXpert Plus, MedTrinity-25M."""

from __future__ import annotations

import gzip
import io
import shutil

import pytest

from medmo.data.sources import SourceStats, load_source
from medmo.data.sources.iu_xray import clean_deid
from medmo.data.sources.mimic_cxr import report_sections
from medmo.prompts import target_text


def test_iu_xray_r2gen_report_is_findings(dataset_root):
    ids = ("CXR2384_IM-0942", "CXR1451_IM-0291", "CXR2056_IM-0694-1001")
    root = dataset_root("iu_xray_r2gen", {f"images/{i}/{k}.png": (16, 16) for i in ids for k in (0, 1)})
    got = {s.meta["study"]: s for s in load_source("iu_xray", root)}
    assert got["CXR2384_IM-0942"].findings.startswith("The heart size") and got["CXR2384_IM-0942"].answer == ""
    assert got["CXR2056_IM-0694-1001"].split == "validation" and len(got["CXR2056_IM-0694-1001"].images) == 2
    assert "Sternotomy XXXX" in got["CXR2056_IM-0694-1001"].findings
    (clean,) = load_source("iu_xray", root, split="validation", deid="remove")
    assert clean.findings == "Stable cardiomegaly. Sternotomy are intact."
    assert target_text(clean) == "Findings: Stable cardiomegaly. Sternotomy are intact."


def test_iu_xray_original_xml(dataset_root):
    root = dataset_root(
        "iu_xray_xml", {"NLMCXR_png/CXR2_IM-0652-1001.png": (20, 16), "NLMCXR_png/CXR2_IM-0652-2001.png": (16, 20)}
    )
    stats = SourceStats()
    (s,) = load_source("iu_xray", root, stats=stats, deid="remove")
    assert s.split == "all" and s.findings.startswith("Borderline cardiomegaly. Midline sternotomy. Enlarged")
    assert s.findings.endswith("Clear lungs. Inferior.") and s.impression == "No acute pulmonary findings."
    assert s.meta["mesh_major"] == ["Cardiomegaly/borderline", "Pulmonary Artery/enlarged"]
    assert [i.width for i in s.images] == [20, 16]
    assert stats.skipped == 1 and "CXR10 has no images" in stats.problems[0].reason
    kept = next(iter(load_source("iu_xray", root)))
    assert "Inferior XXXX XXXX XXXX." in kept.findings
    assert clean_deid("Normal chest x-XXXX.") == "Normal chest x."


def test_mimic_sections_from_official_report_example(dataset_root):
    root = dataset_root("mimic_cxr")
    sec = report_sections((root / "files/p10/p10000032/s50414267.txt").read_text())
    assert sec["impression"] == "Large left pleural effusion"
    assert sec["findings"].startswith("Cardiac size cannot be evaluated.  Large") is False  # whitespace collapsed
    assert sec["findings"].startswith("Cardiac size cannot be evaluated. Large left")
    assert sec["findings"].endswith("degenerative changes in the thoracic spine")
    addendum = "ADDENDUM: IMPRESSION: old\n______________________________\n FINDINGS: clear.\n IMPRESSION: new one"
    assert report_sections(addendum) == {"findings": "clear.", "impression": "new one"}


def test_mimic_official_layout_per_study(dataset_root):
    study = "files/p10/p10000032/s50414267"
    root = dataset_root(
        "mimic_cxr",
        {
            f"{study}/02aa804e-bde0afdd-112c0b34-7bc16630-4e384014.jpg": (30, 36),
            f"{study}/174413ec-4ec4c1f7-34ea26b7-c5f994f8-79ef1962.jpg": (36, 30),
        },
    )
    stats = SourceStats()
    (s,) = load_source("mimic_cxr", root, stats=stats)
    assert s.split == "train" and len(s.images) == 2 and s.impression == "Large left pleural effusion"
    assert stats.skipped == 1 and "no FINDINGS or IMPRESSION" in stats.problems[0].reason
    (pa,) = load_source("mimic_cxr", root, split="train", views=("PA", "AP"))
    assert [i.path.rsplit("/", 1)[-1][:8] for i in pa.images] == ["02aa804e"]
    # the gzipped split file of the real release is read too
    with (
        open(root / "mimic-cxr-2.0.0-split.csv", "rb") as f,
        gzip.open(root / "mimic-cxr-2.0.0-split.csv.gz", "wb") as g,
    ):
        shutil.copyfileobj(f, g)
    (root / "mimic-cxr-2.0.0-split.csv").unlink()
    assert [x.id for x in load_source("mimic_cxr", root, split="train")] == [s.id]


def test_chexpert_plus_one_record_per_study(dataset_root):
    root = dataset_root(
        "chexpert_plus",
        {
            "train/patient42142/study5/view1_frontal.jpg": (20, 20),
            "train/patient42142/study5/view2_lateral.jpg": (20, 20),
            "valid/patient64541/study1/view1_frontal.jpg": (20, 20),
            "train/patient00002/study1/view1_frontal.jpg": (20, 20),
        },
    )
    stats = SourceStats()
    got = {s.meta["study"]: s for s in load_source("chexpert_plus", root, stats=stats)}
    s = got["train/patient42142/study5"]
    assert len(s.images) == 2 and s.findings.startswith("1.TRACHEOSTOMY") and s.impression is None
    assert got["valid/patient64541/study1"].split == "validation"
    assert not any(k in s.meta for k in ("age", "sex", "race", "deid_patient_id"))
    assert stats.skipped == 1 and "patient00002" in stats.problems[0].reason
    frontal = {x.meta["study"]: x for x in load_source("chexpert_plus", root, frontal_only=True)}
    assert len(frontal["train/patient42142/study5"].images) == 1


def test_medtrinity_caption_table_and_parquet(dataset_root, tmp_path):
    root = dataset_root("medtrinity", {"images/a.png": (24, 24)})
    stats = SourceStats()
    (s,) = load_source("medtrinity_25m", root, stats=stats)
    assert s.task == "caption" and s.modality == "ct" and s.answer.startswith("The image is a CT scan")
    assert stats.skipped == 2 and {"image not found" in p.reason or "caption" in p.reason for p in stats.problems} == {
        True
    }

    pa = pytest.importorskip("pyarrow")
    import pyarrow.parquet as pq
    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (9, 7)).save(buf, format="JPEG")
    (tmp_path / "hf" / "25M_demo").mkdir(parents=True)
    pq.write_table(
        pa.Table.from_pylist(
            [
                {
                    "image": {"bytes": buf.getvalue(), "path": None},
                    "id": "x1",
                    "caption": "Fundus photograph of the retina.",
                }
            ]
        ),
        tmp_path / "hf" / "25M_demo" / "train-00000.parquet",
    )
    (p,) = load_source("medtrinity_25m", tmp_path / "hf", image_dir=tmp_path / "img")
    assert p.modality == "fundus" and (p.images[0].width, p.images[0].height) == (9, 7)
    assert p.images[0].path.endswith(".jpg")


def test_mimic_r2gen_annotation(tmp_path):
    import json

    from source_helpers import write_image

    rel = "p10/p10000032/s50414267/02aa804e-bde0afdd-112c0b34-7bc16630-4e384014.jpg"
    entry = {
        "id": "02aa804e-bde0afdd-112c0b34-7bc16630-4e384014",
        "study_id": 50414267,
        "subject_id": 10000032,
        "report": "large left pleural effusion is new .",
        "image_path": [rel],
        "split": "val",
    }
    (tmp_path / "mimic_cxr").mkdir()
    (tmp_path / "mimic_cxr" / "annotation.json").write_text(json.dumps({"train": [], "val": [entry], "test": []}))
    write_image(tmp_path / "mimic_cxr" / "images" / rel, (12, 12))
    (s,) = load_source("mimic_cxr", tmp_path / "mimic_cxr", split="val")
    assert s.split == "validation" and s.findings == "large left pleural effusion is new ." and s.images[0].width == 12
