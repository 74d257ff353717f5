"""Finding-level factuality: extraction with negation, and finding F1."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from medmo.findings import FINDINGS, extract_findings, finding_f1, findings_metric

CASES = [
    ("No pleural effusion.", {"pleural effusion": False}),
    ("Small left pleural effusion.", {"pleural effusion": True}),
    ("No pleural effusion or pneumothorax.", {"pleural effusion": False, "pneumothorax": False}),
    ("No effusion but a small pneumothorax.", {"pleural effusion": False, "pneumothorax": True}),
    ("No effusion. Right apical pneumothorax.", {"pleural effusion": False, "pneumothorax": True}),
    ("There is no evidence of pneumothorax, and there is a right basilar opacity.",
     {"pneumothorax": False, "lung opacity": True}),
    ("The previously seen pneumothorax has resolved.", {"pneumothorax": False}),
    ("Pneumothorax is not seen.", {"pneumothorax": False}),
    ("Lungs are free of consolidation.", {"consolidation": False}),
    ("Negative for fracture.", {"fracture": False}),
    ("Without focal consolidation.", {"consolidation": False}),
    ("Pneumonia cannot be excluded.", {"pneumonia": True}),
    ("Mild cardiomegaly with pulmonary edema.", {"cardiomegaly": True, "edema": True}),
    ("Heart size is normal.", {"cardiomegaly": False}),
    ("Enlarged cardiac silhouette.", {"cardiomegaly": True}),
    ("Endotracheal tube in place.", {"support devices": True}),
    ("Stable 5 mm nodule in the right upper lobe.", {"nodule": True}),
    ("Bibasilar atelectasis; no consolidation.", {"atelectasis": True, "consolidation": False}),
    ("Clear of pneumothorax.", {"pneumothorax": False}),
    ("No acute cardiopulmonary process.", {}),
]


@pytest.mark.parametrize("text,expected", CASES)
def test_extract_findings(text, expected):
    assert extract_findings(text) == expected


def test_vocabulary_covers_chexpert_and_common_terms():
    for name in ("pleural effusion", "pneumothorax", "consolidation", "cardiomegaly", "edema", "atelectasis",
                 "nodule", "mass", "fracture", "lung opacity", "pneumonia", "support devices"):
        assert name in FINDINGS


def test_finding_f1():
    ref = "Small right pleural effusion. Mild cardiomegaly. No pneumothorax."
    assert finding_f1("Cardiomegaly and a right effusion. No pneumothorax.", ref) == 1.0
    assert finding_f1("No effusion. Mild cardiomegaly.", ref) == pytest.approx(2 * 1 / (1 + 2))
    assert finding_f1("Normal chest.", "No acute process.") == 1.0
    assert finding_f1("Pneumothorax.", ref) == 0.0
    # with negatives, the stated absence of pneumothorax counts as a shared fact
    assert finding_f1("No pneumothorax.", ref, include_negatives=True) == pytest.approx(2 * 1 / (1 + 3))


def test_findings_metric_aggregates():
    res = findings_metric(["Large effusion.", "No effusion."], ["Small effusion.", ["Right effusion."]])
    assert [r["finding_f1"] for r in res["per_sample"]] == [1.0, 0.0]
    assert res["aggregate"]["finding_f1"] == 0.5
    assert res["aggregate"]["finding_f1_micro"] == pytest.approx(2 * 1 / (1 + 2))


@settings(max_examples=100, deadline=None)
@given(st.text(max_size=300))
def test_never_raises(text):
    out = extract_findings(text)
    assert all(k in FINDINGS and isinstance(v, bool) for k, v in out.items())
    assert 0.0 <= finding_f1(text, "effusion") <= 1.0
