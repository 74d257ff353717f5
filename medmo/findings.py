"""Finding-level factuality of radiology reports: which findings a text asserts, with negation.

A rule-based labeller in the spirit of the CheXpert labeller (Irvin et al., AAAI 2019) and NegEx
(Chapman et al., J Biomed Inform 2001), small enough to run inside a training reward:

* vocabulary: CheXpert's observations (minus "No Finding", which is derived, not stated) plus common
  chest and general terms (nodule, mass, emphysema, fibrosis, hernia, calcification, ...), each with
  synonyms (``effusion`` -> ``pleural effusion``, ``enlarged heart`` -> ``cardiomegaly``);
* text is cut into clauses at sentence punctuation, semicolons, new lines and the contrast words
  ``but / however / although / though / except / aside from / apart from / which / whereas`` and at
  "and there is" / "and a (small...)", where a new statement starts; a negation's scope
  is the rest of its clause ("no effusion or pneumothorax" negates both, "no effusion but a small
  pneumothorax" only the first);
* pre-negation cues: no, not, without, negative for, free of, clear of, absence of, resolved, resolution
  of, ruled out, neither/nor; post-negation cues: "is not seen / present / identified ...", "has
  resolved", "is absent", "has cleared", "ruled out";
* "cannot be excluded" / "not ruled out" are uncertain, and uncertain mentions count as positive (the
  common choice of CheXpert-based factuality metrics, "U-ones");
* normal-size phrases ("heart size is normal", "normal cardiac silhouette") state cardiomegaly as absent.

Limits: no coreference, no laterality, no severity; a finding mentioned both positively and negatively
(e.g. left vs right) counts as positive.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

FINDINGS_VERSION = "findings-1"

_SYNONYMS: dict[str, tuple[str, ...]] = {
    "enlarged cardiomediastinum": (
        r"enlarged cardiomediastinum",
        r"widen(?:ed|ing) (?:of the )?(?:superior )?mediastinum",
        r"mediastinal widening",
        r"enlarged (?:cardio)?mediastinal (?:silhouette|contour)",
    ),
    "cardiomegaly": (
        r"cardiomegaly",
        r"cardiac enlargement",
        r"enlarged (?:heart|cardiac silhouette)",
        r"heart (?:size )?is enlarged",
        r"enlargement of the (?:heart|cardiac silhouette)",
    ),
    "lung opacity": (r"opacit(?:y|ies)", r"opacification", r"infiltrates?", r"airspace disease"),
    "lung lesion": (r"(?:lung|pulmonary) lesions?", r"lesions?", r"cavitary lesion"),
    "nodule": (r"nodules?", r"nodular opacit(?:y|ies)"),
    "mass": (r"mass(?:es)?",),
    "edema": (r"(?:pulmonary |interstitial |alveolar )?o?edema", r"vascular congestion", r"chf"),
    "consolidation": (r"consolidations?", r"consolidative"),
    "pneumonia": (r"pneumonias?", r"bronchopneumonia"),
    "atelectasis": (r"atelectasis", r"atelectatic", r"(?:lobar |lung )?collapse"),
    "pneumothorax": (r"pneumothora(?:x|ces)", r"ptx"),
    "pleural effusion": (r"(?:pleural )?effusions?", r"hydrothorax"),
    "pleural other": (r"pleural thickening", r"pleural plaques?", r"fibrothorax", r"pleural scarring"),
    "fracture": (r"fractures?", r"fractured"),
    "support devices": (
        r"(?:endotracheal|et|nasogastric|ng|enteric|feeding|chest|tracheostomy) tubes?",
        r"(?:central venous |picc |central |venous )(?:line|catheter)s?",
        r"picc",
        r"catheters?",
        r"pacemakers?",
        r"defibrillators?",
        r"(?:sternotomy )?wires",
        r"support devices?",
        r"stents?",
    ),
    "emphysema": (r"emphysema(?:tous)?", r"hyperinflat(?:ion|ed)", r"copd"),
    "fibrosis": (r"fibrosis", r"fibrotic"),
    "hernia": (r"(?:hiatal |hiatus )?hernias?",),
    "calcification": (r"calcifications?", r"calcified"),
    "granuloma": (r"granulomas?", r"granulomatous"),
    "scoliosis": (r"scoliosis",),
}
FINDINGS = tuple(_SYNONYMS)

_MENTION = {k: re.compile(r"\b(?:" + "|".join(v) + r")\b") for k, v in _SYNONYMS.items()}
_CLAUSE = re.compile(
    r"[.;!?\n]+|\b(?:but|however|although|though|except|aside from|apart from|which|whereas)\b"
    # "no X, and there is Y" / "no X and a small Y": a new positive statement starts
    r"|\b(?:and|while)\s+(?:there\s+(?:is|are)|a|an|the|new|small|large|mild|moderate|severe|increased|persistent)\b"
)
_UNCERTAIN = re.compile(
    r"\b(?:cannot|can not|could not|not|may not)\s+(?:be\s+)?(?:excluded|exclude|ruled out|rule out)\b"
)
_PRE = re.compile(
    r"\b(?:no|not|without|negative for|free of|clear of|absence of|absent|resolved|resolution of|"
    r"rule[sd]? out|neither|nor)\b"
)
_POST = re.compile(
    r"\b(?:(?:is|are|was|were|has|have)\s+)?(?:not|no longer)\s+(?:been\s+)?(?:seen|present|identified|visualized|"
    r"evident|appreciated|demonstrated|noted|detected|visible)\b|\b(?:resolved|absent|ruled out|cleared)\b"
)
_NORMAL = (
    (re.compile(r"\bheart (?:size )?is not enlarged\b"), ("cardiomegaly",)),
    (re.compile(r"\b(?:heart|cardiac) size (?:is )?(?:within normal limits|normal|upper normal)\b"), ("cardiomegaly",)),
    (re.compile(r"\bnormal (?:heart|cardiac) (?:size|silhouette)\b"), ("cardiomegaly",)),
    (re.compile(r"\bcardiac silhouette (?:is )?(?:within normal limits|normal|unremarkable)\b"), ("cardiomegaly",)),
    (
        re.compile(
            r"\bcardiomediastinal (?:silhouette|contours?) (?:is |are )?"
            r"(?:within normal limits|normal|unremarkable|stable)\b"
        ),
        ("cardiomegaly", "enlarged cardiomediastinum"),
    ),
)


def _clause_findings(clause: str) -> dict[str, bool]:
    clause = _UNCERTAIN.sub(" possible ", clause)
    out: dict[str, bool] = {}
    for name, pattern in _MENTION.items():
        for m in pattern.finditer(clause):
            negated = bool(_PRE.search(clause, 0, m.start())) or bool(_POST.search(clause, m.end()))
            out[name] = out.get(name, False) or not negated
    for pattern, names in _NORMAL:
        if pattern.search(clause):
            for name in names:
                out.setdefault(name, False)
    return out


def extract_findings(text: str) -> dict[str, bool]:
    """Findings a report mentions: ``{finding: True}`` if asserted (or uncertain), ``False`` if negated.

    Findings not mentioned are absent from the dict. Never raises; non-text yields ``{}``.
    """
    if not isinstance(text, str) or not text.strip():
        return {}
    out: dict[str, bool] = {}
    for clause in _CLAUSE.split(text.lower()):
        for name, positive in _clause_findings(clause).items():
            out[name] = out.get(name, False) or positive
    return out


def _facts(text: str, include_negatives: bool) -> set:
    found = extract_findings(text)
    if include_negatives:
        return set(found.items())
    return {k for k, v in found.items() if v}


def finding_f1(pred: str, ref: str, *, include_negatives: bool = False) -> float:
    """F1 between the positive findings of a generated and a reference report (1.0 if both have none).

    Args:
        pred: generated report.
        ref: reference report.
        include_negatives: compare ``(finding, asserted)`` pairs instead, so stated absences count too.
    """
    p, r = _facts(pred, include_negatives), _facts(ref, include_negatives)
    if not p and not r:
        return 1.0
    return 2 * len(p & r) / (len(p) + len(r))


def findings_metric(predictions: Sequence[str], references: Sequence[str | Sequence[str]]) -> dict:
    """Corpus finding F1: per-sample F1 mean and micro F1 over all positive findings (first reference)."""
    rows, tp, n_p, n_r = [], 0, 0, 0
    for pred, ref in zip(predictions, references):
        ref = ref if isinstance(ref, str) else (list(ref) or [""])[0]
        p, r = _facts(pred or "", False), _facts(ref or "", False)
        tp, n_p, n_r = tp + len(p & r), n_p + len(p), n_r + len(r)
        rows.append({"finding_f1": 1.0 if not p and not r else 2 * len(p & r) / (len(p) + len(r))})
    agg = {
        "finding_f1": sum(r["finding_f1"] for r in rows) / len(rows) if rows else 0.0,
        "finding_f1_micro": 2 * tp / (n_p + n_r) if n_p + n_r else 1.0,
    }
    return {"aggregate": agg, "per_sample": rows, "version": FINDINGS_VERSION}
