"""What each MedEvalKit dataset class hands to its judging functions, driven by the benchmark's YAML.

A benchmark YAML's ``medevalkit:`` block names its rule and the class's quirks (MedEvalKit 9b12e3b,
``utils/<NAME>/<NAME>.py``); :func:`score` applies them to records and predictions:

``rule: vqa`` (VQA-RAD, SLAKE, PathVQA):
  ``preprocess``: ``lower_strip`` (VQA-RAD, PathVQA: boxed/answer text, lower-cased, stripped) or ``raw``
  (SLAKE: boxed/answer text as is); ``closed``: ``yes_no_gold`` (closed iff the stripped, lower-cased gold
  is yes/no) or ``answer_type`` (the record's closed/open task); ``gold``: ``lower_strip`` or ``raw``
  (SLAKE passes ``Yes``/``No`` as released, ``meta.answer_raw`` when the loader normalised it, so its yes/no
  rule only runs for lower-case golds and capitalised ones go to exact match).
``rule: mcq``: ``choices``: a format of each choice string (``"{letter}. {text}"``, ``"{letter}.{text}"``,
  ``"{letter}:{text}"``, ``"{text}"``); the response is the ``<answer>`` text; the gold is the letter, or
  for OmniMedVQA the released ``gt_answer`` text when it equals no option exactly (``meta.gt_answer``).
``rule: mmmu``: :mod:`medmo.eval.metrics.mmmu`.

Deviations (only where MedEvalKit crashes or guesses): an open answer on which MedEvalKit raises is
scored wrong with zero scores and flagged ``mek_crash`` (MedEvalKit aborts the whole benchmark); MMMU's
random guess is replayed from a seeded RNG and flagged ``random_guess``. ``open_acc`` is the share of exact
matches (MedEvalKit prints that share divided once more by the number of open questions).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from medmo.eval.metrics.medevalkit import (
    MEDEVALKIT_VERSION,
    box_or_answer,
    judge_closed,
    judge_mcq,
    judge_yes_no,
    open_scores,
    tag_text,
)
from medmo.eval.metrics.mmmu import MMMU_VERSION, score_mmmu
from medmo.records import Sample

OPEN_KEYS = ("bleu1", "bleu2", "bleu3", "bleu4", "rouge1", "rouge2", "rougel", "precision", "recall", "f1",
             "printed_f1")
DEVIATIONS = {
    "open_crash": "open answers on which MedEvalKit raises (empty, only periods, whitespace) score 0 and are "
                  "flagged mek_crash; MedEvalKit aborts the benchmark there",
    "mmmu_random": "MMMU's random letter for unparsed answers is drawn from random.Random(seed) in sample order "
                   "(MedEvalKit: Python's global RNG seeded by eval.py) and flagged random_guess",
    "open_acc": "open_acc is exact matches / open questions (MedEvalKit prints it divided by the count twice)",
}


def raw_gold(sample: Sample) -> str:
    """The gold as the release spells it (``meta.answer_raw`` when the loader normalised it)."""
    raw = sample.meta.get("answer_raw") if isinstance(sample.meta, dict) else None
    return str(raw) if raw else str(sample.answer)


def choice_strings(sample: Sample, fmt: str) -> list[str]:
    """The choice strings the MedEvalKit class builds, in option order."""
    return [fmt.format(letter=k, text=v) for k, v in sample.options.items()]


def mcq_gold(sample: Sample, profile: dict[str, Any]) -> str:
    if profile.get("gold") == "omnimedvqa":
        gt = sample.meta.get("gt_answer") if isinstance(sample.meta, dict) else None
        if gt is not None:
            match = [k for k, v in sample.options.items() if v == gt]
            return match[-1] if match else str(gt)
    return str(sample.answer)


def is_closed(sample: Sample, profile: dict[str, Any]) -> bool:
    if profile.get("closed", "yes_no_gold") == "answer_type":
        kind = str(sample.meta.get("answer_type") or "").upper() if isinstance(sample.meta, dict) else ""
        return kind != "OPEN" if kind else sample.task == "closed_vqa"
    return raw_gold(sample).lower().strip() in ("yes", "no")


def vqa_row(sample: Sample, prediction: str, profile: dict[str, Any]) -> dict[str, Any]:
    """One VQA-RAD / SLAKE / PathVQA sample under its class's rules."""
    response = box_or_answer(prediction or "")
    gold = raw_gold(sample)
    if profile.get("preprocess", "lower_strip") == "lower_strip":
        response = response.lower().strip()
    if profile.get("gold", "lower_strip") == "lower_strip":
        gold = gold.lower().strip()
    if is_closed(sample, profile):
        ok = judge_yes_no(gold, response) if gold in ("yes", "no") else judge_closed(gold, response)
        return {"kind": "closed", "correct": float(ok), "judge_response": response, "judge_gold": gold}
    s = open_scores(gold, response)
    return {"kind": "open", "correct": s["em"], **s, "judge_response": response, "judge_gold": gold}


def mcq_row(sample: Sample, prediction: str, profile: dict[str, Any]) -> dict[str, Any]:
    choices = choice_strings(sample, profile.get("choices", "{letter}. {text}"))
    ok = judge_mcq(choices, mcq_gold(sample, profile), tag_text(prediction or ""))
    return {"kind": "mcq", "correct": float(ok)}


def aggregate(rows: list[dict[str, Any]]) -> dict[str, float]:
    """MedEvalKit's totals: overall, closed, open (exact match and per-answer text scores), mcq."""
    agg: dict[str, float] = {}
    if rows:
        agg["overall_acc"] = sum(r["correct"] for r in rows) / len(rows)
    for kind in ("closed", "open", "mcq"):
        sub = [r for r in rows if r["kind"] == kind]
        if not sub:
            continue
        agg[f"{kind}_acc"], agg[f"{kind}_n"] = sum(r["correct"] for r in sub) / len(sub), float(len(sub))
        if kind == "open":
            for k in OPEN_KEYS:
                if k in sub[0]:
                    agg[f"open_{k}"] = sum(r.get(k, 0.0) for r in sub) / len(sub)
    agg["mek_crashes"] = float(sum(1 for r in rows if r.get("mek_crash")))
    if any("random_guess" in r for r in rows):
        agg["random_guesses"] = float(sum(1 for r in rows if r.get("random_guess")))
    return agg


def score(samples: Sequence[Sample], predictions: Sequence[str], profile: dict[str, Any], *, seed: int = 42) -> dict:
    """Per-sample rows and aggregates of one benchmark under its MedEvalKit profile."""
    rule = profile.get("rule")
    if rule == "mmmu":
        rows = score_mmmu(predictions, [str(s.answer) for s in samples], [s.options or None for s in samples],
                          seed=seed)
        version = MMMU_VERSION
    elif rule == "vqa":
        rows, version = [vqa_row(s, p, profile) for s, p in zip(samples, predictions)], MEDEVALKIT_VERSION
    elif rule == "mcq":
        rows, version = [mcq_row(s, p, profile) for s, p in zip(samples, predictions)], MEDEVALKIT_VERSION
    else:
        raise ValueError(f"medevalkit rule must be vqa, mcq or mmmu, got {rule!r}")
    return {"aggregate": aggregate(rows), "per_sample": rows, "version": version}
