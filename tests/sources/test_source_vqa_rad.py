"""VQA-RAD: MEVF split files, OSF release, hub copy; yes/no normalisation and the bad-record policy."""

from __future__ import annotations

import io

import pytest

from medmo.data.sources import SourceStats, load_source
from medmo.records import RecordError

IMAGES = {f"data_RAD/images/{n}.jpg": (40, 30) for n in ("synpic54610", "synpic39460", "synpic21776", "synpic29265")}


def test_mevf_split_normalises_answers_and_skips_bad_rows(dataset_root):
    root = dataset_root("vqa_rad", IMAGES)
    stats, seen = SourceStats(), []
    got = {s.meta["qid"]: s for s in load_source("vqa_rad", root, stats=stats, on_error=seen.append)}
    assert sorted(got) == [1, 5, 9, 21, 33]
    assert got[1].answer == "yes" and got[1].task == "closed_vqa" and got[1].split == "train"
    assert got[21].answer == "yes" and got[21].meta["question_type"] == ["SIZE", "PRES"]
    assert got[9].task == "open_vqa" and got[9].answer == "left temporal lobe"
    assert got[33].question == "Are there >12 of ribs?"
    assert got[5].split == "test" and got[5].answer == "no"
    assert (got[1].images[0].width, got[1].images[0].height) == (40, 30)
    assert stats.yielded == 5 and stats.skipped == 2
    reasons = " ".join(p.reason for p in stats.problems)
    assert "missing field 'answer'" in reasons and "synpic99999.jpg" in reasons
    assert all(p.file.endswith("trainset.json") for p in stats.problems) and seen == stats.problems


def test_split_filter_and_strict_mode(dataset_root):
    root = dataset_root("vqa_rad", IMAGES)
    assert [s.meta["qid"] for s in load_source("vqa_rad", root, split="test")] == [5]
    with pytest.raises(RecordError, match=r"trainset.json:4: missing field 'answer'"):
        list(load_source("vqa_rad", root, split="train", strict=True))


def test_osf_release_uses_test_phrase_type(dataset_root):
    root = dataset_root(
        "vqa_rad_osf", {f"VQA_RAD Image Folder/{n}.jpg": (20, 20) for n in ("synpic54610", "synpic29265")}
    )
    got = list(load_source("vqa_rad", root))
    assert [(s.split, s.answer) for s in got] == [("train", "yes"), ("test", "no")]


def test_hub_copy_through_datasets(monkeypatch, tmp_path):
    datasets = pytest.importorskip("datasets")
    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (12, 10)).save(buf, format="PNG")
    ds = datasets.Dataset.from_dict(
        {
            "image": [{"bytes": buf.getvalue(), "path": None}] * 2,
            "question": ["is there a mass?", "what organ?"],
            "answer": ["Yes", "liver"],
        },
        features=datasets.Features(
            {"image": datasets.Image(), "question": datasets.Value("string"), "answer": datasets.Value("string")}
        ),
    )
    calls = []
    monkeypatch.setattr(datasets, "load_dataset", lambda *a, **k: calls.append((a, k)) or ds)
    got = list(load_source("vqa_rad", "flaviagiammarino/vqa-rad", split="test", image_dir=tmp_path / "img"))
    assert calls[0][0][0] == "flaviagiammarino/vqa-rad" and calls[0][1]["split"] == "test"
    assert [(s.task, s.answer) for s in got] == [("closed_vqa", "yes"), ("open_vqa", "liver")]
    assert got[0].images[0].path == got[1].images[0].path  # same bytes, written once
    assert (got[0].images[0].width, got[0].images[0].height) == (12, 10)
    assert len(list((tmp_path / "img").iterdir())) == 1
