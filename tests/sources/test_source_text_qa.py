"""Text-only exams: MedQA, PubMedQA, MedMCQA, MMLU (medical), Medbullets, SuperGPQA."""

from __future__ import annotations

import pytest

from medmo.data.sources import SourceStats, load_source
from medmo.data.sources.medbullets import columns_to_rows


def test_medqa_four_and_five_option_files_and_quoted_answers(dataset_root):
    root = dataset_root("medqa")
    stats = SourceStats()
    four = list(load_source("medqa", root, split="test", stats=stats))
    assert [s.answer for s in four] == ["D", "B"]
    assert (
        four[1].options["B"] == '"Have you ever experienced a situation in which you wished you smoked less marijuana?"'
    )
    assert not four[0].images and four[0].meta["meta_info"] == "step2&3" and "°F" in four[0].question
    assert [p.line for p in stats.problems] == [3, 4]
    assert "invalid JSON" in stats.problems[0].reason and "answer_idx B" in stats.problems[1].reason
    (five,) = load_source("medqa", root, split="test", options=5)
    assert five.answer == "E" and five.options["E"] == "Nitrofurantoin" and five.id != four[0].id
    raw = list(load_source("medqa", root, split="test", strip_quotes=False))
    assert raw[1].options["B"].startswith('"""')


def test_pubmedqa_official_test_pmids_and_gold_final_decision(dataset_root):
    root = dataset_root("pubmedqa")
    stats = SourceStats()
    got = {s.meta["pmid"]: s for s in load_source("pubmedqa", root, stats=stats)}
    assert got["21214884"].split == "train" and got["21214884"].answer == "B"  # final_decision "no"
    assert (
        got["11296674"].split == "test" and got["11296674"].meta["label"] == "maybe" and got["11296674"].answer == "C"
    )
    q = got["21214884"].question
    assert q.startswith("Context:\nMETHODS: Using polymerase") and q.endswith("in human breast milk?")
    assert "CONCLUSION" not in q
    assert stats.skipped == 1 and "probably" in stats.problems[0].reason
    (t,) = load_source("pubmedqa", root, split="test", with_long_answer=True)
    assert "CONCLUSION: Although" in t.question


def test_medmcqa_github_cop_is_one_based(dataset_root):
    root = dataset_root("medmcqa")
    stats = SourceStats()
    got = list(load_source("medmcqa", root, stats=stats))
    assert [(s.split, s.answer) for s in got] == [("validation", "A"), ("validation", "C")]
    assert got[1].options["C"] == "Antegrade and retrograde" and got[0].meta["subject"] == "Pathology"
    reasons = sorted(p.reason for p in stats.problems)
    assert len(reasons) == 2 and "out of range" in reasons[0] and "withheld" in reasons[1]


def test_medmcqa_parquet_and_hub_cop_are_zero_based(tmp_path, monkeypatch):
    pa = pytest.importorskip("pyarrow")
    import pyarrow.parquet as pq

    row = {
        "id": "c6365cce",
        "question": "Axonal transport is:",
        "opa": "Antegrade",
        "opb": "Retrograde",
        "opc": "Antegrade and retrograde",
        "opd": "None",
        "cop": 2,
        "choice_type": "single",
        "exp": None,
        "subject_name": "Physiology",
        "topic_name": None,
    }
    (tmp_path / "hf" / "data").mkdir(parents=True)
    pq.write_table(pa.Table.from_pylist([row]), tmp_path / "hf" / "data" / "validation-00000-of-00001.parquet")
    (s,) = load_source("medmcqa", tmp_path / "hf")
    assert s.answer == "C" and s.split == "validation"

    import datasets

    monkeypatch.setattr(datasets, "load_dataset", lambda *a, **k: datasets.Dataset.from_list([row]))
    (h,) = load_source("medmcqa", "openlifescienceai/medmcqa", split="validation")
    assert h.answer == "C" and h.id == s.id


def test_mmlu_csv_and_jsonl_medical_subjects(dataset_root):
    csv_root = dataset_root("mmlu_med")
    got = list(load_source("mmlu_med", csv_root, split="test"))
    (dev,) = load_source("mmlu_med", csv_root, split="dev")  # MMLU's own few-shot split, not "validation"
    assert dev.split == "dev" and dev.answer == "B" and dev.options["B"] == "Cranial"
    assert [(s.split, s.answer, s.meta["subject"]) for s in got] == [("test", "B", "anatomy"), ("test", "A", "anatomy")]
    assert got[1].options["C"] == "paralysis of the facial muscles, loss of taste and lacrimation."
    js = list(load_source("mmlu_med", dataset_root("mmlu_jsonl")))
    assert [s.meta["subject"] for s in js] == ["anatomy", "clinical_knowledge"]  # abstract algebra dropped
    assert js[1].question == "What is the pH of water?" and js[1].options["B"] == "7"
    assert js[0].id == got[0].id  # same question, same id in both formats


def test_medbullets_csv_json_and_op5(dataset_root):
    root = dataset_root("medbullets")
    stats = SourceStats()
    csv4 = list(load_source("medbullets", root, options=4, stats=stats))
    json4 = list(load_source("medbullets", root, options=4, fmt="json"))
    assert [s.answer for s in csv4] == ["C", "A"] and [s.to_dict() for s in csv4] == [s.to_dict() for s in json4]
    assert "\n\nWhich of the following" in csv4[0].question and stats.problems[0].line == 8
    (op5,) = load_source("medbullets", root, options=5)
    assert op5.options["B"] == "Amitriptyline" and len(op5.options) == 5 and op5.id != csv4[1].id
    assert columns_to_rows({"a": {"1": "y", "0": "x"}}) == [{"a": "x"}, {"a": "y"}]


def test_supergpqa_medicine_discipline(dataset_root):
    root = dataset_root("supergpqa")
    stats = SourceStats()
    got = list(load_source("supergpqa", root, stats=stats))
    assert [s.meta["uuid"] for s in got] == ["a1", "a3"] and len(got[1].options) == 10
    assert got[0].answer == "A" and got[0].split == "test" and stats.skipped == 1
    clinical = list(load_source("supergpqa", root, fields=["Clinical Medicine"]))
    assert [s.meta["uuid"] for s in clinical] == ["a1"]
    assert len(list(load_source("supergpqa", root, discipline=None))) == 3


def test_pubmedqa_hub_copy_needs_the_test_list(dataset_root, monkeypatch):
    import datasets

    row = {
        "pubid": 11296674,
        "question": "Prostatic syndrome and pleural effusion: are they different diseases?",
        "context": {"contexts": ["To report an uncommon association."], "labels": ["OBJECTIVE"], "meshes": ["Aged"]},
        "long_answer": "Consider synchronous tumors.",
        "final_decision": "maybe",
    }
    calls = []
    monkeypatch.setattr(datasets, "load_dataset", lambda *a, **k: calls.append(a) or datasets.Dataset.from_list([row]))
    with pytest.raises(ValueError, match="test_ids"):
        list(load_source("pubmedqa", "qiaojin/PubMedQA", split="test"))
    gt = dataset_root("pubmedqa") / "data" / "test_ground_truth.json"
    (s,) = load_source("pubmedqa", "qiaojin/PubMedQA", split="test", test_ids=gt)
    assert calls[-1] == ("qiaojin/PubMedQA", "pqa_labeled") and s.answer == "C" and s.split == "test"
    assert s.id == next(x.id for x in load_source("pubmedqa", gt.parent.parent) if x.meta["pmid"] == "11296674")
