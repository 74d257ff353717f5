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
  ``"{letter}:{text}"``, ``"{text}"``) over the options; when the loader kept the cells the class reads
  (``meta.options_raw``, as released: unstripped, empty ones included) they are used instead, formatted with
  ``raw_choices`` (default: ``choices``; PMC-VQA's cells already carry their letter: ``"{text}"``). The
  response is the ``<answer>`` text. The gold is the letter, except ``gold: omnimedvqa`` (the last option
  whose released text equals ``meta.gt_answer`` exactly, else that text itself: MedEvalKit then judges
  against text no letter can match) and ``gold: answer_raw`` (``meta.answer_raw``, the released answer
  cell, when the record has it).
``rule: mmmu``: :mod:`medmo.eval.metrics.mmmu`, over what the class reads: multiple choice iff
  ``meta.question_type`` is ``multiple-choice`` (records without it: the record's task), options from
  ``meta.options_raw`` when kept, the gold from ``meta.answer_raw`` when kept.

A block may also carry ``dataset:``, merged over the benchmark's ``dataset:`` under ``--preset medevalkit``
(:meth:`medmo.eval.registry.Benchmark.for_preset`): PMC-VQA switches to ``test_2.csv`` there.

Deviations (only where MedEvalKit crashes or guesses): an open answer on which MedEvalKit raises is
scored wrong with zero scores and flagged ``mek_crash`` (MedEvalKit aborts the whole benchmark); so is an
MMMU multiple-choice item whose answer is not one letter of its options (MedEvalKit's ``construct_prompt``
raises on it); MMMU's random guess is replayed from a seeded RNG and flagged ``random_guess``.
``open_acc`` is the share of exact matches (MedEvalKit prints that share divided once more by the number
of open questions).
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
    "mmmu_crash": "MMMU multiple-choice items whose answer is not one letter of their options (MedEvalKit's "
                  "construct_prompt raises and the run aborts) score 0 and are flagged mek_crash",
    "open_acc": "open_acc is exact matches / open questions (MedEvalKit prints it divided by the count twice)",
}


def raw_gold(sample: Sample) -> str:
    """The gold as the release spells it (``meta.answer_raw`` when the loader normalised it)."""
    raw = sample.meta.get("answer_raw") if isinstance(sample.meta, dict) else None
    return str(raw) if raw else str(sample.answer)


def _meta(sample: Sample) -> dict[str, Any]:
    return sample.meta if isinstance(sample.meta, dict) else {}


def option_values(sample: Sample) -> dict[str, str]:
    """Letter -> option as the MedEvalKit class reads it: ``meta.options_raw`` when kept, else the options."""
    raw = _meta(sample).get("options_raw")
    return {str(k): str(v) for k, v in raw.items()} if isinstance(raw, dict) and raw else dict(sample.options)


def choice_strings(sample: Sample, profile: dict[str, Any], *, prompt: bool = False) -> list[str]:
    """The choice strings the MedEvalKit class builds, in option order (``prompt``: for its prompt text)."""
    fmt = (profile.get("prompt_choices") if prompt else None) or profile.get("choices", "{letter}. {text}")
    raw = _meta(sample).get("options_raw")
    if isinstance(raw, dict) and raw:
        fmt = profile.get("raw_choices") or fmt
    return [fmt.format(letter=k, text=v) for k, v in option_values(sample).items()]


def mcq_gold(sample: Sample, profile: dict[str, Any]) -> str:
    """The gold MedEvalKit's class passes to ``judge_multi_choice`` (see the module docstring)."""
    meta = _meta(sample)
    if profile.get("gold") == "omnimedvqa" and meta.get("gt_answer") is not None:
        gt = str(meta["gt_answer"])
        match = [k for k, v in option_values(sample).items() if v == gt]
        return match[-1] if match else gt
    if profile.get("gold") == "answer_raw" and meta.get("answer_raw") is not None:
        return str(meta["answer_raw"])
    return str(sample.answer)


def mmmu_case(sample: Sample) -> tuple[str, dict[str, str] | None, str | None]:
    """What MedEvalKit's MMMU path reads from a record: the gold, ``index2ans`` (None for an open question)
    and the exception its ``construct_prompt`` raises on the item, if any."""
    meta = _meta(sample)
    gold = str(meta["answer_raw"]) if meta.get("answer_raw") is not None else str(sample.answer)
    qtype = str(meta.get("question_type") or "")
    if not (qtype == "multiple-choice" if qtype else sample.task == "mcq"):
        return gold, None, None
    values = list(option_values(sample).values()) or [str(o) for o in meta.get("open_options") or []]
    index2ans = {chr(ord("A") + i): v for i, v in enumerate(values)}
    if len(gold) != 1:  # options[ord(answer.upper()) - ord("A")]
        return gold, index2ans, f"TypeError: ord() expected a character, but string of length {len(gold)} found"
    if not -len(values) <= ord(gold.upper()) - ord("A") < len(values):
        return gold, index2ans, "IndexError: list index out of range"
    return gold, index2ans, None


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
    choices = choice_strings(sample, profile)
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
        cases = [mmmu_case(s) for s in samples]
        rows = score_mmmu(predictions, [c[0] for c in cases], [c[1] for c in cases], seed=seed,
                          crashes=[c[2] for c in cases])
        version = MMMU_VERSION
    elif rule == "vqa":
        rows, version = [vqa_row(s, p, profile) for s, p in zip(samples, predictions)], MEDEVALKIT_VERSION
    elif rule == "mcq":
        rows, version = [mcq_row(s, p, profile) for s, p in zip(samples, predictions)], MEDEVALKIT_VERSION
    else:
        raise ValueError(f"medevalkit rule must be vqa, mcq or mmmu, got {rule!r}")
    return {"aggregate": aggregate(rows), "per_sample": rows, "version": version}
