"""Scoring presets for medical VQA: ``standard`` (ours) and ``medevalkit`` (MedEvalKit's rules).

Each sample is one of three kinds: ``closed`` (yes/no or a small closed set), ``open`` (free text) or
``mcq`` (options + letter). The kind is given, or inferred: options -> ``mcq``; gold yes/no -> ``closed``;
otherwise ``open``. Per-sample functions take ``(prediction, gold, options=None)`` and return a dict of
scores; :func:`vqa` scores a whole set and aggregates.

``standard`` (version :data:`STANDARD_VERSION`), built on :mod:`medmo.answers`:

* closed: yes/no golds compare :func:`~medmo.answers.yes_no` of both sides ("Yes, there is..." is yes);
  other closed golds use exact match after :func:`~medmo.answers.normalize_text`;
* open: token recall (share of gold tokens found in the prediction, the usual VQA-RAD/SLAKE/PathVQA
  open metric), SQuAD token F1 and normalized exact match; ``correct`` is the exact match;
* mcq: :func:`~medmo.answers.extract_choice`; an answer with no extractable letter is wrong.

The reasoning part of ``<think>...</think>`` outputs is ignored by every rule.
The ``medevalkit`` preset lives in :mod:`medmo.eval.metrics.medevalkit`.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

from medmo.answers import PARSER_VERSION, extract_choice, normalize_text, split_think, yes_no
from medmo.eval.metrics.kinds import KINDS, infer_kind
from medmo.eval.metrics.medevalkit import MEDEVALKIT_VERSION, score_medevalkit

STANDARD_VERSION = f"vqa-standard-1+{PARSER_VERSION}"


def gold_letter(gold: str, options: dict[str, str]) -> str | None:
    """The gold option letter: ``gold`` itself if it is a key, else the key whose text equals it."""
    g = str(gold).strip()
    keys = {str(k).strip().upper(): k for k in options}
    if g.upper().strip("().") in keys:
        return g.upper().strip("().")
    for k, v in options.items():
        if normalize_text(v) == normalize_text(g):
            return str(k).strip().upper()
    return None


def token_scores(prediction: str, gold: str) -> dict[str, float]:
    """Normalized exact match, token recall, precision and F1 (SQuAD-style multiset overlap)."""
    p, g = normalize_text(prediction).split(), normalize_text(gold).split()
    common = sum((Counter(p) & Counter(g)).values())
    recall = common / len(g) if g else float(not p)
    precision = common / len(p) if p else float(not g)
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"em": float(p == g), "recall": recall, "precision": precision, "f1": f1}


def score_standard(
    prediction: str, gold: str, options: dict[str, str] | None = None, kind: str | None = None
) -> dict:
    """One sample under the ``standard`` preset; returns ``{"kind", "correct", ...}``."""
    kind = kind or infer_kind(gold, options)
    answer = split_think(prediction).answer
    if kind == "mcq":
        letter = extract_choice(prediction, options)
        want = gold_letter(gold, options or {}) if options else str(gold).strip().upper()
        return {"kind": kind, "correct": float(letter is not None and letter == want), "parsed": letter}
    if kind == "closed":
        g = yes_no(gold) if normalize_text(gold) in ("yes", "no") else None
        parsed = yes_no(answer) if g else normalize_text(answer)
        ok = parsed == g if g else parsed == normalize_text(gold)
        return {"kind": kind, "correct": float(ok), "parsed": parsed}
    if kind == "open":
        s = token_scores(answer, gold)
        return {"kind": kind, "correct": s["em"], **s}
    raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")


def _aggregate(rows: list[dict]) -> dict[str, float]:
    """Accuracy per kind, open recall/F1/EM, and ``overall_acc`` (open samples count by exact match)."""
    agg: dict[str, float] = {}
    for kind in KINDS:
        sub = [r for r in rows if r["kind"] == kind]
        if not sub:
            continue
        agg[f"{kind}_acc"] = sum(r["correct"] for r in sub) / len(sub)
        agg[f"{kind}_n"] = float(len(sub))
        if kind == "open":
            for key in ("recall", "precision", "f1", "em"):
                if key in sub[0]:
                    agg[f"open_{key}"] = sum(r[key] for r in sub) / len(sub)
    if rows:
        agg["overall_acc"] = sum(r["correct"] for r in rows) / len(rows)
    return agg


def vqa(
    predictions: Sequence[str],
    references: Sequence[str],
    *,
    options: Sequence[dict[str, str] | None] | None = None,
    kinds: Sequence[str | None] | None = None,
    preset: str = "standard",
) -> dict:
    """Score a VQA set under a preset.

    Args:
        predictions: model outputs.
        references: gold answers (letters or option texts for mcq).
        options: per-sample ``{letter: text}`` or ``None``.
        kinds: per-sample ``closed`` / ``open`` / ``mcq`` or ``None`` to infer.
        preset: ``"standard"`` or ``"medevalkit"``.

    Returns:
        ``{"aggregate": {...}, "per_sample": [...], "version": preset version}``.
    """
    if len(predictions) != len(references):
        raise ValueError(f"{len(predictions)} predictions but {len(references)} references")
    fn, version = _preset(preset)
    n = len(predictions)
    opts = list(options) if options is not None else [None] * n
    ks = list(kinds) if kinds is not None else [None] * n
    rows = [fn(p, g, o, k) for p, g, o, k in zip(predictions, references, opts, ks)]
    return {"aggregate": _aggregate(rows), "per_sample": rows, "version": version}


def _preset(name: str):
    if name == "standard":
        return score_standard, STANDARD_VERSION
    if name == "medevalkit":
        return score_medevalkit, MEDEVALKIT_VERSION
    raise ValueError(f"unknown VQA preset {name!r}; choose 'standard' or 'medevalkit'")


PRESETS = ("standard", "medevalkit")


def preset_version(name: str) -> str:
    """The version string written into results for a preset."""
    return _preset(name)[1]
